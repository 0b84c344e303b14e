//! The artifact store end to end (issue 17): a 200 MB workspace streams
//! through the apiserver and an agent without their memory growing with
//! it; archives that would escape the run directory are refused; two
//! apiservers on etcd share a `file://` store; RBAC on blobs; garbage
//! collection of unreferenced blobs.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use sloth_sdk::blob::archive;
use sloth_sdk::blob::{Digest, ForTaskRun};
use sloth_sdk::objects::{TaskRun, TaskRunSpec};
use sloth_sdk::{Api, Client, Error};
use sloth_tests::files::{incompressible_file, rss_bytes, write_file};
use sloth_tests::{
    Agent, ApiServer, Etcd, client_with_token, run_to_end, runtime, slothctl, wait_until,
};

const DEADLINE: Duration = Duration::from_secs(180);
/// The bound on growth over idle memory.
const MAX_GROWTH: u64 = 64 * 1024 * 1024;

/// Samples the largest RSS of `pids` on a thread until stopped.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peaks: Vec<Arc<AtomicU64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pids: &[u32]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks: Vec<Arc<AtomicU64>> = pids.iter().map(|_| Arc::default()).collect();
        let (flag, seen, pids) = (stop.clone(), peaks.clone(), pids.to_vec());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                for (pid, peak) in pids.iter().zip(&seen) {
                    if let Some(rss) = rss_bytes(*pid) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self {
            stop,
            peaks,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peaks
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }
}

#[test]
fn a_200_mb_workspace_streams_in_constant_memory() {
    let server = ApiServer::start_with(&["--controllers"]);
    let agent = Agent::start(&server, "a1", &[]);
    let temp = tempfile::tempdir().expect("temp dir");
    // Warm both processes up with a small workspace run first: idle is
    // measured after the code paths ran once.
    let small = temp.path().join("small");
    write_file(&small.join("x.txt"), "x");
    let run = |ws: &Path, script: &str| {
        let mut cmd = slothctl(&server);
        cmd.args([
            "run",
            "--workspace",
            &ws.display().to_string(),
            "--agent",
            "a1",
            "--",
        ])
        .arg(script);
        run_to_end(cmd, None, DEADLINE)
    };
    run(&small, "cat x.txt").ok();
    let pids = [
        server.pid().expect("apiserver pid"),
        agent.pid().expect("agent pid"),
    ];
    let idle: Vec<u64> = pids.iter().map(|p| rss_bytes(*p).expect("rss")).collect();

    let big = temp.path().join("big");
    incompressible_file(&big.join("big.bin"), 200 * 1024 * 1024);
    let sampler = RssSampler::start(&pids);
    let done = run(&big, "stat -c %s big.bin");
    let peaks = sampler.finish();
    let done = done.ok();
    assert!(
        done.stdout.contains(&(200 * 1024 * 1024).to_string()),
        "{done:#?}"
    );
    for ((name, idle), peak) in ["apiserver", "agent"].iter().zip(&idle).zip(&peaks) {
        let growth = peak.saturating_sub(*idle);
        eprintln!("{name}: idle {idle} B, peak {peak} B, growth {growth} B");
        assert!(
            growth < MAX_GROWTH,
            "{name} grew by {growth} bytes (idle {idle}, peak {peak}) streaming 200 MB"
        );
    }
}

/// A tar whose one entry is named `name` raw (bypassing the tar crate's
/// checks), compressed as workspaces are.
fn hostile_archive(dir: &Path, name: &str) -> std::path::PathBuf {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..107].copy_from_slice(b"0000644");
    header[124..135].copy_from_slice(b"00000000002");
    header[156] = b'0';
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut tar = header.to_vec();
    let mut data = b"x\n".to_vec();
    data.resize(512, 0);
    tar.extend(data);
    tar.extend([0u8; 1024]);
    let out = dir.join("hostile.tar.zst");
    archive::compress(&tar, &out).expect("compress");
    out
}

