//! Kind names as users type them (`taskrun`, `taskruns`, `tr`, `TaskRun`,
//! `tr/NAME`) and as slothctl prints them (`taskrun.sloth.dev/NAME`).

use sloth_sdk::kinds::{KindInfo, known_kinds, lookup};

use crate::error::CliError;

/// The API group every kind belongs to.
pub(crate) const GROUP: &str = "sloth.dev";

/// Finds a kind by any of its names, or explains which exist (exit 2).
pub(crate) fn resolve(name: &str) -> Result<&'static KindInfo, CliError> {
    lookup(name.trim()).ok_or_else(|| {
        CliError::usage(format!(
            "unknown resource type {name:?} (known: {})",
            known_kinds()
        ))
    })
}

/// Splits `KIND/NAME` (kubectl's `TYPE/NAME` form); a plain `KIND` has no name.
pub(crate) fn split_type_name(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('/') {
        Some((kind, name)) => (kind, Some(name)),
        None => (arg, None),
    }
}

/// Resolves `KIND [NAME...]` or `KIND/NAME [KIND/NAME...]` (one kind).
pub(crate) fn resolve_args(
    kind_arg: &str,
    names: &[String],
) -> Result<(&'static KindInfo, Vec<String>), CliError> {
    let (kind_name, first) = split_type_name(kind_arg);
    let kind = resolve(kind_name)?;
    let mut out = Vec::new();
    if let Some(first) = first {
        out.push(first.to_string());
        for arg in names {
            let (k, name) = split_type_name(arg);
            match name {
                Some(name) if resolve(k)?.kind == kind.kind => out.push(name.to_string()),
                Some(_) => {
                    return Err(CliError::usage(format!(
                        "all resources must be of one kind: {arg:?} is not a {}",
                        kind.kind
                    )));
                }
                None => {
                    return Err(CliError::usage(format!(
                        "there is no need to give a resource type as a separate argument \
                         when using TYPE/NAME form: {arg:?}"
                    )));
                }
            }
        }
    } else {
        out.extend(names.iter().cloned());
    }
    if let Some(bad) = out.iter().find(|n| n.trim().is_empty()) {
        return Err(CliError::usage(format!("resource name {bad:?} is empty")));
    }
    Ok((kind, out))
}

/// `taskrun.sloth.dev`, as kubectl prints kinds of API groups.
pub(crate) fn qualified(kind: &KindInfo) -> String {
    format!("{}.{GROUP}", kind.singular)
}

/// `taskrun.sloth.dev/NAME`.
pub(crate) fn qualified_name(kind: &KindInfo, name: &str) -> String {
    format!("{}/{name}", qualified(kind))
}

/// Where a kind's objects live for a command: "" for cluster-scoped kinds and
/// for `--all-namespaces`, else the namespace.
pub(crate) fn scope<'a>(kind: &KindInfo, namespace: &'a str, all_namespaces: bool) -> &'a str {
    if !kind.namespaced || all_namespaces {
        ""
    } else {
        namespace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_resolves() {
        for (alias, kind) in [
            ("taskrun", "TaskRun"),
            ("taskruns", "TaskRun"),
            ("tr", "TaskRun"),
            ("TaskRun", "TaskRun"),
            ("TASKRUNS", "TaskRun"),
            ("workflow", "Workflow"),
            ("workflows", "Workflow"),
            ("wf", "Workflow"),
            ("agent", "Agent"),
            ("agents", "Agent"),
            ("ag", "Agent"),
            ("lock", "Lock"),
            ("locks", "Lock"),
            ("event", "Event"),
            ("events", "Event"),
            ("ev", "Event"),
            ("stateentries", "StateEntry"),
            ("state", "StateEntry"),
        ] {
            assert_eq!(resolve(alias).expect(alias).kind, kind, "{alias}");
        }
    }

    #[test]
    fn unknown_kinds_are_usage_errors_listing_the_known_ones() {
        let e = resolve("foo").expect_err("foo");
        assert_eq!(e.code, crate::error::USAGE);
        assert_eq!(
            e.message,
            r#"error: unknown resource type "foo" (known: Agent, Workflow, TaskRun, Lock, Event, StateEntry, CronWorkflow, Stack, Secret)"#
        );
    }

    #[test]
    fn type_slash_name_form() {
        let (kind, names) = resolve_args("tr/a", &["taskrun/b".into()]).expect("ok");
        assert_eq!(kind.kind, "TaskRun");
        assert_eq!(names, ["a", "b"]);
        let (kind, names) = resolve_args("wf", &["x".into()]).expect("ok");
        assert_eq!(
            (kind.kind, names.as_slice()),
            ("Workflow", &["x".to_string()][..])
        );
        assert!(resolve_args("tr/a", &["wf/b".into()]).is_err());
        assert!(resolve_args("tr/a", &["b".into()]).is_err());
        assert!(resolve_args("tr/", &[]).is_err());
    }

    #[test]
    fn printed_names_are_group_qualified() {
        let kind = resolve("tr").expect("tr");
        assert_eq!(qualified_name(kind, "x"), "taskrun.sloth.dev/x");
    }
}
