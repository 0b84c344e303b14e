//! What this machine has: CPUs, load, memory and disk, read from /proc and
//! statvfs. A reading that fails is reported as 0 rather than failing the
//! heartbeat.

use std::path::Path;

use sloth_sdk::objects::AgentResources;

use crate::config::cpu_count;

/// A snapshot of the machine's resources; `work_dir` is where disk space counts.
pub(crate) fn snapshot(work_dir: &Path) -> AgentResources {
    let (memory_bytes, memory_available_bytes) = std::fs::read_to_string("/proc/meminfo")
        .map(|text| parse_meminfo(&text))
        .unwrap_or_default();
    AgentResources {
        cpu: cpu_count(),
        load1: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| parse_load1(&text))
            .unwrap_or_default(),
        memory_bytes,
        memory_available_bytes,
        disk_available_bytes: disk_available(work_dir).unwrap_or_default(),
    }
}

/// The 1-minute load average: the first field of /proc/loadavg.
fn parse_load1(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// (MemTotal, MemAvailable) in bytes from /proc/meminfo (which counts in kB).
fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb.saturating_mul(1024))
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// Bytes available to unprivileged users on the file system holding `dir`.
fn disk_available(dir: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let (blocks, size) = (
        u64::from(stat.blocks_available()),
        u64::from(stat.fragment_size()),
    );
    Some(blocks.saturating_mul(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(parse_load1("0.52 0.58 0.59 1/467 12345\n"), Some(0.52));
        assert_eq!(parse_load1(""), None);
        let meminfo = "MemTotal:       16314248 kB\nMemFree:  1 kB\nMemAvailable:   9000000 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            (16_314_248 * 1024, 9_000_000 * 1024)
        );
        assert_eq!(parse_meminfo("garbage"), (0, 0));
    }

    #[test]
    fn reads_this_machine() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = snapshot(dir.path());
        assert!(r.cpu >= 1);
        assert!(r.memory_bytes > 0);
        assert!(r.memory_available_bytes <= r.memory_bytes);
        assert!(r.disk_available_bytes > 0);
    }
}
