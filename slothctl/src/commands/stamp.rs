//! What apply adds to the Workflows (and CronWorkflows) it sends: the stack
//! of `--stack NAME`, and who applied them (`sloth.dev/applied-by`, read
//! from `$USER` on this machine, else the process's user name:
//! informational, not authenticated), which the Stack's history records.

use serde_json::Value;
use sloth_sdk::validation::names::validate_dns1123_label;
use sloth_sdk::well_known::APPLIED_BY_ANNOTATION;

use crate::error::CliError;
use crate::manifest::Resolved;

/// Who runs slothctl: `$USER`, else `$LOGNAME`, else the name of this
/// process's user in /etc/passwd, else none.
pub(crate) fn local_user() -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| !u.is_empty())
        .or_else(passwd_user)
}

/// The /etc/passwd name of the uid that owns this process.
fn passwd_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// Checks `--stack`'s name before anything is sent.
pub(crate) fn check_stack_flag(stack: Option<&str>) -> Result<(), CliError> {
    if let Some(stack) = stack {
        validate_dns1123_label(stack)
            .map_err(|why| CliError::usage(format!("--stack {stack:?}: {why}")))?;
    }
    Ok(())
}

/// Sets `spec.stack` (when `stack` is given) and the applied-by annotation
/// (unless the manifest sets one) on every Workflow; on a CronWorkflow,
/// `--stack` goes to the Workflows it creates.
pub(crate) fn stamp(objects: &mut [Resolved], stack: Option<&str>, user: Option<&str>) {
    for object in objects {
        let spec_path: &[&str] = match object.kind.kind {
            "Workflow" => &["spec"],
            "CronWorkflow" => &["spec", "workflowSpec"],
            _ => continue,
        };
        if let Some(stack) = stack
            && let Some(spec) = walk(&mut object.value, spec_path)
        {
            spec.insert("stack".into(), Value::String(stack.to_string()));
        }
        if object.kind.kind == "Workflow"
            && let Some(user) = user
            && let Some(meta) = object
                .value
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
        {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations
                    .entry(APPLIED_BY_ANNOTATION)
                    .or_insert_with(|| Value::String(user.to_string()));
            }
        }
    }
}

fn walk<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut serde_json::Map<String, Value>> {
    let mut at = value;
    for key in path {
        at = at.get_mut(*key)?;
    }
    at.as_object_mut()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_user_has_a_name() {
        // Whoever runs the tests is in /etc/passwd (root in CI).
        assert!(super::passwd_user().is_some_and(|u| !u.is_empty()));
    }
}
