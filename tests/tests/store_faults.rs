//! The embedded store after an I/O error, on a real apiserver: writes are
//! refused with a clear error and `/readyz` says why, reads keep working,
//! writes resume by themselves once the disk takes them, and SIGTERM still
//! exits 0. The disk fills through the apiserver's hidden test switch
//! (`--test-fault-file`: while that file exists, every write to the store
//! file fails with ENOSPC), and for real on a small tmpfs where mounting is
//! permitted.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sloth_tests::{ApiServer, Run, ctl, ctl_stdin, http_get, wait_until};

/// How long the store may take to notice that the disk takes writes again
/// (its probe backs off to 5 s), on a loaded machine.
const RECOVERY: Duration = Duration::from_secs(60);

fn taskrun(name: &str) -> String {
    format!(
        "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: {name}\nspec:\n  run:\n    shell: date\n"
    )
}

fn create(server: &ApiServer, name: &str) -> Run {
    ctl_stdin(server, &["apply", "-f", "-"], &taskrun(name))
}

fn readyz(server: &ApiServer) -> (u16, String) {
    http_get(server.http_url(), "/readyz")
}

/// Waits for `/readyz` to answer 200 again after the disk was freed.
#[track_caller]
fn wait_until_ready(server: &ApiServer) {
    wait_until(RECOVERY, || (readyz(server).0 == 200).then_some(())).unwrap_or_else(|| {
        panic!(
            "not ready {RECOVERY:?} after the disk was freed: {:?}; log:\n{}",
            readyz(server),
            server.log()
        )
    });
}

#[track_caller]
fn assert_refused_as_read_only(run: &Run) {
    assert_ne!(run.code, 0, "{run:#?}");
    for part in [
        "ResourceExhausted",
        "embedded store is read-only after an I/O error",
        "No space left on device",
        "writes resume once the disk accepts them",
    ] {
        assert!(run.stderr.contains(part), "{part:?} missing: {run:#?}");
    }
}

fn switch_on(switch: &Path) {
    std::fs::write(switch, "").expect("fill the disk");
}

#[test]
fn a_write_error_makes_the_store_read_only_until_the_disk_takes_writes_again() {
    let faults = tempfile::tempdir().expect("temp dir");
    let switch = faults.path().join("disk-full");
    let switch_arg = switch.to_str().expect("UTF-8 path");
    let mut server = ApiServer::start_with(&["--test-fault-file", switch_arg]);
    create(&server, "before").ok();
    assert_eq!(readyz(&server).0, 200);

    switch_on(&switch);
    assert_refused_as_read_only(&create(&server, "during"));
    let (status, body) = readyz(&server);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("read-only after an I/O error") && body.contains("No space left on device"),
        "{body}"
    );
    // Reads are served while writes are refused.
    ctl(&server, &["get", "taskrun", "before"]).ok();
    ctl(&server, &["get", "taskrun", "during"]).code(1);
    assert_refused_as_read_only(&create(&server, "during"));

    std::fs::remove_file(&switch).expect("free the disk");
    wait_until_ready(&server);
    create(&server, "after").ok();
    ctl(&server, &["get", "taskrun", "after"]).ok();

    // A shutdown while read-only is still a clean one.
    switch_on(&switch);
    assert_refused_as_read_only(&create(&server, "last"));
    assert!(
        server.stop(),
        "SIGTERM did not exit 0; log:\n{}",
        server.log()
    );
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");

    // Nothing acknowledged was lost; nothing refused was written.
    std::fs::remove_file(&switch).expect("free the disk");
    server.restart();
    ctl(&server, &["get", "taskrun", "before"]).ok();
    ctl(&server, &["get", "taskrun", "after"]).ok();
    ctl(&server, &["get", "taskrun", "during"]).code(1);
    ctl(&server, &["get", "taskrun", "last"]).code(1);
}

/// A tmpfs mounted for one test and unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None, with the reason printed, where mounting is not permitted
    /// (not root, or a container without CAP_SYS_ADMIN).
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Self { dir }),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.dir.path()).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Still busy (a process that has not exited yet): detach it now,
            // the kernel frees it once the last user is gone.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Writes `path` until the file system is full; returns the bytes written.
/// Bounded by the file system's size.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => return written,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return written,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

#[test]
fn a_full_tmpfs_makes_the_store_read_only_until_space_is_freed() {
    let Some(tmpfs) = Tmpfs::mount("16m") else {
        return;
    };
    // Declared after the tmpfs: dropped (killed) before it is unmounted.
    let mut server = ApiServer::start_in(Some(&tmpfs.path().join("data")), &[]);
    create(&server, "before").ok();
    let filler = tmpfs.path().join("filler");
    assert!(fill(&filler) > 0, "the tmpfs had no room left at all");

    // Objects of 100 KB: the store file must grow within a few of them.
    let payload = "x".repeat(100_000);
    let big = |name: &str| {
        format!(
            "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: {name}\nspec:\n  run:\n    shell: echo {payload}\n"
        )
    };
    let refused = (0..50)
        .map(|i| ctl_stdin(&server, &["apply", "-f", "-"], &big(&format!("big-{i}"))))
        .find(|run| run.code != 0)
        .expect("a write failed once the tmpfs was full");
    assert_refused_as_read_only(&refused);
    let (status, body) = readyz(&server);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("No space left on device"), "{body}");
    ctl(&server, &["get", "taskrun", "before"]).ok();

    std::fs::remove_file(&filler).expect("free the tmpfs");
    wait_until_ready(&server);
    create(&server, "after").ok();
    assert!(
        server.stop(),
        "SIGTERM did not exit 0; log:\n{}",
        server.log()
    );
}
