//! `slothctl apply -f PATH|-`: check every document first (nothing is sent
//! when one is invalid), then create each object, or update it when it
//! exists, reporting `created`, `configured` or `unchanged` as kubectl does.
//! Lua workflow files are evaluated first; a Lua error is reported with its
//! file and line and nothing is sent.

use std::collections::BTreeMap;

use serde_json::Value;
use sloth_sdk::lua::{address_delegations, resolve_addresses};
use sloth_sdk::objects::workflow::Workflow;
use sloth_sdk::well_known::ADDRESS_ANNOTATION;
use sloth_sdk::{Client, DynamicObject, Error as SdkError, ListParams};

use super::{Context, placement, print_errors};
use crate::cli::{ApplyArgs, DryRun};
use crate::error::{self, CliError, Failures};
use crate::kind::qualified_name;
use crate::manifest::{self, Check, Resolved};
use crate::printer::emit;

/// How often a create-or-update races with other writers before giving up.
const ATTEMPTS: usize = 5;

/// What apply did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Configured => "configured",
            Self::Unchanged => "unchanged",
        }
    }
}

pub(crate) async fn run(ctx: &Context, args: ApplyArgs) -> anyhow::Result<()> {
    super::stamp::check_stack_flag(args.stack.as_deref())?;
    let files = if args.recursive {
        recursive(&args.files)?
    } else {
        args.files.clone()
    };
    let mut objects = load(
        &files,
        ctx.namespace_flag.as_deref(),
        &values_and_params(args.values.as_deref(), &args.params)?,
    )?;
    super::stamp::stamp(
        &mut objects,
        args.stack.as_deref(),
        super::stamp::local_user().as_deref(),
    );
    if args.check {
        set_check_mode(&mut objects);
    }
    let server_dry_run = match args.dry_run {
        Some(DryRun::Client) => return dry_run(ctx, &objects).await,
        Some(DryRun::Server) => true,
        None => false,
    };
    // A server dry run uploads no workspace: it writes nothing anywhere.
    if !server_dry_run {
        super::workspace::attach(ctx, &mut objects, args.workspace.as_deref()).await?;
    }
    if needs_addresses(&objects) {
        resolve_delegations(&ctx.client, &mut objects)
            .await
            .map_err(|e| match e {
                Resolve::Server(e) => ctx.error(e),
                Resolve::Invalid(e) => e,
            })?;
    }
    warn_unplaceable(&ctx.client, &objects).await;
    let mut failures = Failures::default();
    for object in &objects {
        match apply_one(ctx, object, server_dry_run).await {
            Ok((name, outcome)) => {
                emit(&format!(
                    "{} {}{}\n",
                    qualified_name(object.kind, &name),
                    outcome.as_str(),
                    if server_dry_run {
                        " (server dry run)"
                    } else {
                        ""
                    }
                ))?;
            }
            Err(e) => failures.report(
                ctx.error(e)
                    .with_context(&format!("error when applying {}", object.doc.label())),
            )?,
        }
    }
    Ok(failures.finish()?)
}

/// `--dry-run=client`: every object checked, what apply would do printed,
/// nothing written (the live objects are only read).
async fn dry_run(ctx: &Context, objects: &[Resolved]) -> anyhow::Result<()> {
    for object in objects {
        let preview = super::diff::preview(ctx, object)
            .await
            .map_err(|e| ctx.error(e))?;
        emit(&format!(
            "{} {} (dry run)\n",
            qualified_name(object.kind, &object.name),
            preview.outcome.as_str()
        ))?;
    }
    Ok(())
}

