//! The syntax of names, keys and addresses, as Kubernetes defines it
//! (`k8s.io/apimachinery/pkg/util/validation`). Each check returns the
//! explanation to report, not a [`FieldError`](super::FieldError), so the
//! caller decides which field path it belongs to; slothctl and the apiserver
//! use the same functions and so agree on every message.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest RFC 1123 label: namespaces, task names.
pub const DNS1123_LABEL_MAX_LEN: usize = 63;
/// Longest RFC 1123 subdomain: object names.
pub const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;
/// Leaves room for the 5-character suffix the server appends to a
/// `generateName` prefix, so every generated name is still a valid name.
pub const GENERATE_NAME_MAX_LEN: usize = DNS1123_SUBDOMAIN_MAX_LEN - 5;
/// Longest name part of a qualified name (label and annotation keys).
pub const QUALIFIED_NAME_MAX_LEN: usize = 63;
/// Longest label value.
pub const LABEL_VALUE_MAX_LEN: usize = 63;

const LABEL_FMT: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
     characters or '-', and must start and end with an alphanumeric character \
     (e.g. 'my-name', or '123-abc')";
const SUBDOMAIN_FMT: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
     character (e.g. 'example.com')";
const QUALIFIED_NAME_FMT: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', \
     or '123-abc')";
const LABEL_VALUE_FMT: &str = "a valid label value must be an empty string or consist of \
     alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
     character (e.g. 'MyValue', or 'my_value', or '12345')";

fn too_long(max: usize, len: usize) -> String {
    format!("must be no more than {max} characters (is {len})")
}

fn is_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// An RFC 1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63
/// characters): namespaces and workflow task names.
pub fn validate_dns1123_label(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let mut problems = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LEN {
        problems.push(too_long(DNS1123_LABEL_MAX_LEN, value.len()));
    }
    if !is_dns1123_label(value) {
        problems.push(LABEL_FMT.to_string());
    }
    join(problems)
}

/// An RFC 1123 subdomain (dot-separated labels, at most 253 characters):
/// object names, label-key prefixes.
pub fn validate_dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let mut problems = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        problems.push(too_long(DNS1123_SUBDOMAIN_MAX_LEN, value.len()));
    }
    if !value.split('.').all(is_dns1123_label) {
        problems.push(SUBDOMAIN_FMT.to_string());
    }
    join(problems)
}

/// An object name (`metadata.name`): an RFC 1123 subdomain.
pub fn validate_name(value: &str) -> Result<(), String> {
    validate_dns1123_subdomain(value)
}

/// A key of a Secret's `data`, as Kubernetes allows: letters, digits,
/// '-', '_' and '.', at most 253 characters, and not `.` or `..`.
pub fn validate_secret_key(value: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if value.is_empty() {
        Err("must not be empty".into())
    } else if value.len() > 253 {
        Err(too_long(253, value.len()))
    } else if value == "." || value == ".." || !value.chars().all(allowed) {
        Err(
            "a valid Secret key must consist of letters, digits, '-', '_' or '.' \
             (e.g. 'password', 'tls.crt'), and must not be '.' or '..'"
                .into(),
        )
    } else {
        Ok(())
    }
}

/// A `metadata.generateName` prefix: valid once the server appends a random
/// alphanumeric suffix, so it may end with '-' (e.g. `build-`), and at most
/// 248 characters.
pub fn validate_generate_name(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("must not be empty".into());
    }
    let mut problems = Vec::new();
    if prefix.len() > GENERATE_NAME_MAX_LEN {
        problems.push(too_long(GENERATE_NAME_MAX_LEN, prefix.len()));
    }
    // Checked as the shortest name it can produce; the length is checked
    // above against the prefix limit instead.
    let sample = format!("{prefix}a");
    if !sample.split('.').all(is_dns1123_label) {
        problems.push(format!(
            "{SUBDOMAIN_FMT}; a prefix may also end with '-' (e.g. 'build-')"
        ));
    }
    join(problems)
}

fn is_qualified_name_part(value: &str) -> bool {
    let bytes = value.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A qualified name: an optional RFC 1123 subdomain prefix and '/', then a
/// name of at most 63 alphanumerics, '-', '_' or '.', starting and ending
/// alphanumeric (e.g. `app`, `sloth.dev/zone`). Label keys, annotation keys,
/// finalizers and selector keys.
pub fn validate_qualified_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let (prefix, name) = match value.split('/').collect::<Vec<_>>()[..] {
        [name] => (None, name),
        [prefix, name] => (Some(prefix), name),
        _ => {
            return Err(format!(
                "a qualified name {QUALIFIED_NAME_FMT}, with an optional DNS subdomain \
                 prefix and '/' (e.g. 'example.com/MyName')"
            ));
        }
    };
    let mut problems = Vec::new();
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            problems.push("prefix part must not be empty".to_string());
        } else if let Err(e) = validate_dns1123_subdomain(prefix) {
            problems.push(format!("prefix part {e}"));
        }
    }
    if name.is_empty() {
        problems.push("name part must not be empty".to_string());
    } else {
        if name.len() > QUALIFIED_NAME_MAX_LEN {
            problems.push(format!(
                "name part {}",
                too_long(QUALIFIED_NAME_MAX_LEN, name.len())
            ));
        }
        if !is_qualified_name_part(name) {
            problems.push(format!("name part {QUALIFIED_NAME_FMT}"));
        }
    }
    join(problems)
}

