//! Task results: a shell TaskRun writes `key=value` lines to the file named
//! by `$SLOTH_RESULTS`; after the process ends the agent parses it into
//! `status.results`, within the caps the apiserver enforces.

use std::collections::BTreeMap;
use std::path::Path;

use sloth_sdk::validation::limits::{MAX_RESULTS, MAX_RESULTS_BYTES};

/// The environment variable naming the results file.
pub(crate) const RESULTS_ENV: &str = "SLOTH_RESULTS";

/// The results file's name, in the run directory.
pub(crate) const RESULTS_FILE: &str = "results";

/// Longest result key.
pub(crate) const MAX_KEY_LEN: usize = 63;

/// Why a results file was refused, for the TaskRun's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InvalidResults(pub String);

impl std::fmt::Display for InvalidResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// A result key: `[A-Za-z0-9_.-]{1,63}`. Shell and Lua results share it.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("empty key".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "key is {} characters long (at most {MAX_KEY_LEN})",
            key.len()
        ));
    }
    if let Some(bad) = key.chars().find(|c| !key_char(*c)) {
        return Err(format!(
            "invalid key {key:?}: character {bad:?} is not allowed (use A-Z a-z 0-9 _ . -)"
        ));
    }
    Ok(())
}

/// At most [`MAX_RESULTS`] results and [`MAX_RESULTS_BYTES`] of keys and
/// values, as the apiserver accepts them.
pub(crate) fn check_caps(results: &BTreeMap<String, String>) -> Result<(), String> {
    if results.len() > MAX_RESULTS {
        return Err(format!("too many results (at most {MAX_RESULTS})"));
    }
    let bytes: usize = results.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_RESULTS_BYTES {
        return Err(format!(
            "results too large: {bytes} bytes of keys and values (at most {MAX_RESULTS_BYTES})"
        ));
    }
    Ok(())
}

/// Parses a results file: one `key=value` per line, blank lines ignored;
/// the key matches `[A-Za-z0-9_.-]{1,63}`, the value is the rest of the
/// line after the first `=` (a trailing `\r` trimmed). At most
/// [`MAX_RESULTS`] entries and [`MAX_RESULTS_BYTES`] of keys plus values.
/// A key given twice keeps its last value.
pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, String>, InvalidResults> {
    let mut results = BTreeMap::new();
    for (index, raw) in text.split('\n').enumerate() {
        let n = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(InvalidResults(format!(
                "line {n}: missing '=' (expected key=value)"
            )));
        };
        check_key(key).map_err(|why| InvalidResults(format!("line {n}: {why}")))?;
        results.insert(key.to_string(), value.to_string());
        check_caps(&results).map_err(|why| InvalidResults(format!("line {n}: {why}")))?;
    }
    Ok(results)
}

/// Reads and parses the results file at `path`: `Ok(None)` when it does not
/// exist.
pub(crate) async fn read(path: &Path) -> Result<Option<BTreeMap<String, String>>, InvalidResults> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(InvalidResults(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    // Refuse a huge file before decoding it: even blank lines count here.
    let limit = MAX_RESULTS_BYTES + 2 * MAX_RESULTS + 64 * 1024;
    if bytes.len() > limit {
        return Err(InvalidResults(format!(
            "the results file is {} bytes (results are at most {MAX_RESULTS_BYTES} bytes of keys and values)",
            bytes.len()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        InvalidResults(format!("line {line}: not valid UTF-8"))
    })?;
    parse(&text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text).expect_err("should be refused").0
    }

    #[test]
    fn parses_key_value_lines() {
        let r =
            parse("version=1.2.3\n\nurl=http://x/?a=b\nempty=\n  \nv.1_a-b=x y \n").expect("ok");
        assert_eq!(r.len(), 4);
        assert_eq!(r["version"], "1.2.3");
        assert_eq!(r["url"], "http://x/?a=b");
        assert_eq!(r["empty"], "");
        assert_eq!(r["v.1_a-b"], "x y ");
        assert!(parse("").expect("empty").is_empty());
        assert_eq!(parse("a=1\na=2").expect("dup")["a"], "2");
    }

    #[test]
    fn trims_crlf() {
        let r = parse("a=1\r\nb=2\r\n\r\n").expect("ok");
        assert_eq!(r["a"], "1");
        assert_eq!(r["b"], "2");
    }

    #[test]
    fn refuses_bad_keys() {
        assert!(err("ok=1\nbad key=2").starts_with("line 2: invalid key"));
        assert!(err("=x").starts_with("line 1: empty key"));
        assert!(err("k$=x").contains("'$'"));
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(err(&format!("{long}=x")).contains("at most 63"));
        assert!(parse(&format!("{}=x", "k".repeat(MAX_KEY_LEN))).is_ok());
    }

    #[test]
    fn refuses_lines_without_equals() {
        assert_eq!(
            err("a=1\n\njust text\n"),
            "line 3: missing '=' (expected key=value)"
        );
    }

    #[test]
    fn refuses_too_many() {
        let ok: String = (0..MAX_RESULTS).map(|i| format!("k{i}=v\n")).collect();
        assert_eq!(parse(&ok).expect("at the cap").len(), MAX_RESULTS);
        let over = format!("{ok}one.more=v\n");
        assert!(err(&over).starts_with(&format!("line {}: too many results", MAX_RESULTS + 1)));
    }

    #[test]
    fn refuses_too_big() {
        let value = "x".repeat(MAX_RESULTS_BYTES - 1);
        assert!(parse(&format!("k={value}")).is_ok());
        let message = err(&format!("k={value}\nl=y"));
        assert!(
            message.starts_with("line 2: results too large"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn absent_file_means_no_results() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(RESULTS_FILE);
        assert_eq!(read(&path).await, Ok(None));
        std::fs::write(&path, b"a=1\n\xff\n").expect("write");
        assert_eq!(
            read(&path).await,
            Err(InvalidResults("line 2: not valid UTF-8".into()))
        );
        std::fs::write(&path, "a=1\n").expect("write");
        assert_eq!(read(&path).await.expect("ok").expect("some")["a"], "1");
    }
}
