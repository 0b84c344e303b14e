//! How the apiserver proves itself to an agent's logs port when the agent
//! has a bearer token but no certificate.
//!
//! The shared key is the SHA-256 of the agent's token: the agent computes it
//! from its `--token`, and the apiserver holds it already (its token table
//! is kept by digest). Nobody else has it, and it never travels: each Logs
//! call carries `x-sloth-logs-auth: UNIX_SECONDS.HEX_HMAC`, an HMAC-SHA256
//! with that key over the time and the TaskRun asked for. The agent accepts
//! it within [`MAX_SKEW_SECS`] of its own clock, for that TaskRun only.

use ring::{digest, hmac};

/// The gRPC metadata key of the proof.
pub const METADATA_KEY: &str = "x-sloth-logs-auth";

/// How far the proof's time may be from the agent's clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a proof was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogsAuthError {
    /// The value is not `UNIX_SECONDS.HEX_HMAC`.
    #[error("malformed {METADATA_KEY} value (expected UNIX_SECONDS.HEX_HMAC)")]
    Malformed,
    /// The proof's time is this many seconds from the agent's clock, more
    /// than [`MAX_SKEW_SECS`].
    #[error("{METADATA_KEY} is {0} s away from the agent's clock (at most {MAX_SKEW_SECS} s)")]
    Skewed(i64),
    /// Not signed with this agent's key.
    #[error("{METADATA_KEY} does not match: not signed with this agent's key")]
    Mismatch,
}

/// The key shared by the agent holding `token` and the apiserver.
pub fn key_of_token(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

fn message(at: i64, namespace: &str, name: &str) -> String {
    format!("sloth-logs\n{at}\n{namespace}/{name}")
}

/// The proof for reading TaskRun `namespace/name` at `at` (Unix seconds).
pub fn sign(key: &[u8], at: i64, namespace: &str, name: &str) -> String {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        message(at, namespace, name).as_bytes(),
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{at}.{hex}")
}

/// Checks a proof for TaskRun `namespace/name` at `now` (Unix seconds).
pub fn verify(
    key: &[u8],
    value: &str,
    namespace: &str,
    name: &str,
    now: i64,
) -> Result<(), LogsAuthError> {
    let (at, hex) = value.split_once('.').ok_or(LogsAuthError::Malformed)?;
    let at: i64 = at.parse().map_err(|_| LogsAuthError::Malformed)?;
    let tag = decode_hex(hex).ok_or(LogsAuthError::Malformed)?;
    let skew = now.saturating_sub(at);
    if skew.abs() > MAX_SKEW_SECS {
        return Err(LogsAuthError::Skewed(skew));
    }
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        message(at, namespace, name).as_bytes(),
        &tag,
    )
    .map_err(|_| LogsAuthError::Mismatch)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || hex.len() > 128 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_key_taskrun_and_time_only() {
        let key = key_of_token("agent-a1-token-0123456789abcdef");
        let proof = sign(&key, 1_000, "default", "t1");
        assert_eq!(verify(&key, &proof, "default", "t1", 1_100), Ok(()));
        assert_eq!(
            verify(&key, &proof, "default", "t2", 1_100),
            Err(LogsAuthError::Mismatch)
        );
        let other = key_of_token("agent-a2-token-0123456789abcdef");
        assert_eq!(
            verify(&other, &proof, "default", "t1", 1_100),
            Err(LogsAuthError::Mismatch)
        );
        assert_eq!(
            verify(&key, &proof, "default", "t1", 1_000 + MAX_SKEW_SECS + 1),
            Err(LogsAuthError::Skewed(MAX_SKEW_SECS + 1))
        );
        for bad in ["", "x", "12", "12.zz", "a.00", "12.0"] {
            assert_eq!(
                verify(&key, bad, "default", "t1", 12),
                Err(LogsAuthError::Malformed),
                "{bad:?}"
            );
        }
    }
}
