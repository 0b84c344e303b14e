//! Progress of uploads and downloads on a terminal: after a second, one
//! line on stderr (bytes moved, total, rate) rewritten in place; nothing
//! when stderr is not a terminal or the transfer is quick.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sloth_sdk::blob::BlobProgress;

/// Quiet transfers end before this.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// Redraws at most this often.
const REDRAW: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct State {
    start: Instant,
    drawn: Option<Instant>,
}

/// A progress line for one transfer.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    what: String,
    total: u64,
    state: Arc<Mutex<State>>,
}

impl Progress {
    /// None when stderr is no terminal: nothing is ever printed.
    pub(crate) fn on_terminal(what: &str, total: u64) -> Option<Self> {
        std::io::stderr().is_terminal().then(|| Self {
            what: what.to_string(),
            total,
            state: Arc::new(Mutex::new(State {
                start: Instant::now(),
                drawn: None,
            })),
        })
    }

    /// The callback the blob calls report to.
    pub(crate) fn callback(&self) -> BlobProgress {
        let this = self.clone();
        Arc::new(move |bytes| this.update(bytes))
    }

    fn update(&self, bytes: u64) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(state.start);
        if elapsed < SHOW_AFTER || state.drawn.is_some_and(|d| now.duration_since(d) < REDRAW) {
            return;
        }
        state.drawn = Some(now);
        eprint!("\r{}", line(&self.what, bytes, self.total, elapsed));
        let _ = std::io::stderr().flush();
    }

    /// Ends the line if one was drawn.
    pub(crate) fn finish(&self) {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.drawn.is_some() {
            eprintln!();
        }
    }
}

/// `uploading workspace: 12.0 MiB / 100.0 MiB (24.0 MiB/s)`.
pub(crate) fn line(what: &str, bytes: u64, total: u64, elapsed: Duration) -> String {
    let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
    format!(
        "{what}: {} / {} ({}/s)   ",
        human(bytes as f64),
        human(total as f64),
        human(rate)
    )
}

/// Bytes in binary units.
pub(crate) fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_bytes_total_and_rate() {
        assert_eq!(
            line(
                "uploading",
                12 * 1024 * 1024,
                100 * 1024 * 1024,
                Duration::from_secs(2)
            )
            .trim_end(),
            "uploading: 12.0 MiB / 100.0 MiB (6.0 MiB/s)"
        );
        assert_eq!(human(512.0), "512 B");
    }
}
