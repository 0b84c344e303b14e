//! The query parameters of the REST API, named as Kubernetes names them.

use serde::Deserialize;
use sloth_proto::v1 as pb;
use sloth_sdk::kinds::KindInfo;

use super::status::Failure;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Params {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<i64>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    watch: Option<String>,
    allow_watch_bookmarks: Option<String>,
    /// Ends a watch after this many seconds.
    pub timeout_seconds: Option<u64>,
    /// `All`: admit but store nothing.
    pub dry_run: Option<String>,
    follow: Option<String>,
    timestamps: Option<String>,
    pub since_seconds: Option<i64>,
    tail_lines: Option<i64>,
    /// Of the rules review.
    pub namespace: Option<String>,
}

/// `true`/`1` or `false`/`0`/absent; anything else names the parameter.
fn flag(name: &str, value: &Option<String>) -> Result<bool, Failure> {
    match value.as_deref() {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(Failure::bad_request(format!(
            "query parameter {name}={other:?}: want true or false"
        ))),
    }
}

impl Params {
    pub(super) fn watch(&self) -> Result<bool, Failure> {
        flag("watch", &self.watch)
    }

    pub(super) fn allow_watch_bookmarks(&self) -> Result<bool, Failure> {
        flag("allowWatchBookmarks", &self.allow_watch_bookmarks)
    }

    pub(super) fn follow(&self) -> Result<bool, Failure> {
        flag("follow", &self.follow)
    }

    pub(super) fn timestamps(&self) -> Result<bool, Failure> {
        flag("timestamps", &self.timestamps)
    }

    /// Of a log: 0 (all) when absent.
    pub(super) fn tail_lines(&self) -> Result<i64, Failure> {
        match self.tail_lines {
            None => Ok(0),
            Some(n) if n >= 1 => Ok(n),
            Some(n) => Err(Failure::bad_request(format!(
                "query parameter tailLines={n}: want 1 or more"
            ))),
        }
    }

    pub(super) fn dry_run(&self) -> Result<bool, Failure> {
        match self.dry_run.as_deref() {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(Failure::bad_request(format!(
                "query parameter dryRun={other:?}: the only value is All"
            ))),
        }
    }

    pub(super) fn text(value: &Option<String>) -> String {
        value.clone().unwrap_or_default()
    }
}

/// The list of a collection that `params` ask for.
pub(super) fn list_request(kind: &KindInfo, namespace: &str, params: &Params) -> pb::ListRequest {
    pb::ListRequest {
        kind: kind.kind.to_string(),
        namespace: namespace.to_string(),
        label_selector: Params::text(&params.label_selector),
        field_selector: Params::text(&params.field_selector),
        limit: params.limit.unwrap_or(0),
        continue_token: Params::text(&params.continue_token),
        resource_version: Params::text(&params.resource_version),
    }
}

/// The watch of a collection that `params` ask for: what the list would
/// select, from its resourceVersion on.
pub(super) fn watch_request(
    kind: &KindInfo,
    namespace: &str,
    params: &Params,
) -> Result<pb::WatchRequest, Failure> {
    let list = list_request(kind, namespace, params);
    Ok(pb::WatchRequest {
        allow_bookmarks: params.allow_watch_bookmarks()?,
        kind: list.kind,
        namespace: list.namespace,
        label_selector: list.label_selector,
        field_selector: list.field_selector,
        resource_version: list.resource_version,
    })
}
