//! `slothctl diff -f PATH` and `apply --dry-run=client`: what apply would
//! do to each object, computed against the live objects (read only).
//! `diff` prints a unified diff of the fields apply writes (spec, labels,
//! annotations) and exits 1 when anything would change, as kubectl diff.

use serde_json::{Value, json};
use sloth_sdk::Error as SdkError;

use super::Context;
use super::apply::{Outcome, keep_controller_fields, unchanged};
use crate::cli::DiffArgs;
use crate::error::{self, CliError};
use crate::kind::qualified_name;
use crate::manifest::Resolved;
use crate::printer::{emit, output};

/// Past this many lines on both sides, a changed object is shown as all
/// removed then all added (the line diff is quadratic).
const MAX_DIFF_CELLS: usize = 4_000_000;

/// What apply would do to one object, and the two sides.
pub(crate) struct Preview {
    pub outcome: Outcome,
    /// The live object as apply compares it; None when it would be created.
    pub live: Option<Value>,
    pub desired: Value,
}

/// Reads the live object (if any) and compares it as apply would.
pub(crate) async fn preview(ctx: &Context, object: &Resolved) -> Result<Preview, SdkError> {
    let found = if object.name.is_empty() {
        None
    } else {
        match ctx
            .client
            .get(object.kind.kind, &object.namespace, &object.name)
            .await
        {
            Ok(current) => Some(current),
            Err(SdkError::NotFound(_)) => None,
            Err(e) => return Err(e),
        }
    };
    let Some(current) = found else {
        return Ok(Preview {
            outcome: Outcome::Created,
            live: None,
            desired: comparable(&object.value),
        });
    };
    let desired = keep_controller_fields(object.kind.kind, &current, &object.value);
    let outcome = if unchanged(&current, &desired) {
        Outcome::Unchanged
    } else {
        Outcome::Configured
    };
    let live = serde_json::to_value(&current).unwrap_or(Value::Null);
    Ok(Preview {
        outcome,
        live: Some(comparable(&live)),
        desired: comparable(&desired),
    })
}

/// The fields apply writes, in one shape for both sides.
fn comparable(object: &Value) -> Value {
    let meta = |field: &str| {
        object["metadata"]
            .get(field)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut metadata = json!({"name": meta("name"), "namespace": meta("namespace")});
    for field in ["labels", "annotations"] {
        if let Some(map) = object["metadata"]
            .get(field)
            .filter(|m| m.as_object().is_some_and(|m| !m.is_empty()))
        {
            metadata[field] = map.clone();
        }
    }
    json!({
        "apiVersion": object.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": object.get("kind").cloned().unwrap_or(Value::Null),
        "metadata": metadata,
        "spec": object.get("spec").cloned().unwrap_or(Value::Null),
    })
}

pub(crate) async fn run(ctx: &Context, args: DiffArgs) -> anyhow::Result<()> {
    let objects = super::apply::load(
        &args.files,
        ctx.namespace_flag.as_deref(),
        &super::apply::params(&[]),
    )?;
    let mut differs = false;
    for object in &objects {
        let preview = preview(ctx, object).await.map_err(|e| ctx.error(e))?;
        if preview.outcome == Outcome::Unchanged {
            continue;
        }
        differs = true;
        let name = qualified_name(object.kind, &object.name);
        let live = match &preview.live {
            Some(live) => output::yaml(live)?,
            None => String::new(),
        };
        let desired = output::yaml(&preview.desired)?;
        emit(&format!("--- live/{name}\n+++ applied/{name}\n"))?;
        emit(&unified(&live, &desired))?;
    }
    if differs {
        // kubectl diff's convention: 1 means "there are differences".
        return Err(CliError::reported(error::FAILED).into());
    }
    Ok(())
}

/// Every line of both texts, prefixed ` `, `-` or `+` (a longest common
/// subsequence line diff, without hunks).
pub(crate) fn unified(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut out = String::new();
    if a.len().saturating_mul(b.len()) > MAX_DIFF_CELLS {
        a.iter().for_each(|l| out.push_str(&format!("-{l}\n")));
        b.iter().for_each(|l| out.push_str(&format!("+{l}\n")));
        return out;
    }
    // lcs[i][j]: the common length of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals first on a tie, as diff -u prints them.
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_mark_removed_and_added_lines() {
        assert_eq!(unified("a\nb\nc\n", "a\nx\nc\n"), " a\n-b\n+x\n c\n");
        assert_eq!(unified("", "a\n"), "+a\n");
        assert_eq!(unified("a\n", "a\n"), " a\n");
    }

    #[test]
    fn comparable_keeps_what_apply_writes() {
        let live = json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "a", "namespace": "default", "uid": "u", "labels": {}},
            "spec": {"x": 1}, "status": {"phase": "Running"}});
        assert_eq!(
            comparable(&live),
            json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
                "metadata": {"name": "a", "namespace": "default"}, "spec": {"x": 1}})
        );
    }
}
