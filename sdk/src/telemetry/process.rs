//! `process_*` metrics as the Prometheus client libraries name them, read
//! from /proc on each scrape (prometheus-client has no process collector).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of /proc's CPU times: the kernel reports them in
/// USER_HZ, which is 100 on every architecture Linux exports to user space.
const USER_HZ: f64 = 100.0;

/// One reading of this process from /proc.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time used, in seconds.
    pub cpu_seconds: f64,
    /// Threads of the process.
    pub threads: i64,
    /// When the process started, in Unix seconds.
    pub start_time_seconds: f64,
    /// Virtual memory size, in bytes.
    pub virtual_memory_bytes: i64,
}

/// Parses /proc/self/stat (`stat`), with the boot time (`btime` of
/// /proc/stat). The command name, field 2, may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat(stat: &str, boot_time: f64) -> Option<ProcessStats> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): field N is at index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    let ticks = |n: usize| field(n)?.parse::<f64>().ok();
    Some(ProcessStats {
        cpu_seconds: (ticks(14)? + ticks(15)?) / USER_HZ,
        threads: field(20)?.parse().ok()?,
        start_time_seconds: boot_time + ticks(22)? / USER_HZ,
        virtual_memory_bytes: field(23)?.parse().ok()?,
    })
}

/// `btime` of /proc/stat: when the machine booted, in Unix seconds.
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft "Max open files" of /proc/self/limits.
fn max_fds() -> Option<i64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

/// VmRSS of /proc/self/status, in bytes (the kernel counts it in kB,
/// which spares knowing the page size that /proc/self/stat counts in).
fn resident_memory_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// Reports the process metrics on each scrape; nothing where /proc is absent.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| parse_stat(&stat, boot_time()?));
        if let Some(stats) = stats {
            encode(
                &mut encoder,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                ConstCounter::new(stats.cpu_seconds),
            )?;
            let gauges = [
                ("process_threads", "Number of OS threads", stats.threads),
                (
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes",
                    stats.virtual_memory_bytes,
                ),
            ];
            for (name, help, value) in gauges {
                encode(&mut encoder, name, help, ConstGauge::new(value))?;
            }
            encode(
                &mut encoder,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                ConstGauge::new(stats.start_time_seconds),
            )?;
        }
        let others = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                resident_memory_bytes(),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                open_fds(),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                max_fds(),
            ),
        ];
        for (name, help, value) in others {
            if let Some(value) = value {
                encode(&mut encoder, name, help, ConstGauge::new(value))?;
            }
        }
        Ok(())
    }
}

/// Writes one metric with its `# HELP` and `# TYPE` lines.
fn encode(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_command_holding_spaces_and_parens() {
        // Fields 14/15 utime/stime, 20 threads, 22 starttime, 23 vsize.
        let stat = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 7 0 1000 \
                    123456789 300 18446744073709551615";
        let stats = parse_stat(stat, 1_700_000_000.0).expect("parses");
        assert_eq!(stats.cpu_seconds, 4.0);
        assert_eq!(stats.threads, 7);
        assert_eq!(stats.start_time_seconds, 1_700_000_010.0);
        assert_eq!(stats.virtual_memory_bytes, 123_456_789);
    }

    #[test]
    fn truncated_stat_is_none() {
        assert_eq!(parse_stat("42 (x) S 1 2", 0.0), None);
        assert_eq!(parse_stat("no parens", 0.0), None);
    }
}