/// A label key: a qualified name.
pub fn validate_label_key(value: &str) -> Result<(), String> {
    validate_qualified_name(value)
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' or '.',
/// starting and ending alphanumeric.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LEN {
        problems.push(too_long(LABEL_VALUE_MAX_LEN, value.len()));
    }
    if !is_qualified_name_part(value) {
        problems.push(LABEL_VALUE_FMT.to_string());
    }
    join(problems)
}

/// A workflow task name as its author wrote it: 1 to 63 letters (either
/// case), digits, '-', '_' or '.', starting and ending with a letter or
/// digit (`Build_App`, `deploy.prod`). It is also the value of the TaskRun's
/// task label, hence the label-value rules; the TaskRun's own name is
/// derived from it (see `object_name`).
pub fn validate_task_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let mut problems = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LEN {
        problems.push(too_long(DNS1123_LABEL_MAX_LEN, value.len()));
    }
    if !is_qualified_name_part(value) {
        problems.push(
            "a task name must consist of letters, digits, '-', '_' or '.', and must start and \
             end with a letter or digit (e.g. 'build', 'Build_App' or 'deploy.prod')"
                .to_string(),
        );
    }
    join(problems)
}

fn is_identifier(value: &str) -> bool {
    let mut chars = value.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An identifier (`[A-Za-z_][A-Za-z0-9_]*`): workflow parameter names, which
/// scripts read as `$(params.NAME)` and Lua reads as `params.NAME`.
pub fn validate_identifier(value: &str) -> Result<(), String> {
    if is_identifier(value) {
        Ok(())
    } else {
        Err(
            "must be an identifier: letters, digits and '_', not starting with a digit \
             (e.g. 'greeting', or 'build_id')"
                .into(),
        )
    }
}

/// An environment variable name (`[A-Za-z_][A-Za-z0-9_]*`); other names
/// cannot be read from a shell.
pub fn validate_env_var_name(value: &str) -> Result<(), String> {
    if is_identifier(value) {
        Ok(())
    } else {
        Err(
            "a valid environment variable name must consist of letters, digits and '_', \
             and must not start with a digit (e.g. 'MY_VAR', or 'my_var1')"
                .into(),
        )
    }
}

/// A Lua function name, possibly inside tables (`main`, `jobs.build`).
pub fn validate_lua_function_name(value: &str) -> Result<(), String> {
    let dsl_part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    if let Some((workflow, task)) = value.split_once('/') {
        // A task of a Lua workflow file: the agent evaluates the file and
        // calls that task's function; `WORKFLOW/hook:NAME` is a workflow
        // hook of it.
        let task = task.strip_prefix("hook:").unwrap_or(task);
        return if dsl_part(workflow) && dsl_part(task) {
            Ok(())
        } else {
            Err(
                "must be WORKFLOW/TASK naming a task of a Lua workflow file (e.g. 'ci/build')"
                    .into(),
            )
        };
    }
    if value.split('.').all(is_identifier) {
        Ok(())
    } else {
        Err(
            "must be a Lua function name: identifiers (letters, digits and '_', not \
             starting with a digit) separated by '.' (e.g. 'main', or 'jobs.build')"
                .into(),
        )
    }
}

/// `host:port` as the apiserver dials it: a DNS name or IPv4 address, or an
/// IPv6 address in brackets, and a port from 1 to 65535; no scheme.
pub fn validate_host_port(value: &str) -> Result<(), String> {
    const EXAMPLE: &str = "(e.g. '10.0.0.5:7000', 'agent1.example.com:7000', or '[::1]:7000')";
    if value.contains("://") {
        return Err(format!("must be host:port without a scheme {EXAMPLE}"));
    }
    let port = if let Some(rest) = value.strip_prefix('[') {
        let Some((host, port)) = rest.split_once("]:") else {
            return Err(format!("must be host:port {EXAMPLE}"));
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 address {host:?} {EXAMPLE}"));
        }
        port
    } else {
        let Some((host, port)) = value.rsplit_once(':') else {
            return Err(format!("must be host:port {EXAMPLE}"));
        };
        if host.contains(':') {
            return Err(format!(
                "an IPv6 host must be written in brackets {EXAMPLE}"
            ));
        }
        // DNS names are case-insensitive; an IPv4 address is also a valid
        // subdomain, but a malformed one (`10.0.0.999`) should not pass as a name.
        let looks_numeric = host
            .split('.')
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()));
        let ok = if looks_numeric {
            host.parse::<Ipv4Addr>().is_ok()
        } else {
            validate_dns1123_subdomain(&host.to_ascii_lowercase()).is_ok()
        };
        if !ok {
            return Err(format!(
                "host {host:?} must be a DNS name or an IP address {EXAMPLE}"
            ));
        }
        port
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !port.starts_with('+') => Ok(()),
        _ => Err(format!(
            "port {port:?} must be a number from 1 to 65535 {EXAMPLE}"
        )),
    }
}

