//! The server's version, served as `/version` on the HTTP port and by the
//! `Version` gRPC call, so that clients can report (and warn about) skew.

use serde_json::{Value, json};
use sloth_proto::v1 as pb;

/// This build's release (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The API group and version served.
pub const API_VERSION: &str = "sloth.dev/v1";

/// The answer of the `Version` call.
pub fn info() -> pb::VersionInfo {
    pb::VersionInfo {
        version: VERSION.to_string(),
        api_version: API_VERSION.to_string(),
    }
}

/// The body of `/version` (kubectl's `gitVersion` spelled `version`).
pub fn json() -> Value {
    json!({"version": VERSION, "apiVersion": API_VERSION})
}
