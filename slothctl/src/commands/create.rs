//! `slothctl create workflow NAME --from cronworkflow/CRON` (`create
//! secret` lives in create_secret.rs): runs a
//! CronWorkflow now, as `kubectl create job --from=cronjob/X` does. The
//! Workflow is labelled and owned like a scheduled run (so the
//! concurrency policy and history limits count it) but carries no
//! scheduled time.

use sloth_sdk::objects::cronworkflow::workflow_for;
use sloth_sdk::objects::{CronWorkflowSpec, WorkflowSpec};
use sloth_sdk::well_known::APPLIED_BY_ANNOTATION;
use sloth_sdk::{Api, Error as SdkError, Spec};

use super::Context;
use crate::error::CliError;
use crate::printer::emit;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CreateCommand {
    /// Create a Workflow from a CronWorkflow's workflowSpec (a manual run).
    Workflow(CreateWorkflowArgs),
    /// Create a Secret from literal values, files and env files (values
    /// are sent base64 in spec.data and never printed).
    Secret(super::create_secret::CreateSecretArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreateWorkflowArgs {
    /// The new Workflow's name.
    pub name: String,
    /// Where the spec comes from: cronworkflow/NAME.
    #[arg(long, value_name = "cronworkflow/NAME")]
    pub from: String,
}

pub(crate) async fn run(ctx: &Context, command: CreateCommand) -> anyhow::Result<()> {
    match command {
        CreateCommand::Workflow(args) => create_workflow(ctx, args).await,
        CreateCommand::Secret(args) => super::create_secret::create_secret(ctx, args).await,
    }
}

/// `cronworkflow/NAME` (or `cwf/NAME`, `cronworkflows/NAME`) -> NAME.
fn cron_name(from: &str) -> Result<&str, CliError> {
    let (kind, name) = from.split_once('/').unwrap_or(("", from));
    let is_cron = sloth_sdk::kinds::lookup(kind).is_some_and(|k| k.kind == CronWorkflowSpec::KIND);
    if !is_cron || name.is_empty() {
        return Err(CliError::usage(format!(
            "--from {from:?}: expected cronworkflow/NAME"
        )));
    }
    Ok(name)
}

async fn create_workflow(ctx: &Context, args: CreateWorkflowArgs) -> anyhow::Result<()> {
    let cron_name = cron_name(&args.from)?;
    let crons: Api<CronWorkflowSpec> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let cron = match crons.get(cron_name).await {
        Ok(cron) => cron,
        Err(SdkError::NotFound(_)) => {
            return Err(CliError::failed(format!(
                "cronworkflow {cron_name:?} not found in namespace {:?}",
                ctx.namespace
            ))
            .into());
        }
        Err(e) => return Err(ctx.error(e).into()),
    };
    let mut workflow = workflow_for(&cron, &args.name, None);
    if let Some(user) = super::stamp::local_user() {
        workflow
            .metadata
            .annotations
            .insert(APPLIED_BY_ANNOTATION.to_string(), user);
    }
    let workflows: Api<WorkflowSpec> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let created = workflows
        .create(&workflow)
        .await
        .map_err(|e| ctx.error(e))?;
    emit(&format!("workflow/{} created\n", created.name()))?;
    Ok(())
}
