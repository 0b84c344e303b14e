//! What the agent keeps on disk: a TaskRun's run directory (its output,
//! results and default working directory, `WORK_DIR/NAMESPACE/NAME`) goes
//! when the TaskRun is deleted; directories of TaskRuns that no longer
//! exist go when the agent lists its TaskRuns (at start, and after every
//! relist), once a get confirms each is gone; and the output of finished
//! runs is capped in total (`--max-output-bytes`), the oldest removed
//! first.
//!
//! Directories are first renamed into `WORK_DIR/.trash` (instant, and done
//! by the dispatch loop itself, so a new run of the same name never finds its
//! fresh directory deleted under it), then deleted in the background.
//!
//! Only directories holding an output file are taken for run directories,
//! so a `spec.workdir` under the work dir is never swept.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use sloth_sdk::objects::TaskRunSpec;
use sloth_sdk::{Api, Client, Error};
use tokio::sync::mpsc;

use crate::concurrency::{ActiveRuns, RunKey};
use crate::logs;

/// Where run directories wait for their deletion (a name no namespace has).
const TRASH_DIR: &str = ".trash";

/// The agent's disk housekeeping. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Retention {
    work_dir: PathBuf,
    max_output_bytes: u64,
    /// A cap check is running.
    capping: Arc<AtomicBool>,
    /// A cap check was asked for since the running one started.
    cap_again: Arc<AtomicBool>,
}

/// One run directory found on disk.
#[derive(Debug)]
struct RunDir {
    key: RunKey,
    output_bytes: u64,
    modified: SystemTime,
}

impl Retention {
    pub(crate) fn new(work_dir: PathBuf, max_output_bytes: u64) -> Self {
        Self {
            work_dir,
            max_output_bytes,
            capping: Arc::default(),
            cap_again: Arc::default(),
        }
    }

    /// Removes the run directory of `key` (its TaskRun was deleted). The
    /// caller makes sure no run of `key` is active.
    pub(crate) fn remove_run(&self, key: &RunKey) {
        if self.to_trash(key) {
            tracing::info!("removed the run directory of deleted taskrun {key}");
            self.empty_trash();
        }
    }

    /// The run directories of TaskRuns that are neither in `present`
    /// (every TaskRun bound here, as just listed) nor running: candidates
    /// for [`confirm_gone`], since a list may be a little stale. Also
    /// empties what an earlier life of the agent left in the trash.
    pub(crate) fn stale_runs(&self, present: &HashSet<RunKey>, runs: &ActiveRuns) -> Vec<RunKey> {
        self.empty_trash();
        self.run_dirs()
            .into_iter()
            .map(|dir| dir.key)
            .filter(|key| !present.contains(key) && !runs.contains(key))
            .collect()
    }

    /// Deletes the output of the oldest finished runs while the output on
    /// disk exceeds the cap; in the background, one check at a time.
    pub(crate) fn enforce_cap(&self, runs: &ActiveRuns) {
        self.cap_again.store(true, Ordering::SeqCst);
        if self.capping.swap(true, Ordering::SeqCst) {
            // The running check goes round once more.
            return;
        }
        let this = self.clone();
        let runs = runs.clone();
        tokio::task::spawn_blocking(move || {
            loop {
                while this.cap_again.swap(false, Ordering::SeqCst) {
                    let freed = this.cap(&runs);
                    if freed > 0 {
                        tracing::info!(
                            "deleted {freed} bytes of finished runs' output (--max-output-bytes {})",
                            this.max_output_bytes
                        );
                    }
                }
                this.capping.store(false, Ordering::SeqCst);
                // Asked again after the last look but before the flag
                // dropped: go on, unless a new check took over.
                if !this.cap_again.load(Ordering::SeqCst)
                    || this.capping.swap(true, Ordering::SeqCst)
                {
                    return;
                }
            }
        });
    }