#[test]
fn a_workspace_that_escapes_its_directory_fails_the_task() {
    let server = ApiServer::start();
    let agent = Agent::start(&server, "a1", &[]);
    let rt = runtime();
    let client = rt.block_on(async { server.client() });
    let temp = tempfile::tempdir().expect("temp dir");
    for (i, name) in ["../../escaped.txt", "/tmp/sloth-absolute-escape.txt"]
        .iter()
        .enumerate()
    {
        let archive_path = hostile_archive(temp.path(), name);
        let (digest, size) = archive::digest_file(&archive_path).expect("digest");
        rt.block_on(client.put_blob(&archive_path, &digest, size, None, None))
            .expect("upload");
        let taskrun = format!("hostile-{i}");
        let mut tr = TaskRun::new(
            &taskrun,
            TaskRunSpec {
                agent_name: Some("a1".into()),
                workspace: Some(sloth_sdk::objects::BlobRef {
                    digest: digest.to_string(),
                    size,
                }),
                ..TaskRunSpec::shell("echo ran")
            },
        );
        tr.metadata.namespace = "default".into();
        let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), "default");
        rt.block_on(api.create(&tr)).expect("create");
        let failed = wait_until(DEADLINE, || {
            let tr = rt.block_on(api.get(&taskrun)).ok()?;
            let status = tr.status?;
            status.phase.is_terminal().then_some(status)
        })
        .expect("the run finished");
        assert_eq!(failed.phase.as_str(), "Failed", "{failed:?}");
        assert_eq!(failed.reason, "BlobError", "{failed:?}");
        assert!(
            failed.message.contains("refused archive entry"),
            "{failed:?}"
        );
    }
    assert!(!agent.work_dir().join("escaped.txt").exists());
    assert!(
        !agent
            .work_dir()
            .parent()
            .expect("parent")
            .join("escaped.txt")
            .exists()
    );
    assert!(!Path::new("/tmp/sloth-absolute-escape.txt").exists());
}

async fn download(client: &Client, digest: &Digest, dest: &Path) -> Result<u64, String> {
    client
        .download_blob(digest, None, dest, None)
        .await
        .map_err(|e| e.to_string())
}

#[test]
fn two_apiservers_on_etcd_share_a_file_store() {
    let etcd = Etcd::start();
    let temp = tempfile::tempdir().expect("temp dir");
    let shared = format!("file://{}", temp.path().join("shared").display());
    let endpoints = etcd.endpoints();
    let args = [
        "--store",
        "etcd",
        "--etcd-endpoints",
        &endpoints,
        "--artifact-store",
        &shared,
    ];
    let one = ApiServer::start_with(&args);
    let two = ApiServer::start_with(&args);
    let unshared = ApiServer::start_with(&["--store", "etcd", "--etcd-endpoints", &endpoints]);
    let rt = runtime();
    let (c1, c2) = rt.block_on(async { (one.client(), two.client()) });
    let file = temp.path().join("blob.bin");
    incompressible_file(&file, 3 * 1024 * 1024 + 17);
    let (digest, size) = archive::digest_file(&file).expect("digest");
    assert!(
        rt.block_on(c1.put_blob(&file, &digest, size, None, None))
            .expect("upload")
    );
    // The second apiserver sees it: no second upload, and it serves it.
    assert!(
        !rt.block_on(c2.put_blob(&file, &digest, size, None, None))
            .expect("stat")
    );
    let copy = temp.path().join("copy.bin");
    assert_eq!(rt.block_on(download(&c2, &digest, &copy)), Ok(size));
    assert_eq!(
        std::fs::read(&copy).expect("read"),
        std::fs::read(&file).expect("read")
    );
    assert!(
        unshared.log().contains("without --artifact-store"),
        "no warning: {}",
        unshared.log()
    );
}

const ADMIN: &str = "admin-token-0123456789abcdef";
const OPERATOR: &str = "operator-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";
const AGENT: &str = "agent-a1-token-0123456789abcdef";

