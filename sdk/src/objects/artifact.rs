//! Workspaces and artifacts: what objects carry of the bytes that live in
//! the apiserver's artifact store (digests, never the bytes).

use serde::{Deserialize, Serialize};

/// A blob in the artifact store: a tar + zstd archive named by its digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlobRef {
    /// `sha256:<64 hex digits>` of the archive's bytes.
    pub digest: String,
    /// The archive's size in bytes.
    #[serde(default)]
    pub size: u64,
}

/// The outputs a task declares: files or directories (a trailing `/` is
/// allowed) relative to its working directory, packed after success.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactsSpec {
    /// The declared paths, relative to the working directory.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// One artifact a finished task uploaded: `path` packed as one archive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactStatus {
    /// As declared (without a trailing `/`).
    pub path: String,
    /// `sha256:<64 hex digits>` of the uploaded archive.
    pub digest: String,
    /// The archive's size in bytes.
    pub size: u64,
}

/// An upstream task's artifact a TaskRun starts with, unpacked at its path
/// in the run's working directory (set by the workflow controller).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactInput {
    /// The upstream task that produced it.
    pub task: String,
    /// Where it is unpacked, relative to the run's working directory.
    pub path: String,
    /// `sha256:<64 hex digits>` of the archive to fetch.
    pub digest: String,
    /// The archive's size in bytes.
    #[serde(default)]
    pub size: u64,
}

/// The declared path without trailing slashes (`dist/` and `dist` are one
/// artifact).
pub fn artifact_path(declared: &str) -> &str {
    let trimmed = declared.trim_end_matches('/');
    if trimmed.is_empty() {
        declared
    } else {
        trimmed
    }
}

/// True when one of two artifact paths contains the other (`dist` and
/// `dist/app`), or they are the same: unpacked together they would clash.
pub fn paths_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (artifact_path(a), artifact_path(b));
    a == b || b.starts_with(&format!("{a}/")) || a.starts_with(&format!("{b}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_by_whole_components() {
        assert!(paths_overlap("dist/", "dist"));
        assert!(paths_overlap("dist", "dist/app.bin"));
        assert!(!paths_overlap("dist", "distfile"));
        assert!(!paths_overlap("a.txt", "b.txt"));
    }
}