    /// The cap, synchronously; returns the bytes deleted.
    fn cap(&self, runs: &ActiveRuns) -> u64 {
        let mut dirs = self.run_dirs();
        let mut total: u64 = dirs.iter().map(|d| d.output_bytes).sum();
        if total <= self.max_output_bytes {
            return 0;
        }
        dirs.sort_by_key(|d| d.modified);
        let mut freed = 0;
        for dir in dirs {
            if total <= self.max_output_bytes {
                break;
            }
            if dir.output_bytes == 0 || runs.contains(&dir.key) {
                continue;
            }
            let output = logs::output_path(&self.work_dir, &dir.key);
            // The index says nothing without its log.
            let _ = std::fs::remove_file(crate::output_index::index_path(&output));
            match std::fs::remove_file(&output) {
                Ok(()) => {
                    total = total.saturating_sub(dir.output_bytes);
                    freed += dir.output_bytes;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot delete {}: {e}", output.display()),
            }
        }
        freed
    }

    /// Every run directory under the work dir: `NAMESPACE/NAME` with valid
    /// object names, holding an output file.
    fn run_dirs(&self) -> Vec<RunDir> {
        let mut found = Vec::new();
        for namespace in subdirectories(&self.work_dir) {
            for name in subdirectories(&self.work_dir.join(&namespace)) {
                let Ok(key) = logs::check_key(&namespace, &name) else {
                    continue;
                };
                let output = logs::output_path(&self.work_dir, &key);
                let Ok(meta) = std::fs::metadata(&output) else {
                    continue;
                };
                found.push(RunDir {
                    key,
                    output_bytes: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        found
    }

    /// Moves the run directory of `key` into the trash; false when there
    /// was none.
    fn to_trash(&self, key: &RunKey) -> bool {
        let dir = logs::run_dir(&self.work_dir, key);
        if !dir.is_dir() {
            return false;
        }
        let trash = self.work_dir.join(TRASH_DIR);
        if let Err(e) = std::fs::create_dir_all(&trash) {
            tracing::warn!("cannot create {}: {e}", trash.display());
            return false;
        }
        static MOVED: AtomicU64 = AtomicU64::new(0);
        let target = trash.join(format!(
            "{}.{}.{}.{}",
            key.namespace,
            key.name,
            std::process::id(),
            MOVED.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::rename(&dir, &target) {
            Ok(()) => {
                // The namespace directory goes with its last run.
                let _ = std::fs::remove_dir(self.work_dir.join(&key.namespace));
                true
            }
            Err(e) => {
                tracing::warn!("cannot move {} away: {e}", dir.display());
                false
            }
        }
    }

    /// Deletes everything in the trash, in the background.
    fn empty_trash(&self) {
        let trash = self.work_dir.join(TRASH_DIR);
        tokio::task::spawn_blocking(move || {
            for entry in subdirectories(&trash) {
                let path = trash.join(entry);
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!("cannot delete {}: {e}", path.display());
                }
            }
        });
    }
}

/// Sends on `gone` each of `keys` whose TaskRun the apiserver no longer
/// has (NotFound on a get): the dispatch loop then removes its directory.
pub(crate) async fn confirm_gone(
    client: Client,
    keys: Vec<RunKey>,
    gone: mpsc::UnboundedSender<RunKey>,
) {
    for key in keys {
        let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), &key.namespace);
        match api.get(&key.name).await {
            Err(Error::NotFound(_)) => {
                if gone.send(key).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot tell whether taskrun {key} still exists: {e}"),
        }
    }
}

/// The names of the directories directly in `dir` (none when unreadable).
fn subdirectories(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// Parses a byte count: a number with an optional unit, K/M/G/T (powers of
/// 1000) or Ki/Mi/Gi/Ti (powers of 1024), optionally followed by B.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count such as 1073741824, 500M or 1GiB"))?;
    let unit = unit.strip_suffix('B').unwrap_or(unit);
    let scale: u64 = match unit {
        "" => 1,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use K, M, G, T, Ki, Mi, Gi or Ti)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::OUTPUT_FILE;

    fn make_run(work_dir: &Path, namespace: &str, name: &str, bytes: usize) {
        let dir = work_dir.join(namespace).join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(OUTPUT_FILE), vec![b'x'; bytes]).expect("write");
    }

    #[test]
    fn byte_counts_parse_with_units() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("500M"), Ok(500_000_000));
        assert_eq!(parse_bytes("2Ki"), Ok(2048));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("1X").is_err());
        assert!(parse_bytes("99999999999Ti").is_err());
    }

    #[tokio::test]
    async fn a_sweep_keeps_present_and_running_runs_and_user_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path();
        make_run(work, "default", "kept", 10);
        make_run(work, "default", "running", 10);
        make_run(work, "default", "gone", 10);
        make_run(work, "team", "gone-too", 10);
        // A spec.workdir under the work dir: no output file, never swept.
        std::fs::create_dir_all(work.join("project").join("src")).expect("mkdir");
        let runs = ActiveRuns::default();
        let _held = runs.insert(RunKey::new("default", "running"), "u1");
        let present = HashSet::from([RunKey::new("default", "kept")]);
        let retention = Retention::new(work.to_path_buf(), u64::MAX);
        let mut stale = retention.stale_runs(&present, &runs);
        stale.sort();
        assert_eq!(
            stale,
            [
                RunKey::new("default", "gone"),
                RunKey::new("team", "gone-too")
            ]
        );
        for key in &stale {
            retention.remove_run(key);
        }
        assert!(work.join("default/kept").is_dir());
        assert!(work.join("default/running").is_dir());
        assert!(!work.join("default/gone").exists());
        assert!(!work.join("team").exists());
        assert!(work.join("project/src").is_dir());
    }

    #[test]
    fn the_cap_deletes_the_oldest_finished_output_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        for (i, name) in ["a-oldest", "b-running", "c-middle", "d-newest"]
            .iter()
            .enumerate()
        {
            make_run(work, "default", name, 100);
            let file = std::fs::File::options()
                .write(true)
                .open(work.join("default").join(name).join(OUTPUT_FILE))
                .expect("open");
            file.set_modified(old + std::time::Duration::from_secs(i as u64))
                .expect("set mtime");
        }
        let runs = ActiveRuns::default();
        let _held = runs.insert(RunKey::new("default", "b-running"), "u1");
        // 400 bytes on disk, 200 allowed: the oldest finished two go, the
        // running one stays.
        let freed = Retention::new(work.to_path_buf(), 200).cap(&runs);
        assert_eq!(freed, 200);
        let has_output = |name: &str| work.join("default").join(name).join(OUTPUT_FILE).exists();
        assert!(!has_output("a-oldest"));
        assert!(has_output("b-running"));
        assert!(!has_output("c-middle"));
        assert!(has_output("d-newest"));
    }
}