fn join(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// A value as quoted in a message, shortened so a 10 KB value does not
/// drown the explanation.
pub(super) fn shown(value: &str) -> String {
    const MAX: usize = 64;
    if value.len() <= MAX {
        return format!("{value:?}");
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &value[..end], value.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "a-b", "0", "abc123", &"a".repeat(63)] {
            assert_eq!(validate_dns1123_label(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(validate_dns1123_label(bad).is_err(), "{bad}");
        }
        let e = validate_dns1123_label(&"a".repeat(64)).expect_err("too long");
        assert!(e.contains("no more than 63 characters"), "{e}");
    }

    #[test]
    fn subdomains() {
        for ok in [
            "a",
            "a.b",
            "my-app.example.com",
            "10.0.0.1",
            &"a".repeat(253),
        ] {
            assert_eq!(validate_dns1123_subdomain(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Bad_Name",
            "-x",
            "x-",
            ".x",
            "x.",
            "a..b",
            "a.-b",
            "A",
            "a b",
            &"a".repeat(254),
        ] {
            assert!(validate_dns1123_subdomain(bad).is_err(), "{bad}");
        }
        let e = validate_name("Bad_Name").expect_err("bad");
        assert!(e.contains("RFC 1123 subdomain"), "{e}");
        let e = validate_name(&"a".repeat(254)).expect_err("long");
        assert_eq!(e, "must be no more than 253 characters (is 254)");
    }

    #[test]
    fn generate_name_prefixes() {
        for ok in ["build-", "build", "a.b-", &"a".repeat(248)] {
            assert_eq!(validate_generate_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-", "-build-", "Build-", "a_b-", &"a".repeat(249)] {
            assert!(validate_generate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qualified_names() {
        for ok in [
            "app",
            "App_1",
            "a.b-c_d",
            "sloth.dev/zone",
            "example.com/MyName",
            &"a".repeat(63),
            &format!("{}/x", "a".repeat(253)),
        ] {
            assert_eq!(validate_qualified_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/x",
            "x/",
            "a/b/c",
            "-app",
            "app-",
            "a b",
            "Bad_Prefix/x",
            "app/x!",
            &"a".repeat(64),
            &format!("{}/x", "a".repeat(254)),
        ] {
            assert!(validate_qualified_name(bad).is_err(), "{bad}");
        }
        let e = validate_label_key("/x").expect_err("empty prefix");
        assert_eq!(e, "prefix part must not be empty");
    }

    #[test]
    fn label_values() {
        for ok in ["", "v", "V1.2_3-x", &"a".repeat(63)] {
            assert_eq!(validate_label_value(ok), Ok(()), "{ok}");
        }
        for bad in ["-v", "v-", "a/b", "a b", "é", &"a".repeat(64)] {
            assert!(validate_label_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_env_names_and_lua_functions() {
        for ok in ["A", "_x", "MY_VAR1", "lower"] {
            assert_eq!(validate_env_var_name(ok), Ok(()), "{ok}");
            assert_eq!(validate_identifier(ok), Ok(()), "{ok}");
        }
        for bad in ["", "1BAD", "a-b", "a.b", "a b", "é"] {
            assert!(validate_env_var_name(bad).is_err(), "{bad}");
            assert!(validate_identifier(bad).is_err(), "{bad}");
        }
        assert_eq!(validate_lua_function_name("jobs.build"), Ok(()));
        assert_eq!(validate_lua_function_name("ci-pipeline/build_1"), Ok(()));
        for bad in ["", "a.", ".a", "1a", "a-b", "/a", "a/", "a/b c", "a/b/c"] {
            assert!(validate_lua_function_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_ports() {
        for ok in [
            "10.0.0.5:7000",
            "agent1.example.com:7000",
            "Agent1:1",
            "localhost:65535",
            "[::1]:7000",
            "[fe80::1]:80",
        ] {
            assert_eq!(validate_host_port(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "host",
            ":7000",
            "host:",
            "host:0",
            "host:65536",
            "host:+80",
            "host:http",
            "http://host:80",
            "::1:80",
            "[::1]",
            "[nope]:80",
            "10.0.0.999:80",
            "bad_host:80",
        ] {
            assert!(validate_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shown_values_are_shortened_on_a_char_boundary() {
        assert_eq!(shown("x"), "\"x\"");
        let long = format!("{}é{}", "a".repeat(63), "b".repeat(100));
        let s = shown(&long);
        assert!(s.starts_with(&format!("\"{}\"...", "a".repeat(63))), "{s}");
        assert!(s.ends_with("(165 bytes)"), "{s}");
    }
}
