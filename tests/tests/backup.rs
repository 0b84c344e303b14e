//! Day two: `slothctl admin backup FILE` copies the embedded store while the
//! apiserver serves and writes go on, the copy restores into a new data dir,
//! only admins may take one; `sloth-apiserver migrate` moves every object
//! of an embedded store into etcd with its uid and labels.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sloth_tests::{
    ApiServer, CTL_DEADLINE, Etcd, Run, binary, ctl, ctl_stdin, run_to_end, slothctl,
};

const KEY_FILE: &str = "encryption-keys";

/// Applies TaskRun `name` labelled `batch=BATCH`.
fn create(server: &ApiServer, name: &str, batch: &str) {
    let manifest = format!(
        "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: {name}\n  labels:\n    \
         batch: \"{batch}\"\nspec:\n  run:\n    shell: \"true\"\n"
    );
    ctl_stdin(server, &["apply", "-f", "-"], &manifest).ok();
}

/// (uid, labels.batch) of TaskRun `name`, or None when absent.
fn identity(server: &ApiServer, name: &str) -> Option<(String, String)> {
    let run = ctl(server, &["get", "taskrun", name, "-o", "json"]);
    if run.code != 0 {
        return None;
    }
    let object = run.json();
    Some((
        object["metadata"]["uid"].as_str()?.to_string(),
        object["metadata"]["labels"]["batch"].as_str()?.to_string(),
    ))
}

#[test]
fn online_backup_while_writing_restores_into_a_new_apiserver() {
    let mut server = ApiServer::start();
    let before: Vec<String> = (0..20).map(|i| format!("before-{i}")).collect();
    for name in &before {
        create(&server, name, "before");
    }
    let originals: Vec<(String, String)> = before
        .iter()
        .map(|name| identity(&server, name).expect("created"))
        .collect();

    // Writes go on during the backup, from another thread.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let url = server.grpc_url().to_string();
        std::thread::spawn(move || {
            let mut written = 0;
            while !stop.load(Ordering::Relaxed) && written < 500 {
                let manifest = format!(
                    "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: during-{written}\n\
                     spec:\n  run:\n    shell: \"true\"\n"
                );
                let mut cmd = sloth_tests::slothctl_at(&url);
                cmd.args(["apply", "-f", "-"]);
                let run = run_to_end(cmd, Some(&manifest), CTL_DEADLINE);
                assert_eq!(run.code, 0, "{run:#?}");
                written += 1;
            }
            written
        })
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("sloth-backup.redb");
    let run = ctl(&server, &["admin", "backup", file.to_str().expect("utf-8")]).ok();
    stop.store(true, Ordering::Relaxed);
    let during = writer.join().expect("writer thread");
    assert!(
        run.stdout.starts_with("backup of revision ") && run.stdout.contains(" written to "),
        "{run:#?}"
    );
    assert!(file.is_file());
    assert!(!dir.path().join("sloth-backup.redb.partial").exists());
    // After the backup: not in it.
    create(&server, "after", "after");
    // The apiserver served throughout and leaves no scratch copy behind.
    assert!(identity(&server, "after").is_some());
    let leftovers: Vec<_> = std::fs::read_dir(server.data_dir())
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".backup-"))
        .collect();
    assert!(leftovers.is_empty(), "scratch copies left: {leftovers:?}");

    // Restore: the copy as sloth.redb of a new data dir, with the key file.
    let restored_dir = dir.path().join("restored");
    std::fs::create_dir_all(&restored_dir).expect("mkdir");
    std::fs::copy(&file, restored_dir.join("sloth.redb")).expect("copy store");
    std::fs::copy(
        server.data_dir().join(KEY_FILE),
        restored_dir.join(KEY_FILE),
    )
    .expect("copy key file");
    assert!(server.stop(), "{}", server.log());
    let restored = ApiServer::start_in(Some(&restored_dir), &[]);
    for (name, original) in before.iter().zip(&originals) {
        assert_eq!(
            identity(&restored, name).as_ref(),
            Some(original),
            "{name} after restore"
        );
    }
    assert_eq!(
        identity(&restored, "after"),
        None,
        "written after the backup"
    );
    // Consistent: the writes that made it in are a prefix of those made.
    let present: Vec<bool> = (0..during)
        .map(|i| identity(&restored, &format!("during-{i}")).is_some())
        .collect();
    let first_missing = present.iter().position(|p| !p).unwrap_or(present.len());
    assert!(
        present[first_missing..].iter().all(|p| !p),
        "the backup is not one point in time: {present:?}"
    );
}

