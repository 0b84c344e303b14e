//! `slothctl delete KIND NAME...`, `delete KIND -l SELECTOR`,
//! `delete KIND --all` (every one in the namespace), and `delete -f PATH`
//! (the objects named in manifests).

use sloth_sdk::kinds::KindInfo;
use sloth_sdk::{Error as SdkError, ListParams};

use super::{Context, check_selectors};
use crate::cli::DeleteArgs;
use crate::error::{CliError, Failures};
use crate::kind::{self, qualified_name};
use crate::manifest::{self, Check};
use crate::printer::emit;

pub(crate) async fn run(ctx: &Context, args: DeleteArgs) -> anyhow::Result<()> {
    let targets = targets(ctx, &args).await?;
    let mut failures = Failures::default();
    for (kind, namespace, name) in targets {
        match ctx.client.delete(kind.kind, &namespace, &name, None).await {
            Ok(_) => emit(&format!("{} deleted\n", qualified_name(kind, &name)))?,
            Err(SdkError::NotFound(_)) if args.ignore_not_found => {}
            Err(e) => failures.report(ctx.error(e))?,
        }
    }
    Ok(failures.finish()?)
}

type Target = (&'static KindInfo, String, String);

/// What to delete: `(kind, namespace, name)` each.
async fn targets(ctx: &Context, args: &DeleteArgs) -> Result<Vec<Target>, CliError> {
    if !args.files.is_empty() {
        if args.kind.is_some() || !args.selector.is_empty() || args.all {
            return Err(CliError::usage(
                "give either -f PATH or KIND NAME (or KIND -l SELECTOR), not both",
            ));
        }
        let objects = manifest::load(
            &args.files,
            &mut std::io::stdin().lock(),
            ctx.namespace_flag.as_deref(),
            Check::Identity,
            &manifest::Params::new(),
        )
        .map_err(super::apply::invalid)?;
        return Ok(objects
            .into_iter()
            .map(|o| (o.kind, o.namespace, o.name))
            .collect());
    }
    let Some(kind_arg) = &args.kind else {
        return Err(CliError::usage(
            "say what to delete: KIND NAME..., KIND -l SELECTOR, or -f PATH",
        ));
    };
    let (kind, names) = kind::resolve_args(kind_arg, &args.names)?;
    check_selectors(&args.selector, "")?;
    let namespace = kind::scope(kind, &ctx.namespace, false).to_string();
    if args.all && !(names.is_empty() && args.selector.is_empty()) {
        return Err(CliError::usage(
            "--all deletes every object: give no names and no -l",
        ));
    }
    match (names.is_empty(), args.selector.is_empty()) {
        (true, true) if !args.all => Err(CliError::usage(format!(
            "no name given: delete {} NAME..., select with -l, or use --all",
            kind.singular
        ))),
        (false, false) => Err(CliError::usage("give names or -l, not both")),
        (false, true) => Ok(names
            .into_iter()
            .map(|n| (kind, namespace.clone(), n))
            .collect()),
        (true, _) => {
            let params = ListParams {
                label_selector: args.selector.clone(),
                ..ListParams::default()
            };
            let list = ctx
                .client
                .list_all(kind.kind, &namespace, &params)
                .await
                .map_err(|e| ctx.error(e))?;
            if list.items.is_empty() {
                eprintln!("{}", super::get::no_resources(kind, &namespace));
            }
            Ok(list
                .items
                .into_iter()
                .map(|o| (kind, o.metadata.namespace, o.metadata.name))
                .collect())
        }
    }
}
