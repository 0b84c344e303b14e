//! `slothctl edit KIND NAME`: the object as YAML in `$VISUAL`/`$EDITOR`
//! (else vi); what is saved is checked as `apply` checks a manifest
//! (schema and admission) before anything is sent, then written as an
//! update carrying the resourceVersion read, so a change made meanwhile is
//! a Conflict rather than lost. An invalid edit is kept in a file named in
//! the error (exit 2) and the stored object is untouched.

use std::path::Path;

use sloth_sdk::Error as SdkError;

use super::Context;
use super::apply::update_body;
use crate::cli::EditArgs;
use crate::error::CliError;
use crate::kind;
use crate::manifest::{self, Check, Document};
use crate::printer::{emit, output};

pub(crate) async fn run(ctx: &Context, args: EditArgs) -> anyhow::Result<()> {
    let names: Vec<String> = args.name.iter().cloned().collect();
    let (kind, names) = kind::resolve_args(&args.kind, &names)?;
    let [name] = names.as_slice() else {
        return Err(CliError::usage(format!("edit {} NAME: give one name", kind.singular)).into());
    };
    let namespace = kind::scope(kind, &ctx.namespace, false);
    let current = ctx
        .client
        .get(kind.kind, namespace, name)
        .await
        .map_err(|e| ctx.error(e))?;
    let original = output::yaml(&output::to_value(&current)?)?;
    let dir = tempfile_dir()?;
    let path = dir.join(format!("{}-{name}.yaml", kind.singular));
    std::fs::write(&path, &original)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
    run_editor(&path)?;
    let edited = std::fs::read_to_string(&path)
        .map_err(|e| CliError::failed(format!("cannot read {}: {e}", path.display())))?;
    if edited == original || edited.trim().is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        emit("Edit cancelled, no changes made.\n")?;
        return Ok(());
    }
    let shown = path.display().to_string();
    let invalid = |message: String| {
        CliError::usage(format!(
            "{message}\nthe edit was not saved; it is kept in {shown}"
        ))
    };
    let mut docs = manifest::parse(&shown, &edited, false).map_err(invalid)?;
    let (Some(doc), true) = (docs.pop(), docs.is_empty()) else {
        return Err(invalid("expected exactly one object".to_string()).into());
    };
    let resolved = check(doc, namespace, kind.kind, name).map_err(invalid)?;
    let body = update_body(&current, &resolved.value);
    match ctx.client.update(&body).await {
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&dir);
            emit(&format!("{} edited\n", kind::qualified_name(kind, name)))?;
            Ok(())
        }
        Err(e @ (SdkError::Invalid(_) | SdkError::Conflict(_))) => {
            let e = ctx.error(e);
            Err(CliError {
                code: e.code,
                message: format!("{}\nthe edit is kept in {shown}", e.message),
            }
            .into())
        }
        Err(e) => Err(ctx.error(e).into()),
    }
}

/// The edited document, checked as apply checks it; it must still be the
/// same object (kind, name, namespace).
fn check(
    doc: Document,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Result<manifest::Resolved, String> {
    let ns = (!namespace.is_empty()).then_some(namespace);
    let resolved = manifest::resolve(doc, ns, Check::Admit)?;
    if resolved.kind.kind != kind || resolved.name != name {
        return Err(format!(
            "error: the edit changed the object's kind or name (to {} {:?}); edit cannot rename",
            resolved.kind.kind, resolved.name
        ));
    }
    Ok(resolved)
}

/// A private directory for the file being edited.
fn tempfile_dir() -> Result<std::path::PathBuf, CliError> {
    let dir = std::env::temp_dir().join(format!(
        "slothctl-edit-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Runs `$VISUAL`, else `$EDITOR`, else `vi`, on `path` (through `sh -c`,
/// so an editor with arguments, `code --wait`, works) and waits for it.
fn run_editor(path: &Path) -> Result<(), CliError> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_string());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .map_err(|e| CliError::failed(format!("cannot start the editor {editor:?}: {e}")))?;
    if !status.success() {
        return Err(CliError::failed(format!(
            "the editor {editor:?} exited with {status}; nothing was saved"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: serde_json::Value) -> Document {
        Document {
            source: "e.yaml".into(),
            index: 1,
            item: None,
            value,
        }
    }

    #[test]
    fn edits_are_checked_and_cannot_rename() {
        let ok = json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "a"}, "spec": {"run": {"shell": "true"}}});
        assert!(check(doc(ok.clone()), "default", "TaskRun", "a").is_ok());
        let e = check(doc(ok), "default", "TaskRun", "b").expect_err("renamed");
        assert!(e.contains("cannot rename"), "{e}");
        let bad = json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "a"}, "spec": {"run": {"shell": "true"}, "bogus": 1}});
        assert!(check(doc(bad), "default", "TaskRun", "a").is_err());
    }
}
