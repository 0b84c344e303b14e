//! A value built from files, rebuilt when any of them changes on disk, so
//! certificates rotate without a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often the files' metadata is looked at: a `stat` per file, at most
/// once a second however many connections arrive.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

type Stamp = Option<(SystemTime, u64)>;
/// Rebuilds the value; the error is only logged (the old value stays).
type Build<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;

struct State<T> {
    value: Arc<T>,
    stamps: Vec<Stamp>,
    checked: Instant,
}

/// A value (a rustls config, a token table) built from `paths`.
pub struct Reloading<T> {
    what: &'static str,
    paths: Vec<PathBuf>,
    build: Build<T>,
    state: Mutex<State<T>>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

impl<T> Reloading<T> {
    /// Builds the value now (an error here is a start-up error) and again
    /// whenever a file's modification time or size changes.
    pub fn new<E: std::fmt::Display>(
        what: &'static str,
        paths: Vec<PathBuf>,
        build: impl Fn() -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<Self, E> {
        let stamps = stamps(&paths);
        let value = Arc::new(build()?);
        Ok(Self {
            what,
            paths,
            build: Box::new(move || build().map_err(|e| e.to_string())),
            state: Mutex::new(State {
                value,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The current value. A rebuild that fails (a certificate written
    /// before its key, say) keeps the previous value and is tried again at
    /// the next check.
    pub fn current(&self) -> Arc<T> {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.checked.elapsed() < CHECK_INTERVAL {
            return state.value.clone();
        }
        state.checked = Instant::now();
        let now = stamps(&self.paths);
        if now != state.stamps {
            match (self.build)() {
                Ok(value) => {
                    state.value = Arc::new(value);
                    state.stamps = now;
                    tracing::info!(what = self.what, "reloaded from disk");
                }
                Err(e) => {
                    tracing::warn!(what = self.what, error = %e, "cannot reload; keeping the previous one")
                }
            }
        }
        state.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TlsError;

    #[test]
    fn rebuilds_when_a_file_changes_and_keeps_the_old_value_on_error() {
        let dir = tempfile_dir();
        let path = dir.join("value");
        std::fs::write(&path, "1").expect("write");
        let read_path = path.clone();
        let reloading = Reloading::new("test value", vec![path.clone()], move || {
            let text = std::fs::read_to_string(&read_path).map_err(|source| TlsError::Read {
                path: read_path.clone(),
                source,
            })?;
            text.trim().parse::<u32>().map_err(|e| TlsError::Invalid {
                path: read_path.clone(),
                message: e.to_string(),
            })
        })
        .expect("first build");
        assert_eq!(*reloading.current(), 1);

        std::fs::write(&path, "22").expect("write");
        force_check(&reloading);
        assert_eq!(*reloading.current(), 22);

        std::fs::write(&path, "not a number").expect("write");
        force_check(&reloading);
        assert_eq!(
            *reloading.current(),
            22,
            "a failed rebuild keeps the old value"
        );

        std::fs::write(&path, "333").expect("write");
        force_check(&reloading);
        assert_eq!(*reloading.current(), 333);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn force_check<T>(reloading: &Reloading<T>) {
        let mut state = reloading.state.lock().expect("lock");
        state.checked = Instant::now() - CHECK_INTERVAL;
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sloth-reloading-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