#[test]
fn blobs_follow_roles_and_agents_read_only_what_their_taskruns_reference() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tokens = temp.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        format!(
            "{ADMIN},alice,admin\n{OPERATOR},olga,operator\n{VIEWER},vic,viewer\n\
             {AGENT},agent:a1,agent\n"
        ),
    )
    .expect("write tokens");
    let server = ApiServer::start_with(&["--token-file", &tokens.display().to_string()]);
    let rt = runtime();
    let client = |token: &str| rt.block_on(async { client_with_token(server.grpc_url(), token) });
    let (admin, operator, viewer, agent) = (
        client(ADMIN),
        client(OPERATOR),
        client(VIEWER),
        client(AGENT),
    );
    let file = temp.path().join("blob.bin");
    write_file(&file, "secret build output\n");
    let (digest, size) = archive::digest_file(&file).expect("digest");
    let dest = temp.path().join("out.bin");

    let refused = rt.block_on(viewer.put_blob(&file, &digest, size, None, None));
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    rt.block_on(operator.put_blob(&file, &digest, size, None, None))
        .expect("an operator uploads");
    assert_eq!(rt.block_on(download(&operator, &digest, &dest)), Ok(size));
    let refused = rt.block_on(download(&viewer, &digest, &dest));
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("forbidden")),
        "{refused:?}"
    );

    // The agent: only for a TaskRun bound to it that reads the blob.
    let api: Api<TaskRunSpec> = Api::namespaced(admin.clone(), "default");
    let create = |name: &str, agent_name: &str, reads: bool| {
        let mut tr = TaskRun::new(
            name,
            serde_json::from_value::<TaskRunSpec>(json!({
                "run": {"shell": "true"},
                "agentName": agent_name,
            }))
            .expect("spec"),
        );
        tr.metadata.namespace = "default".into();
        if reads {
            tr.spec.workspace = Some(sloth_sdk::objects::BlobRef {
                digest: digest.to_string(),
                size,
            });
        }
        rt.block_on(api.create(&tr)).expect("create");
    };
    create("reads", "a1", true);
    create("other", "a1", false);
    create("elsewhere", "a2", true);
    let as_agent = |taskrun: &str| {
        let run = ForTaskRun {
            namespace: "default".into(),
            name: taskrun.into(),
        };
        rt.block_on(agent.download_blob(&digest, Some(&run), &dest, None))
            .map_err(|e| e.to_string())
    };
    assert_eq!(as_agent("reads"), Ok(size));
    for taskrun in ["other", "elsewhere"] {
        let refused = as_agent(taskrun);
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("forbidden")),
            "{taskrun}: {refused:?}"
        );
    }
    let refused = rt.block_on(download(&agent, &digest, &dest));
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("forbidden")),
        "{refused:?}"
    );
}

#[test]
fn unreferenced_blobs_are_collected_after_the_grace_period() {
    let server =
        ApiServer::start_with(&["--artifact-gc-interval", "1s", "--artifact-gc-grace", "2s"]);
    let rt = runtime();
    let client = rt.block_on(async { server.client() });
    let temp = tempfile::tempdir().expect("temp dir");
    let upload = |name: &str| {
        let file = temp.path().join(name);
        write_file(&file, name);
        let (digest, size) = archive::digest_file(&file).expect("digest");
        rt.block_on(client.put_blob(&file, &digest, size, None, None))
            .expect("upload");
        (digest, size)
    };
    let (kept, kept_size) = upload("kept");
    let (dropped, _) = upload("dropped");
    let mut tr = TaskRun::new(
        "keeps",
        serde_json::from_value::<TaskRunSpec>(json!({"run": {"shell": "true"}})).expect("spec"),
    );
    tr.metadata.namespace = "default".into();
    tr.spec.workspace = Some(sloth_sdk::objects::BlobRef {
        digest: kept.to_string(),
        size: kept_size,
    });
    let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), "default");
    rt.block_on(api.create(&tr)).expect("create");
    let stat = |d: &Digest| rt.block_on(client.stat_blob(d, None)).expect("stat");
    wait_until(DEADLINE, || stat(&dropped).is_none().then_some(()))
        .expect("the unreferenced blob was collected");
    assert!(stat(&kept).is_some(), "a referenced blob was collected");
}
