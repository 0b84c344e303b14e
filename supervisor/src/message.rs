//! The lines an agent writes to a supervisor's stdin. Both ends of one pipe
//! are always the same build (the agent pins the supervisor's file at its
//! start), but the format stays append-only all the same: a supervisor
//! ignores a line it does not know.

use crate::BootMs;

/// A line the agent writes to a supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// The payload may run until this point.
    Fence(BootMs),
    /// Stop the payload (timeout or stop request).
    Stop,
}

impl Message {
    pub fn line(self) -> String {
        match self {
            Self::Fence(at) => format!("fence {}\n", at.0),
            Self::Stop => "stop\n".to_string(),
        }
    }

    /// The message of one line (without or with its newline); None for
    /// anything else.
    pub fn parse(line: &[u8]) -> Option<Self> {
        let line = std::str::from_utf8(line).ok()?.trim();
        match line.split_once(' ') {
            Some(("fence", ms)) => ms.parse().ok().map(|ms| Self::Fence(BootMs(ms))),
            None if line == "stop" => Some(Self::Stop),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [Message::Fence(BootMs(1234)), Message::Stop] {
            assert_eq!(Message::parse(message.line().as_bytes()), Some(message));
        }
        assert_eq!(Message::parse(b"fence soon\n"), None);
        assert_eq!(Message::parse(b"hello\n"), None);
        assert_eq!(Message::parse(b"\xff\n"), None);
    }
}
