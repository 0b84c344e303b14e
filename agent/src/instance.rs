//! This agent's instance id and what a new instance does before it runs
//! anything: the id is generated once and kept in the work dir, so that a
//! restart of the same agent (same work dir) is the same holder of the
//! heartbeat lease and takes over at once, while a second process under the
//! same name elsewhere is refused; and process groups left by the previous
//! life of the agent are killed before it reports Ready.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sloth_sdk::Client;
use tokio_util::sync::CancellationToken;

use crate::config::STARTUP_BACKOFF;
use crate::fence::BootMs;
use crate::heartbeat::{Heartbeat, RenewError};
use crate::process_group;
use crate::taskrun::PGID_FILE;
use sloth_sdk::well_known::HEARTBEAT_NAMESPACE;

/// The file in the work dir that holds the instance id.
pub(crate) const INSTANCE_FILE: &str = "instance-id";

/// The instance id kept in `work_dir`, created on first use.
pub(crate) fn load_or_create(work_dir: &Path) -> anyhow::Result<String> {
    let path = work_dir.join(INSTANCE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if valid(text.trim()) => return Ok(text.trim().to_string()),
        Ok(_) => tracing::warn!("{} is not an instance id; making a new one", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let id = generate().context("cannot read random bytes for the instance id")?;
    // Written aside and renamed, so a crash never leaves half an id.
    let temp = work_dir.join(format!("{INSTANCE_FILE}.tmp"));
    std::fs::write(&temp, format!("{id}\n"))
        .and_then(|()| std::fs::rename(&temp, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

/// 32 lowercase hex digits.
fn valid(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Takes this agent's heartbeat lease, retrying while no apiserver
/// answers. Returns when the successful renewal was sent (for the fencing
/// deadlines), or None when shutdown came first. Fails, naming the holder,
/// when another live instance holds the lease.
pub(crate) async fn take_lease(
    heartbeat: &mut Heartbeat,
    work_dir: &Path,
    client: &Client,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<BootMs>> {
    let mut retries = STARTUP_BACKOFF.retries();
    loop {
        let delay = retries.next_delay();
        let sent = BootMs::now();
        match heartbeat.renew().await {
            Ok(_) => return Ok(Some(sent)),
            Err(RenewError::Held {
                lock,
                holder,
                expires,
            }) => {
                anyhow::bail!(
                    "agent {:?} is already running: its heartbeat lock {HEARTBEAT_NAMESPACE}/{lock} \
                     is held by instance {holder:?} until {}, and this process is instance {:?} \
                     (work dir {}); stop that agent first, or start this one under another --name",
                    heartbeat.agent(),
                    expires.map_or_else(|| "(unknown)".to_string(), |t| t.to_rfc3339()),
                    heartbeat.instance(),
                    work_dir.display()
                );
            }
            Err(RenewError::Api(e)) if e.is_transient() => {
                tracing::warn!(
                    "cannot take the heartbeat lock of agent {:?} with {} (retrying in {delay:?}): {e}",
                    heartbeat.agent(),
                    client.endpoints()
                );
            }
            Err(RenewError::Api(e)) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot take the heartbeat lock of agent {:?} with {}",
                        heartbeat.agent(),
                        client.endpoints()
                    )
                });
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// The process-group files of every run directory (`WORK/NS/NAME/`).
fn recorded_groups(work_dir: &Path) -> Vec<PathBuf> {
    let dirs = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    dirs(work_dir)
        .iter()
        .flat_map(|namespace| dirs(namespace))
        .map(|run| run.join(PGID_FILE))
        .filter(|file| file.is_file())
        .collect()
}

/// Kills every process group an earlier life of this agent recorded and
/// that still runs (same leader id and start time); returns how many.
pub(crate) async fn kill_leftovers(work_dir: &Path) -> usize {
    let files = recorded_groups(work_dir);
    let killed = futures_util::future::join_all(
        files
            .iter()
            .map(|file| process_group::kill_recorded_group(file)),
    )
    .await;
    let mut count = 0;
    for (file, killed) in files.iter().zip(killed) {
        if killed {
            count += 1;
            tracing::warn!(
                "killed the process group recorded in {}: left running by an earlier life of this agent",
                file.display()
            );
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = load_or_create(dir.path()).expect("create");
        assert!(valid(&id), "{id}");
        assert_eq!(load_or_create(dir.path()).expect("load"), id);
        std::fs::write(dir.path().join(INSTANCE_FILE), "garbage").expect("write");
        let other = load_or_create(dir.path()).expect("replace");
        assert!(valid(&other) && other != id);
    }

    #[test]
    fn run_directories_are_scanned_for_group_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (ns, name, with_file) in [
            ("default", "a", true),
            ("team", "b", true),
            ("team", "c", false),
        ] {
            let run = dir.path().join(ns).join(name);
            std::fs::create_dir_all(&run).expect("mkdir");
            if with_file {
                std::fs::write(run.join(PGID_FILE), "1 1\n").expect("write");
            }
        }
        std::fs::write(dir.path().join(INSTANCE_FILE), "x").expect("write");
        let mut found = recorded_groups(dir.path());
        found.sort();
        assert_eq!(
            found,
            vec![
                dir.path().join("default/a").join(PGID_FILE),
                dir.path().join("team/b").join(PGID_FILE)
            ]
        );
    }
}
