//! The artifact store's flags and its start-up (with the warning for HA
//! setups that would not share it).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sloth_apiserver::artifacts::{ArtifactStore, DEFAULT_MAX_BYTES, S3Options};

#[derive(Args, Debug)]
pub(crate) struct ArtifactArgs {
    /// Where workspaces and artifacts are stored: file://DIR or
    /// s3://BUCKET/PREFIX [default: file://<--data-dir>/artifacts].
    /// Several apiservers (HA) need one shared store.
    #[arg(long, value_name = "URL")]
    pub artifact_store: Option<String>,
    /// Largest blob (workspace or artifact) accepted, in bytes.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_BYTES)]
    pub max_artifact_bytes: u64,
    /// Endpoint of an S3-compatible store (MinIO, Ceph, ...).
    #[arg(long, value_name = "URL")]
    pub artifact_s3_endpoint: Option<String>,
    #[arg(long, value_name = "REGION", env = "AWS_REGION")]
    pub artifact_s3_region: Option<String>,
    #[arg(long, value_name = "ID", env = "AWS_ACCESS_KEY_ID")]
    pub artifact_s3_access_key_id: Option<String>,
    /// Better given through the environment, which `ps` does not show.
    #[arg(
        long,
        value_name = "SECRET",
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub artifact_s3_secret_access_key: Option<String>,
    /// Allow a plain http:// S3 endpoint.
    #[arg(long)]
    pub artifact_s3_allow_http: bool,
    /// How often blobs no object references are deleted.
    #[arg(long, default_value = "10m", value_parser = sloth_sdk::duration::parse_flag)]
    pub artifact_gc_interval: Duration,
    /// How old an unreferenced blob must be before it is deleted (an
    /// upload is referenced only once the apply after it lands).
    #[arg(long, default_value = "1h", value_parser = sloth_sdk::duration::parse_flag)]
    pub artifact_gc_grace: Duration,
}

impl ArtifactArgs {
    /// Opens the store; `shared_data` is false when several apiservers may
    /// serve one etcd, so that a default store under the data dir is not
    /// shared between them (warned).
    pub(crate) fn open(&self, data_dir: &Path, on_etcd: bool) -> anyhow::Result<ArtifactStore> {
        let url = match &self.artifact_store {
            Some(url) => url.clone(),
            None => {
                let dir = std::path::absolute(data_dir.join("artifacts"))
                    .context("cannot resolve the data dir")?;
                if on_etcd {
                    tracing::warn!(
                        dir = %dir.display(),
                        "on etcd without --artifact-store: blobs go to a directory of this \
                         apiserver only; with several apiservers give them one shared \
                         --artifact-store (a shared file:// directory or s3://)"
                    );
                }
                format!("file://{}", dir.display())
            }
        };
        let s3 = S3Options {
            endpoint: self.artifact_s3_endpoint.clone(),
            region: self.artifact_s3_region.clone(),
            access_key_id: self.artifact_s3_access_key_id.clone(),
            secret_access_key: self.artifact_s3_secret_access_key.clone(),
            allow_http: self.artifact_s3_allow_http,
        };
        let store = ArtifactStore::open(&url, &s3, self.max_artifact_bytes)?;
        tracing::info!(url = %store.url(), max_bytes = self.max_artifact_bytes, "artifact store open");
        Ok(store)
    }
}