/// Every directory under each directory of `paths` (depth first, in name
/// order), after it: `-R`, since reading a directory takes its own files.
/// Symbolic links to directories are not followed (no loops).
pub(crate) fn recursive(paths: &[String]) -> Result<Vec<String>, CliError> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) -> Result<(), CliError> {
        out.push(dir.display().to_string());
        let entries = std::fs::read_dir(dir).map_err(|e| {
            CliError::usage(format!("cannot read directory {}: {e}", dir.display()))
        })?;
        let mut subdirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                CliError::usage(format!("cannot read directory {}: {e}", dir.display()))
            })?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                subdirs.push(entry.path());
            }
        }
        subdirs.sort();
        for sub in subdirs {
            walk(&sub, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    for path in paths {
        if path != "-" && std::path::Path::new(path).is_dir() {
            walk(std::path::Path::new(path), &mut out)?;
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// Reads and admits every document of every path; any problem is a usage
/// error, each printed.
pub(crate) fn load(
    paths: &[String],
    namespace_flag: Option<&str>,
    params: &manifest::Params,
) -> Result<Vec<Resolved>, CliError> {
    manifest::load(
        paths,
        &mut std::io::stdin().lock(),
        namespace_flag,
        Check::Admit,
        params,
    )
    .map_err(invalid)
}

/// `--check`: every TaskRun and Workflow runs in check mode (a Workflow
/// passes it on to the TaskRuns it creates).
pub(crate) fn set_check_mode(objects: &mut [Resolved]) {
    for object in objects {
        if matches!(object.kind.kind, "TaskRun" | "Workflow")
            && let Some(spec) = object.value.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert("checkMode".into(), Value::Bool(true));
        }
    }
}

/// `--param`s as a map (the last of a key wins).
pub(crate) fn params(list: &[(String, String)]) -> manifest::Params {
    list.iter().cloned().collect()
}

/// `--values FILE` then the `--param`s over it.
pub(crate) fn values_and_params(
    file: Option<&std::path::Path>,
    list: &[(String, String)],
) -> Result<manifest::Params, CliError> {
    let mut merged = match file {
        Some(file) => super::values::read(file).map_err(CliError::usage)?,
        None => manifest::Params::new(),
    };
    merged.extend(params(list));
    Ok(merged)
}

/// True when a Lua workflow delegates a task by agent address, which only
/// the server's list of agents can resolve.
pub(crate) fn needs_addresses(objects: &[Resolved]) -> bool {
    objects.iter().any(|o| {
        o.value
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(ADDRESS_ANNOTATION))
            .is_some()
    })
}

/// Why delegations by address could not be resolved.
pub(crate) enum Resolve {
    Server(SdkError),
    /// No agent has the address (exit 2; already phrased).
    Invalid(CliError),
}

/// Replaces `delegate_to({address = ...})` markers by selectors on the
/// agent reporting that address (`localhost`, loopback and host names
/// normalised, see [`placement::agent_at`]).
pub(crate) async fn resolve_delegations(
    client: &Client,
    objects: &mut [Resolved],
) -> Result<(), Resolve> {
    let agents = client
        .list_all("Agent", "", &ListParams::default())
        .await
        .map_err(Resolve::Server)?
        .items;
    for object in objects.iter_mut() {
        if !needs_addresses(std::slice::from_ref(object)) {
            continue;
        }
        let label = object.doc.label();
        let invalid = |why: String| Resolve::Invalid(CliError::usage(format!("{label}: {why}")));
        let mut workflow: Workflow =
            serde_json::from_value(object.value.clone()).map_err(|e| invalid(e.to_string()))?;
        let mut by_address = BTreeMap::new();
        for delegation in address_delegations(&workflow).map_err(invalid)? {
            if let Some(agent) = placement::agent_at(&agents, &delegation.address).await {
                by_address.insert(delegation.address, agent);
            }
        }
        resolve_addresses(&mut workflow, |address| by_address.get(address).cloned())
            .map_err(|why| invalid(format!("{why} ({})", placement::describe_agents(&agents))))?;
        object.value = serde_json::to_value(&workflow).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(())
}

/// Warns (on stderr) about every task no agent can run yet, naming the
/// agents that exist. Only a hint: when the agents cannot be listed, or
/// nothing has a selector, it says nothing.
pub(crate) async fn warn_unplaceable(client: &Client, objects: &[Resolved]) {
    let has_selector = objects.iter().any(|o| {
        matches!(o.kind.kind, "Workflow" | "CronWorkflow")
            && o.value.to_string().contains("\"agentSelector\"")
    });
    if !has_selector {
        return;
    }
    let Ok(agents) = client.list_all("Agent", "", &ListParams::default()).await else {
        return;
    };
    for object in objects {
        for warning in placement::unmatched_tasks(&object.value, &agents.items) {
            eprintln!("warning: {warning}");
        }
    }
}

/// Prints every message and yields the usage exit code.
pub(crate) fn invalid(errors: Vec<String>) -> CliError {
    print_errors(&errors);
    CliError::reported(error::USAGE)
}

/// Creates or updates one object; returns its name and what happened.
/// With `dry_run` the apiserver checks each write and stores nothing.
async fn apply_one(
    ctx: &Context,
    object: &Resolved,
    dry_run: bool,
) -> Result<(String, Outcome), SdkError> {
    let client = &ctx.client;
    let create = |value: &Value| {
        let value = value.clone();
        async move {
            if dry_run {
                client.create_dry_run(&value).await
            } else {
                client.create(&value).await
            }
        }
    };
    if object.name.is_empty() {
        let created = create(&object.value).await?;
        return Ok((created.metadata.name, Outcome::Created));
    }
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match create(&object.value).await {
            Ok(_) => return Ok((object.name.clone(), Outcome::Created)),
            Err(SdkError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        let current = match client
            .get(object.kind.kind, &object.namespace, &object.name)
            .await
        {
            Ok(current) => current,
            // Deleted since: create again.
            Err(e @ SdkError::NotFound(_)) => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let desired = keep_controller_fields(object.kind.kind, &current, &object.value);
        if unchanged(&current, &desired) {
            return Ok((object.name.clone(), Outcome::Unchanged));
        }
        let body = update_body(&current, &desired);
        let updated = if dry_run {
            client.update_dry_run(&body).await
        } else {
            client.update(&body).await
        };
        match updated {
            Ok(updated) => {
                // A dry run stores nothing, so its answer keeps the version:
                // the comparison with `desired` above decided.
                let outcome = if !dry_run
                    && updated.metadata.resource_version == current.metadata.resource_version
                {
                    Outcome::Unchanged
                } else {
                    Outcome::Configured
                };
                return Ok((object.name.clone(), outcome));
            }
            Err(e @ (SdkError::Conflict(_) | SdkError::NotFound(_))) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| SdkError::Conflict(format!("{} kept changing", object.name))))
}

/// Spec fields that controllers set and users usually leave out:
/// `(kind, field)`. A manifest that omits one keeps the stored value, so
/// re-applying a manifest does not try to undo (or, for immutable fields,
/// fail on) what a controller did.
const CONTROLLER_FIELDS: &[(&str, &str)] = &[("TaskRun", "agentName")];

/// `desired` with the controller-set spec fields it omits taken from `current`.
pub(crate) fn keep_controller_fields(
    kind: &str,
    current: &DynamicObject,
    desired: &Value,
) -> Value {
    let mut desired = desired.clone();
    for (_, field) in CONTROLLER_FIELDS.iter().filter(|(k, _)| *k == kind) {
        let Some(kept) = current.spec.get(*field).filter(|v| !v.is_null()) else {
            continue;
        };
        if let Some(spec) = desired.get_mut("spec").and_then(Value::as_object_mut)
            && spec.get(*field).is_none_or(Value::is_null)
        {
            spec.insert((*field).to_string(), kept.clone());
        }
    }
    desired
}

/// True when the stored object already has the desired spec, labels and
/// annotations (both sides are canonical JSON).
pub(crate) fn unchanged(current: &DynamicObject, desired: &Value) -> bool {
    let desired_meta = |field: &str| -> Value {
        match desired.get("metadata").and_then(|m| m.get(field)) {
            Some(Value::Object(map)) => Value::Object(map.clone()),
            _ => Value::Object(Default::default()),
        }
    };
    let as_value = |map: &std::collections::BTreeMap<String, String>| {
        Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    };
    desired.get("spec").unwrap_or(&Value::Null) == &current.spec
        && desired_meta("labels") == as_value(&current.metadata.labels)
        && desired_meta("annotations") == as_value(&current.metadata.annotations)
}

/// The desired object as an update of `current`: its resourceVersion (so a
/// concurrent change is a Conflict, not lost), and the finalizers and owner
/// references controllers set, unless the manifest sets its own.
pub(crate) fn update_body(current: &DynamicObject, desired: &Value) -> Value {
    let mut body = desired.clone();
    let current_meta = serde_json::to_value(&current.metadata).unwrap_or(Value::Null);
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(current.metadata.resource_version.clone()),
        );
        for field in ["finalizers", "ownerReferences"] {
            if !meta.contains_key(field)
                && let Some(kept) = current_meta.get(field)
            {
                meta.insert(field.into(), kept.clone());
            }
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn current() -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "a", "namespace": "default", "resourceVersion": "7", "uid": "u",
                         "labels": {"app": "x"}, "finalizers": ["sloth.dev/gc"]},
            "spec": {"run": {"shell": "true"}},
            "status": {"phase": "Running"}
        }))
        .expect("object")
    }

    #[test]
    fn unchanged_compares_spec_labels_and_annotations_only() {
        let desired = json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "a", "namespace": "default", "labels": {"app": "x"}},
            "spec": {"run": {"shell": "true"}}
        });
        assert!(unchanged(&current(), &desired));
        let mut other = desired.clone();
        other["spec"]["run"]["shell"] = "false".into();
        assert!(!unchanged(&current(), &other));
        let mut relabelled = desired.clone();
        relabelled["metadata"]["labels"]["app"] = "y".into();
        assert!(!unchanged(&current(), &relabelled));
        let mut annotated = desired;
        annotated["metadata"]["annotations"] = json!({"note": "n"});
        assert!(!unchanged(&current(), &annotated));
    }

    #[test]
    fn a_binding_made_by_the_scheduler_survives_reapplying() {
        let mut bound = current();
        bound.spec["agentName"] = "a1".into();
        let manifest = json!({
            "kind": "TaskRun",
            "metadata": {"name": "a", "labels": {"app": "x"}},
            "spec": {"run": {"shell": "true"}}
        });
        let desired = keep_controller_fields("TaskRun", &bound, &manifest);
        assert_eq!(desired["spec"]["agentName"], "a1");
        assert!(unchanged(&bound, &desired));
        let mut pinned = manifest.clone();
        pinned["spec"]["agentName"] = "a2".into();
        assert_eq!(
            keep_controller_fields("TaskRun", &bound, &pinned)["spec"]["agentName"],
            "a2"
        );
        assert_eq!(
            keep_controller_fields("Workflow", &bound, &manifest),
            manifest
        );
    }

    #[test]
    fn updates_carry_the_current_version_and_keep_finalizers() {
        let desired = json!({"kind": "TaskRun", "metadata": {"name": "a"}, "spec": {}});
        let body = update_body(&current(), &desired);
        assert_eq!(body["metadata"]["resourceVersion"], "7");
        assert_eq!(body["metadata"]["finalizers"], json!(["sloth.dev/gc"]));
        assert!(body["metadata"].get("ownerReferences").is_none());
    }
}
