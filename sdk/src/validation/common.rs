//! Checks of the pieces several kinds share (label maps, selectors, payloads,
//! environments, timeouts), each reporting at the path its caller gives, so a
//! Workflow task and a TaskRun get the same rules under different prefixes.

use std::collections::BTreeMap;

use super::FieldErrors;
use super::limits::MAX_SCRIPT_BYTES;
use super::names::{self, shown};
use crate::duration::Duration;
use crate::objects::{Env, LabelSelector, Payload, SecretUse, SelectorOperator};

/// `base["key"]`: map keys are quoted because they may hold '.' and '/'.
pub(super) fn key_path(base: &str, key: &str) -> String {
    format!("{base}[{key:?}]")
}

/// Reports `value` as invalid at `path` when `rule` rejects it.
pub(super) fn check(
    errs: &mut FieldErrors,
    path: impl Into<String>,
    value: &str,
    rule: fn(&str) -> Result<(), String>,
) {
    if let Err(why) = rule(value) {
        errs.push(path, invalid(value, &why));
    }
}

/// `invalid value "x": why`, or just `why` for the empty value so users
/// don't read `invalid value "": must not be empty`.
pub(super) fn invalid(value: &str, why: &str) -> String {
    if value.is_empty() {
        why.to_string()
    } else {
        format!("invalid value {}: {why}", shown(value))
    }
}

/// Label keys and values, as in `metadata.labels` and `matchLabels`.
pub(super) fn validate_labels(
    labels: &BTreeMap<String, String>,
    path: &str,
    errs: &mut FieldErrors,
) {
    for (key, value) in labels {
        let at = key_path(path, key);
        if let Err(why) = names::validate_label_key(key) {
            errs.push(at.clone(), format!("invalid key {}: {why}", shown(key)));
        }
        check(errs, at, value, names::validate_label_value);
    }
}

pub(super) fn validate_selector(selector: &LabelSelector, path: &str, errs: &mut FieldErrors) {
    validate_labels(&selector.match_labels, &format!("{path}.matchLabels"), errs);
    for (i, expr) in selector.match_expressions.iter().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        check(
            errs,
            format!("{at}.key"),
            &expr.key,
            names::validate_label_key,
        );
        match expr.operator {
            SelectorOperator::In | SelectorOperator::NotIn => {
                if expr.values.is_empty() {
                    errs.push(
                        format!("{at}.values"),
                        format!(
                            "must not be empty when operator is {:?} (list the label values to match)",
                            expr.operator
                        ),
                    );
                }
                for (j, value) in expr.values.iter().enumerate() {
                    check(
                        errs,
                        format!("{at}.values[{j}]"),
                        value,
                        names::validate_label_value,
                    );
                }
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist => {
                if !expr.values.is_empty() {
                    errs.push(
                        format!("{at}.values"),
                        format!(
                            "must be empty when operator is {:?} (it tests only that the key is present)",
                            expr.operator
                        ),
                    );
                }
            }
        }
    }
}

/// The phrasing the apiserver uses for whole objects, so a size problem
/// reads the same whichever limit caught it.
pub(super) fn too_large(len: usize, limit: usize) -> String {
    format!("is too large: {len} bytes, the limit is {limit} bytes")
}

/// Exactly one of `shell`, `lua` or `command`, and a script that is neither
/// empty nor oversized (a command: a program, and argv within the same
/// size).
pub(super) fn validate_payload(run: &Payload, path: &str, errs: &mut FieldErrors) {
    let set = [
        run.shell.is_some(),
        run.lua.is_some(),
        run.command.is_some(),
    ];
    match set.iter().filter(|s| **s).count() {
        0 => errs.push(path, "must set exactly one of shell, lua or command"),
        1 => {}
        _ => errs.push(
            path,
            "must set exactly one of shell, lua or command, not several",
        ),
    }
    if let Some(shell) = &run.shell {
        validate_script(shell, &format!("{path}.shell"), errs);
    }
    if let Some(lua) = &run.lua {
        validate_script(&lua.script, &format!("{path}.lua.script"), errs);
        if let Some(entry) = &lua.entry {
            check(
                errs,
                format!("{path}.lua.entry"),
                entry,
                names::validate_lua_function_name,
            );
        }
    }
    if let Some(argv) = &run.command {
        validate_command(argv, &format!("{path}.command"), errs);
    }
}

/// A program to exec: a non-empty argv whose program is named, no NUL byte
/// (exec cannot pass one), and the same size bound as a script.
fn validate_command(argv: &[String], path: &str, errs: &mut FieldErrors) {
    let Some(program) = argv.first() else {
        errs.push(
            path,
            "must not be empty: give the program and its arguments, e.g. [\"make\", \"test\"]",
        );
        return;
    };
    if program.trim().is_empty() {
        errs.push(format!("{path}[0]"), "must name the program to run");
    }
    for (i, arg) in argv.iter().enumerate() {
        if arg.contains('\0') {
            errs.push(format!("{path}[{i}]"), "must not contain a NUL byte");
        }
    }
    let len: usize = argv.iter().map(|a| a.len() + 1).sum();
    if len > MAX_SCRIPT_BYTES {
        errs.push(path, too_large(len, MAX_SCRIPT_BYTES));
    }
}

fn validate_script(script: &str, path: &str, errs: &mut FieldErrors) {
    if script.trim().is_empty() {
        errs.push(path, "must not be empty");
    } else if script.len() > MAX_SCRIPT_BYTES {
        errs.push(
            path,
            format!(
                "{}; ship larger scripts to the agent as files",
                too_large(script.len(), MAX_SCRIPT_BYTES)
            ),
        );
    }
}

