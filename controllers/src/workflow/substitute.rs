//! `$(params.NAME)` and `$(tasks.TASK.results.KEY)` substitution into a
//! task's texts (pure). Anything else that looks like `$(...)` is the
//! shell's own command substitution and is left alone.

use std::collections::BTreeMap;

use sloth_sdk::objects::workflow::{WorkflowTask, parse_result_ref};

/// What references resolve to.
#[derive(Clone, Copy, Debug)]
pub struct Values<'a> {
    pub params: &'a BTreeMap<String, String>,
    /// Results of the tasks that succeeded, by task name.
    pub results: &'a BTreeMap<String, BTreeMap<String, String>>,
}

/// A result reference that cannot be resolved: the task succeeded without
/// writing that key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task {task:?} has no result {key:?} (it wrote: {written})")]
pub struct MissingResult {
    pub task: String,
    pub key: String,
    pub written: String,
}

/// `text` with every known reference replaced.
pub fn substitute(text: &str, values: Values<'_>) -> Result<String, MissingResult> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else {
            break;
        };
        match resolve(&after[..end], values)? {
            Some(value) => {
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve<'v>(inner: &str, values: Values<'v>) -> Result<Option<&'v str>, MissingResult> {
    if let Some(name) = inner.strip_prefix("params.") {
        return Ok(values.params.get(name).map(String::as_str));
    }
    let Some(reference) = inner.strip_prefix("tasks.").and_then(parse_result_ref) else {
        return Ok(None);
    };
    let written = values.results.get(&reference.task);
    match written.and_then(|r| r.get(&reference.key)) {
        Some(value) => Ok(Some(value)),
        None => Err(MissingResult {
            written: written
                .filter(|r| !r.is_empty())
                .map(|r| r.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_else(|| "no results".into()),
            task: reference.task,
            key: reference.key,
        }),
    }
}

/// The task with references substituted into its payload, env values,
/// workdir and `when`.
pub fn substitute_task(
    task: &WorkflowTask,
    values: Values<'_>,
) -> Result<WorkflowTask, MissingResult> {
    let mut task = task.clone();
    if let Some(shell) = task.run.shell.as_mut() {
        *shell = substitute(shell, values)?;
    }
    for arg in task.run.command.iter_mut().flatten() {
        *arg = substitute(arg, values)?;
    }
    if let Some(lua) = task.run.lua.as_mut().filter(|l| !l.is_workflow_file()) {
        lua.script = substitute(&lua.script, values)?;
    }
    for value in task.env.values_mut() {
        *value = substitute(value, values)?;
    }
    if let Some(workdir) = task.workdir.as_mut() {
        *workdir = substitute(workdir, values)?;
    }
    if let Some(when) = task.when.as_mut() {
        *when = substitute(when, values)?;
    }
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sloth_sdk::objects::common::{LuaPayload, Payload};

    fn params() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("env".to_string(), "prod".to_string()),
            ("n".to_string(), "3".to_string()),
        ])
    }

    fn results() -> BTreeMap<String, BTreeMap<String, String>> {
        BTreeMap::from([(
            "build".to_string(),
            BTreeMap::from([("image".to_string(), "app:1.2".to_string())]),
        )])
    }

    fn sub(text: &str) -> Result<String, MissingResult> {
        let (p, r) = (params(), results());
        substitute(
            text,
            Values {
                params: &p,
                results: &r,
            },
        )
    }

    #[test]
    fn substitutes_params_and_results() {
        assert_eq!(
            sub("deploy $(tasks.build.results.image) to $(params.env) x$(params.n)$(params.n)")
                .expect("ok"),
            "deploy app:1.2 to prod x33"
        );
    }

    #[test]
    fn leaves_shell_substitution_unknown_params_and_malformed_text() {
        assert_eq!(
            sub("now=$(date +%s) $(params.nope)").expect("ok"),
            "now=$(date +%s) $(params.nope)"
        );
        assert_eq!(sub("$(params.env").expect("ok"), "$(params.env");
        assert_eq!(sub("$(tasks.build)").expect("ok"), "$(tasks.build)");
        assert_eq!(
            sub("$(params.nope)$(params.env)").expect("ok"),
            "$(params.nope)prod"
        );
    }

    #[test]
    fn a_missing_result_is_an_error_naming_task_and_key() {
        let err = sub("$(tasks.build.results.tag)").expect_err("an error");
        assert_eq!((err.task.as_str(), err.key.as_str()), ("build", "tag"));
        assert!(err.to_string().contains("image"), "{err}");
        let err = sub("$(tasks.test.results.x)").expect_err("an error");
        assert!(err.to_string().contains("no results"), "{err}");
    }

    #[test]
    fn substitutes_every_text_of_a_task() {
        let task = WorkflowTask {
            name: "t".into(),
            run: Payload {
                shell: Some("echo $(params.env)".into()),
                lua: Some(LuaPayload {
                    script: "print('$(params.n)')".into(),
                    ..Default::default()
                }),
                command: None,
            },
            env: [(
                "IMAGE".to_string(),
                "$(tasks.build.results.image)".to_string(),
            )]
            .into(),
            workdir: Some("w-$(params.env)".into()),
            when: Some("$(params.env) == prod".into()),
            ..Default::default()
        };
        let (p, r) = (params(), results());
        let out = substitute_task(
            &task,
            Values {
                params: &p,
                results: &r,
            },
        )
        .expect("ok");
        assert_eq!(out.run.shell.as_deref(), Some("echo prod"));
        assert_eq!(out.run.lua.map(|l| l.script).as_deref(), Some("print('3')"));
        assert_eq!(out.env["IMAGE"], "app:1.2");
        assert_eq!(out.workdir.as_deref(), Some("w-prod"));
        assert_eq!(out.when.as_deref(), Some("prod == prod"));
    }
}
