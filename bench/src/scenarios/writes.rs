//! The writes a scenario causes, from the apiserver's own metrics: the
//! store revisions it advanced (every durable write is one revision) and
//! the API write requests by verb and kind, per TaskRun.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

/// The counters read from one `/metrics` page.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    revision: f64,
    /// Write requests by "verb kind" (every result code summed).
    requests: BTreeMap<String, f64>,
    /// Client watches open.
    watches: f64,
}

/// The verbs that write.
const WRITE_VERBS: &[&str] = &["create", "update", "updatestatus", "delete"];

/// Reads the apiserver's `/metrics` at `http_url`; None (reported as such)
/// when it cannot be read.
pub(crate) async fn snapshot(http_url: &str) -> Option<Snapshot> {
    let address = http_url.strip_prefix("http://")?.to_string();
    let text = tokio::task::spawn_blocking(move || get_metrics(&address))
        .await
        .ok()??;
    Some(parse(&text))
}

pub(crate) fn get_metrics(address: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn parse(text: &str) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if name == "sloth_apiserver_store_revision" {
            snapshot.revision = value;
        } else if name == "sloth_apiserver_watches" {
            snapshot.watches = value;
        } else if let Some(labels) = name.strip_prefix("sloth_apiserver_requests_total{") {
            let label = |key: &str| {
                labels
                    .split(',')
                    .find_map(|l| l.strip_prefix(&format!("{key}=\"")))
                    .and_then(|v| v.split('"').next())
                    .unwrap_or_default()
                    .to_string()
            };
            let verb = label("verb");
            if WRITE_VERBS.contains(&verb.as_str()) {
                *snapshot
                    .requests
                    .entry(format!("{verb} {}", label("kind")))
                    .or_default() += value;
            }
        }
    }
    snapshot
}

/// The difference per TaskRun: `store_revisions` and each write request
/// kind, and the client watches open at the end.
pub(crate) fn per_taskrun(before: Option<Snapshot>, after: Option<Snapshot>, n: usize) -> Value {
    let (Some(before), Some(after)) = (before, after) else {
        return Value::Null;
    };
    let n = n.max(1) as f64;
    let per = |d: f64| (d / n * 1000.0).round() / 1000.0;
    let requests: BTreeMap<&String, f64> = after
        .requests
        .iter()
        .map(|(k, v)| (k, per(v - before.requests.get(k).copied().unwrap_or(0.0))))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    json!({
        "store_revisions": per(after.revision - before.revision),
        "write_requests": requests,
        "open_watches": after.watches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_requests_and_the_revision_are_read_from_prometheus_text() {
        let page = "# HELP x\n\
            sloth_apiserver_requests_total{verb=\"create\",kind=\"TaskRun\",code=\"Ok\"} 10\n\
            sloth_apiserver_requests_total{verb=\"create\",kind=\"TaskRun\",code=\"Conflict\"} 2\n\
            sloth_apiserver_requests_total{verb=\"get\",kind=\"TaskRun\",code=\"Ok\"} 7\n\
            sloth_apiserver_store_revision 40\n\
            sloth_apiserver_watches 6\n";
        let s = parse(page);
        assert_eq!(s.revision, 40.0);
        assert_eq!(s.watches, 6.0);
        assert_eq!(s.requests.get("create TaskRun"), Some(&12.0));
        assert_eq!(s.requests.len(), 1, "reads are not writes");
        let before = parse("sloth_apiserver_store_revision 0\n");
        let v = per_taskrun(Some(before), Some(s), 4);
        assert_eq!(v["store_revisions"], 10.0);
        assert_eq!(v["write_requests"]["create TaskRun"], 3.0);
    }
}