pub(super) fn validate_env(env: &Env, path: &str, errs: &mut FieldErrors) {
    for key in env.keys().chain(env.secret_refs.keys()) {
        check(errs, key_path(path, key), key, names::validate_env_var_name);
    }
    for (key, reference) in &env.secret_refs {
        let at = format!("{}.valueFrom.secretKeyRef", key_path(path, key));
        check(
            errs,
            format!("{at}.name"),
            &reference.name,
            names::validate_name,
        );
        check(
            errs,
            format!("{at}.key"),
            &reference.key,
            names::validate_secret_key,
        );
    }
}

/// The Secret references of a task or TaskRun besides `env` (`base` is
/// `spec` or `spec.tasks[2]`): names valid, file paths inside the run
/// directory.
pub(super) fn validate_secret_refs(refs: SecretUse<'_>, base: &str, errs: &mut FieldErrors) {
    for (i, from) in refs.env_from.iter().enumerate() {
        let at = format!("{base}.envFrom[{i}].secretRef.name");
        check(errs, at, &from.secret_ref.name, names::validate_name);
    }
    for (i, file) in refs.secret_files.iter().enumerate() {
        let at = format!("{base}.secretFiles[{i}]");
        check(
            errs,
            format!("{at}.secretName"),
            &file.secret_name,
            names::validate_name,
        );
        let path = std::path::Path::new(&file.path);
        let climbs = path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
        if file.path.is_empty() || climbs || file.path.contains('\0') {
            errs.push(
                format!("{at}.path"),
                format!(
                    "invalid value {:?}: must be a relative path inside the run directory, \
                     without `..` (e.g. `creds/db`)",
                    file.path
                ),
            );
        }
    }
    for (i, name) in refs.secrets.iter().enumerate() {
        check(
            errs,
            format!("{base}.secrets[{i}]"),
            name,
            names::validate_name,
        );
    }
}

/// A timeout of zero would fail every run before it starts; absent means none.
pub(super) fn validate_timeout(timeout: Option<Duration>, path: &str, errs: &mut FieldErrors) {
    if timeout.is_some_and(|t| t.as_std().is_zero()) {
        errs.push(path, "must be greater than 0 (omit it for no timeout)");
    }
}

/// A working directory stays where the agent puts it: relative paths are
/// inside the TaskRun's run directory, and no path may climb out with
/// `..` (an absolute one is allowed only under a root the agent allows,
/// which the agent checks: `sloth-agent --allow-workdir-root DIR`).
pub(super) fn validate_workdir(workdir: Option<&str>, path: &str, errs: &mut FieldErrors) {
    let Some(workdir) = workdir else {
        return;
    };
    if workdir.contains('\0') {
        errs.push(path, "must not contain a NUL byte");
    } else if std::path::Path::new(workdir)
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        errs.push(
            path,
            format!(
                "invalid value {workdir:?}: must not contain `..` (a relative workdir is inside \
                 the TaskRun's run directory)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{LabelSelectorRequirement, LuaPayload};

    fn fields(errs: &FieldErrors) -> Vec<&str> {
        errs.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn selector_requirements_check_values_per_operator() {
        let req = |key: &str, operator, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let selector = LabelSelector {
            match_labels: [("zone".to_string(), "bad value".to_string())].into(),
            match_expressions: vec![
                req("gpu", SelectorOperator::In, &[]),
                req("spot", SelectorOperator::Exists, &["x"]),
                req("bad key", SelectorOperator::DoesNotExist, &[]),
                req("tier", SelectorOperator::NotIn, &["ok", "-no"]),
                req("ok", SelectorOperator::NotIn, &["a"]),
            ],
        };
        let mut errs = FieldErrors::default();
        validate_selector(&selector, "s", &mut errs);
        assert_eq!(
            fields(&errs),
            [
                "s.matchLabels[\"zone\"]",
                "s.matchExpressions[0].values",
                "s.matchExpressions[1].values",
                "s.matchExpressions[2].key",
                "s.matchExpressions[3].values[1]",
            ],
            "{errs}"
        );
        assert!(errs.0[1].message.contains("operator is In"), "{errs}");
        assert!(errs.0[2].message.contains("must be empty"), "{errs}");
    }

    #[test]
    fn payload_scripts_are_checked_at_their_own_path() {
        let mut errs = FieldErrors::default();
        let run = Payload {
            shell: Some(" \n".into()),
            lua: None,
            command: None,
        };
        validate_payload(&run, "r", &mut errs);
        let run = Payload {
            shell: Some("x".repeat(MAX_SCRIPT_BYTES + 1)),
            lua: None,
            command: None,
        };
        validate_payload(&run, "r", &mut errs);
        let run = Payload {
            shell: None,
            lua: Some(LuaPayload {
                script: String::new(),
                entry: Some("1main".into()),
                params: BTreeMap::new(),
                input: BTreeMap::new(),
                modules: Default::default(),
            }),
            command: None,
        };
        validate_payload(&run, "r", &mut errs);
        assert_eq!(
            fields(&errs),
            ["r.shell", "r.shell", "r.lua.script", "r.lua.entry"],
            "{errs}"
        );
        assert!(
            errs.0[1]
                .message
                .starts_with("is too large: 262145 bytes, the limit is 262144 bytes"),
            "{errs}"
        );
    }

    #[test]
    fn zero_timeout_is_refused_and_absent_is_fine() {
        let mut errs = FieldErrors::default();
        validate_timeout(None, "t", &mut errs);
        validate_timeout(Some(Duration::from_secs(1)), "t", &mut errs);
        assert!(errs.is_empty());
        validate_timeout(Some(Duration::from_secs(0)), "t", &mut errs);
        assert_eq!(fields(&errs), ["t"]);
    }
}
