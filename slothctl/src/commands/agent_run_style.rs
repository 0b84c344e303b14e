//! How `slothctl agent run` frames a command's output for a person: on a
//! terminal, a header line naming the agent and the command and a footer
//! with the exit code and the duration, in colour unless `NO_COLOR` is set
//! (then the command's stderr is red too).
//! Piped or redirected, the output is the command's alone (plain).

use std::io::IsTerminal;
use std::time::Duration;

/// ANSI styles (SGR codes).
const BOLD_CYAN: &str = "\x1b[1;36m";
const BOLD_GREEN: &str = "\x1b[1;32m";
const BOLD_RED: &str = "\x1b[1;31m";
const RESET: &str = "\x1b[0m";

/// Whether and how to frame the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// Not a terminal: the command's output only.
    Plain,
    /// A terminal: header and footer, coloured when `color`.
    Framed { color: bool },
}

impl Style {
    /// The style for this process: framed when stdout and stderr are
    /// terminals, coloured unless `NO_COLOR` is set to anything but "".
    pub(crate) fn detect() -> Self {
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self::choose(terminal, no_color)
    }

    pub(crate) fn choose(terminal: bool, no_color: bool) -> Self {
        match terminal {
            false => Self::Plain,
            true => Self::Framed { color: !no_color },
        }
    }

    fn paint(self, style: &str, text: &str) -> String {
        match self {
            Self::Framed { color: true } => format!("{style}{text}{RESET}"),
            _ => text.to_string(),
        }
    }

    /// Whether the command's stderr is painted red.
    pub(crate) fn colors_stderr(self) -> bool {
        self == Self::Framed { color: true }
    }

    /// The line before the output, if any.
    pub(crate) fn header(self, agent: &str, command: &str) -> Option<String> {
        match self {
            Self::Plain => None,
            Self::Framed { .. } => Some(self.paint(BOLD_CYAN, &format!("==> {agent}: {command}"))),
        }
    }

    /// The line after the output, if any: exit code and duration, green for
    /// 0 and red otherwise.
    pub(crate) fn footer(self, code: u8, took: Duration) -> Option<String> {
        match self {
            Self::Plain => None,
            Self::Framed { .. } => {
                let text = format!("<== exit {code} in {:.2}s", took.as_secs_f64());
                let color = if code == 0 { BOLD_GREEN } else { BOLD_RED };
                Some(self.paint(color, &text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_off_a_terminal() {
        let style = Style::choose(false, false);
        assert_eq!(style, Style::Plain);
        assert_eq!(style.header("a1", "ls"), None);
        assert!(!style.colors_stderr());
        assert_eq!(style.footer(0, Duration::ZERO), None);
    }

    #[test]
    fn framed_and_coloured_on_a_terminal() {
        let style = Style::choose(true, false);
        assert!(style.colors_stderr());
        assert_eq!(
            style.header("a1", "ls -l").as_deref(),
            Some("\x1b[1;36m==> a1: ls -l\x1b[0m")
        );
        assert_eq!(
            style.footer(3, Duration::from_millis(1500)).as_deref(),
            Some("\x1b[1;31m<== exit 3 in 1.50s\x1b[0m")
        );
        assert!(
            style
                .footer(0, Duration::ZERO)
                .is_some_and(|f| f.starts_with(BOLD_GREEN))
        );
    }

    #[test]
    fn no_color_keeps_the_frame_without_escapes() {
        let style = Style::choose(true, true);
        assert!(!style.colors_stderr());
        assert_eq!(style.header("a1", "ls").as_deref(), Some("==> a1: ls"));
        assert_eq!(
            style.footer(0, Duration::from_secs(2)).as_deref(),
            Some("<== exit 0 in 2.00s")
        );
    }
}
