//! `slothctl ui`: prints the dashboard URL of the current context's
//! apiserver (`--http-server`, else the config's `httpServer`, else the
//! first gRPC server's host on the default HTTP port 8080) and opens it with
//! xdg-open when a graphical session is there (`--no-open`: print only).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cli::{Cli, UiArgs};
use crate::error::CliError;
use crate::printer::emit;

/// The apiserver's default `--http-listen` port.
const DEFAULT_HTTP_PORT: u16 = 8080;

pub(crate) fn run(cli: &Cli, args: &UiArgs) -> anyhow::Result<()> {
    let file = crate::config::load(cli.config_file().as_deref())?;
    let resolved = file.resolve(cli.context.as_deref())?;
    let base = match args.http_server.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(flag) => checked(flag, "--http-server")?,
        None => match resolved.http_server.as_deref() {
            Some(configured) => checked(configured, "httpServer in the config file")?,
            None => {
                let servers = crate::config::servers(&cli.server, &resolved);
                derived(
                    servers
                        .first()
                        .map_or(crate::config::DEFAULT_SERVER, String::as_str),
                )?
            }
        },
    };
    let url = format!("{}/ui/", base.trim_end_matches('/'));
    emit(&format!("{url}\n"))?;
    let opener = if args.no_open { None } else { browser_opener() };
    if let Some(opener) = opener {
        // Detached: the browser outlives slothctl; a failure to open is
        // not one of the command's (the URL is printed).
        if let Err(e) = Command::new(&opener)
            .arg(&url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            eprintln!("warning: cannot run {}: {e}", opener.display());
        }
    }
    Ok(())
}

/// An HTTP base URL as given, or a usage error naming where it came from.
fn checked(url: &str, source: &str) -> Result<String, CliError> {
    let url = url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            CliError::usage(format!(
                "{source}: {url:?} is not an http:// or https:// URL"
            ))
        })?;
    if rest.trim_end_matches('/').is_empty() || rest.contains(char::is_whitespace) {
        return Err(CliError::usage(format!("{source}: {url:?} names no host")));
    }
    Ok(url.to_string())
}

/// The HTTP address next to a gRPC server URL: same scheme and host, the
/// default HTTP port.
fn derived(grpc: &str) -> Result<String, CliError> {
    let (scheme, rest) = match grpc.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("http", grpc),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        // An IPv6 literal without a port ends in ']'.
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    if host.is_empty() {
        return Err(CliError::usage(format!(
            "server {grpc:?} names no host; give the dashboard's address with --http-server URL"
        )));
    }
    Ok(format!("{scheme}://{host}:{DEFAULT_HTTP_PORT}"))
}

/// xdg-open, when a graphical session is there to show a browser in.
fn browser_opener() -> Option<PathBuf> {
    let graphical = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if !graphical {
        return None;
    }
    find_in_path("xdg-open", &std::env::var_os("PATH")?)
}

/// The first executable file called `name` in the directories of `path`.
fn find_in_path(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_address_is_derived_from_the_grpc_server() {
        let cases = [
            ("http://127.0.0.1:50053", "http://127.0.0.1:8080"),
            ("https://sloth.example:50053", "https://sloth.example:8080"),
            ("10.0.0.5:50053", "http://10.0.0.5:8080"),
            ("http://[::1]:50053", "http://[::1]:8080"),
            ("http://[::1]", "http://[::1]:8080"),
            ("http://host", "http://host:8080"),
        ];
        for (grpc, http) in cases {
            assert_eq!(derived(grpc).expect(grpc), http, "{grpc}");
        }
        assert!(derived("http://:1").is_err());
    }

    #[test]
    fn a_given_address_must_be_an_http_url_with_a_host() {
        assert_eq!(
            checked(" http://h:1/ ", "--http-server").expect("ok"),
            "http://h:1/"
        );
        let e = checked("h:1", "--http-server").expect_err("no scheme");
        assert!(e.message.contains("--http-server"), "{e}");
        assert!(checked("https://", "httpServer").is_err());
    }

    #[test]
    fn xdg_open_is_found_only_when_executable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("xdg-open");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        assert_eq!(find_in_path("xdg-open", dir.path().as_os_str()), None);
        let mut perms = std::fs::metadata(&script).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).expect("chmod");
        assert_eq!(
            find_in_path("xdg-open", dir.path().as_os_str()),
            Some(script)
        );
    }
}