#[test]
fn only_admins_may_take_a_backup() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tokens = temp.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "admin-token-0123456789abcdef,alice,admin\nviewer-token-0123456789abcdef,bob,viewer\n",
    )
    .expect("write tokens");
    let server = ApiServer::start_with(&["--token-file", tokens.to_str().expect("utf-8")]);
    let backup = |token: &str, file: &std::path::Path| -> Run {
        let mut cmd = slothctl(&server);
        cmd.args(["--token", token, "admin", "backup"]).arg(file);
        run_to_end(cmd, None, CTL_DEADLINE)
    };
    let refused_file = temp.path().join("viewer.redb");
    let refused = backup("viewer-token-0123456789abcdef", &refused_file);
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert!(refused.stderr.contains("not an admin"), "{refused:#?}");
    assert!(!refused_file.exists());
    let file = temp.path().join("admin.redb");
    backup("admin-token-0123456789abcdef", &file).ok();
    assert!(file.is_file());
}

#[test]
fn migrate_copies_every_object_with_its_uid_and_labels_into_etcd() {
    let mut server = ApiServer::start();
    let names: Vec<String> = (0..30).map(|i| format!("moved-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        create(&server, name, &format!("b{}", i % 3));
    }
    let originals: Vec<(String, String)> = names
        .iter()
        .map(|name| identity(&server, name).expect("created"))
        .collect();
    let data_dir = server.data_dir().to_path_buf();
    assert!(server.stop(), "{}", server.log());

    let etcd = Etcd::start();
    let endpoints = etcd.endpoints();
    let migrate = |extra: &[&str]| {
        let mut cmd = Command::new(binary("sloth-apiserver"));
        cmd.arg("migrate")
            .arg("--from-data-dir")
            .arg(&data_dir)
            .args(["--to-etcd", &endpoints, "--etcd-prefix", "/moved"])
            .args(extra);
        run_to_end(cmd, None, Duration::from_secs(60))
    };
    let first = migrate(&[]).ok();
    assert!(first.stdout.starts_with("migrated "), "{first:#?}");
    // Run again (an interrupted migration resumed): nothing new, no error.
    let again = migrate(&[]).ok();
    assert!(again.stdout.starts_with("migrated 0 keys"), "{again:#?}");

    let key_file = data_dir.join(KEY_FILE);
    let on_etcd = ApiServer::start_with(&[
        "--store",
        "etcd",
        "--etcd-endpoints",
        &endpoints,
        "--etcd-prefix",
        "/moved",
        "--encryption-key-file",
        key_file.to_str().expect("utf-8"),
    ]);
    for (name, original) in names.iter().zip(&originals) {
        assert_eq!(
            identity(&on_etcd, name).as_ref(),
            Some(original),
            "{name} on etcd"
        );
    }
    let listed = ctl(
        &on_etcd,
        &["get", "taskruns", "-l", "batch=b1", "-o", "name"],
    )
    .ok();
    assert_eq!(listed.lines().len(), 10, "{listed:#?}");
}

#[test]
fn migrate_refuses_a_missing_store_naming_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(binary("sloth-apiserver"));
    cmd.args(["migrate", "--to-etcd", "http://127.0.0.1:9"])
        .arg("--from-data-dir")
        .arg(dir.path().join("nothing"));
    let run = run_to_end(cmd, None, Duration::from_secs(30));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--from-data-dir"), "{run:#?}");
}
