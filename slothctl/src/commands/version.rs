//! `slothctl version [--client]`: the client's version, the server's (the
//! `Version` call, as `/version` on the HTTP port), and a warning on stderr
//! when they differ in major or minor version (the skew policy of
//! docs/operations.md: same minor).

use crate::cli::{Cli, VersionArgs};
use crate::printer::emit;

/// This build's version.
const CLIENT: &str = env!("CARGO_PKG_VERSION");

pub(crate) async fn run(cli: &Cli, args: &VersionArgs) -> anyhow::Result<()> {
    emit(&format!("Client Version: {CLIENT}\n"))?;
    if args.client {
        return Ok(());
    }
    let ctx = super::Context::new(cli)?;
    let (server, api) = ctx
        .client
        .server_version()
        .await
        .map_err(|e| ctx.error(e))?;
    emit(&format!("Server Version: {server}\nServer API: {api}\n"))?;
    if let Some(warning) = skew_warning(CLIENT, &server) {
        eprintln!("{warning}");
    }
    Ok(())
}

/// kubectl's warning when client and server are too far apart: here, any
/// difference in `MAJOR.MINOR`.
fn skew_warning(client: &str, server: &str) -> Option<String> {
    let minor = |v: &str| {
        let mut parts = v.trim_start_matches('v').split('.');
        (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        )
    };
    (minor(client) != minor(server)).then(|| {
        format!(
            "WARNING: version difference between client ({client}) and server ({server}) \
             exceeds the supported skew of the same minor version"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_a_different_major_or_minor() {
        assert_eq!(skew_warning("0.1.0", "0.1.7"), None);
        assert!(skew_warning("0.1.0", "0.2.0").is_some());
        assert!(skew_warning("1.1.0", "0.1.0").is_some());
        assert!(
            skew_warning("0.1.0", "0.3.1")
                .is_some_and(|w| w.contains("client (0.1.0) and server (0.3.1)"))
        );
    }
}
