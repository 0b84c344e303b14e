//! The error slothctl exits with: a message and the exit code of the
//! contract (INTERFACE.md): 1 the server said no, 2 usage error or invalid
//! input (nothing sent), 3 no server could be reached.

use std::fmt;

use sloth_sdk::Error as SdkError;

/// Exit code: the operation failed (the server said no).
pub(crate) const FAILED: u8 = 1;
/// Exit code: usage error or invalid input; nothing was sent.
pub(crate) const USAGE: u8 = 2;
/// Exit code: no server could be reached.
pub(crate) const UNREACHABLE: u8 = 3;
/// Exit code of `wait` when the timeout passes first (the same as usage).
pub(crate) const TIMED_OUT: u8 = 2;

/// An error that knows its exit code. The message is printed as is (it
/// carries its own `error: ` or `Error from server (...)` prefix); an empty
/// message means the details were already printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    /// Invalid input or usage (exit 2); `message` without the `error: ` prefix.
    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        Self {
            code: USAGE,
            message: format!("error: {message}"),
        }
    }

    /// A failure (exit 1); `message` without the `error: ` prefix.
    pub(crate) fn failed(message: impl fmt::Display) -> Self {
        Self {
            code: FAILED,
            message: format!("error: {message}"),
        }
    }

    /// Errors already printed; exit with `code`.
    pub(crate) fn reported(code: u8) -> Self {
        Self {
            code,
            message: String::new(),
        }
    }

    /// Maps an SDK error to what users read and the exit code; `endpoints`
    /// names the servers when the error itself does not.
    pub(crate) fn from_sdk(error: SdkError, endpoints: &str) -> Self {
        let server = |reason: &str, message: String| Self {
            code: FAILED,
            message: format!("Error from server ({reason}): {message}"),
        };
        match error {
            SdkError::Unavailable {
                endpoints: named,
                message,
            } => {
                let at = if named.is_empty() { endpoints } else { &named };
                // The SDK names the last server tried; once is enough.
                let message = message
                    .strip_prefix(&format!("{at}: "))
                    .map_or(message.clone(), str::to_string);
                Self {
                    code: UNREACHABLE,
                    message: format!("error: cannot reach any Sloth server at {at}: {message}"),
                }
            }
            SdkError::NotFound(m) => server("NotFound", m),
            SdkError::AlreadyExists(m) => server("AlreadyExists", m),
            SdkError::Conflict(m) => server("Conflict", m),
            SdkError::Invalid(m) => server("Invalid", m),
            SdkError::Expired(m) => server("Expired", m),
            SdkError::Forbidden(m) => server("Forbidden", m),
            SdkError::Unauthenticated(m) => Self {
                code: FAILED,
                message: format!("error: you must be logged in to the server (Unauthorized): {m}"),
            },
            SdkError::Server { code, message } => server(&format!("{code:?}"), message),
            SdkError::BadEndpoint(url, m) => {
                Self::usage(format!("bad server address {url:?}: {m}"))
            }
            e @ SdkError::Decode { .. } => Self::failed(e),
            SdkError::Credentials(m) => Self::usage(m),
        }
    }

    /// The same error with `context` inserted after a server-error prefix,
    /// e.g. `Error from server (Invalid): error when applying x.yaml: ...`.
    pub(crate) fn with_context(mut self, context: &str) -> Self {
        if self.code == FAILED
            && let Some(rest) = self.message.strip_prefix("Error from server (")
            && let Some((reason, message)) = rest.split_once("): ")
        {
            self.message = format!("Error from server ({reason}): {context}: {message}");
        }
        self
    }
}

/// The errors of a command over several objects, kubectl style: an
/// object the server refused (exit 1) is reported on stderr and the others
/// still go ahead, then the command exits 1; any other error (usage, no
/// server) stops it at once.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    any: bool,
}

impl Failures {
    /// Reports one object's failure, or hands back an error that must stop
    /// the command.
    pub(crate) fn report(&mut self, error: CliError) -> Result<(), CliError> {
        if error.code != FAILED {
            return Err(error);
        }
        eprintln!("{error}");
        self.any = true;
        Ok(())
    }

    /// The command's outcome once every object had its turn.
    pub(crate) fn finish(self) -> Result<(), CliError> {
        if self.any {
            return Err(CliError::reported(FAILED));
        }
        Ok(())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<SdkError> for CliError {
    fn from(error: SdkError) -> Self {
        Self::from_sdk(error, "the configured servers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_errors_map_to_the_contract_exit_codes() {
        let e = CliError::from_sdk(SdkError::NotFound(r#"taskruns "x" not found"#.into()), "u");
        assert_eq!(e.code, FAILED);
        assert_eq!(
            e.message,
            r#"Error from server (NotFound): taskruns "x" not found"#
        );

        let e = CliError::from_sdk(
            SdkError::Unavailable {
                endpoints: String::new(),
                message: "connection refused".into(),
            },
            "http://127.0.0.1:1",
        );
        assert_eq!(e.code, UNREACHABLE);
        assert_eq!(
            e.message,
            "error: cannot reach any Sloth server at http://127.0.0.1:1: connection refused"
        );

        let e = CliError::from_sdk(SdkError::BadEndpoint("x".into(), "bad".into()), "");
        assert_eq!(e.code, USAGE);
    }

    #[test]
    fn context_goes_after_the_server_prefix() {
        let e = CliError::from_sdk(SdkError::Invalid("bad".into()), "")
            .with_context("error when applying a.yaml");
        assert_eq!(
            e.message,
            "Error from server (Invalid): error when applying a.yaml: bad"
        );
    }
}
