//! `slothctl render -f PATH [-o yaml|json] [--param K=V]`: the objects
//! `apply` would send, after Lua workflow files are evaluated and checked,
//! printed instead of sent. The server is contacted only to resolve
//! `delegate_to({address = ...})`.

use serde_json::Value;

use super::LazyContext;
use super::apply::{Resolve, load, needs_addresses, resolve_delegations, values_and_params};
use crate::cli::{RenderArgs, RenderFormat};
use crate::manifest::Resolved;
use crate::printer::emit;
use crate::printer::output::{json_pretty, yaml};

pub(crate) async fn run(ctx: &LazyContext<'_>, args: &RenderArgs) -> anyhow::Result<()> {
    let namespace_flag = ctx.namespace_flag();
    let values = values_and_params(args.values.as_deref(), &args.params)?;
    let mut objects = load(&args.files, namespace_flag, &values)?;
    if needs_addresses(&objects) {
        let server = ctx.get()?;
        resolve_delegations(&server.client, &mut objects)
            .await
            .map_err(|e| match e {
                Resolve::Server(e) => server.error(e),
                Resolve::Invalid(e) => e,
            })?;
    }
    let values: Vec<Value> = objects
        .iter()
        .map(|o| shown(o, namespace_flag.is_some()))
        .collect();
    emit(&render(&values, args.output)?)?;
    Ok(())
}

/// The object as rendered: the namespace only where the manifest or `-n`
/// set it, so that the output applies to the namespace of the later apply.
fn shown(object: &Resolved, namespace_flag: bool) -> Value {
    let mut value = object.value.clone();
    let written = object
        .doc
        .value
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !written
        && !namespace_flag
        && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("namespace");
    }
    value
}

/// YAML documents separated by `---`, or JSON: one object, or a List.
fn render(values: &[Value], format: RenderFormat) -> Result<String, crate::error::CliError> {
    match format {
        RenderFormat::Yaml => {
            let mut out = String::new();
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&yaml(value)?);
            }
            Ok(out)
        }
        RenderFormat::Json => match values {
            [one] => json_pretty(one),
            many => json_pretty(&serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": many,
            })),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{self, Check, Params};

    fn objects(text: &str) -> Vec<Resolved> {
        let docs = manifest::parse_lua("r.lua", text, &Params::new()).expect("lua");
        manifest::resolve_all(docs, None, Check::Admit).expect("admitted")
    }

    #[test]
    fn yaml_output_reads_back_as_the_same_objects() {
        let objects = objects(
            "workflow.define('a'):tasks({ task('x'):command('echo x') })\n\
             workflow.define('b'):tasks({ task('y'):command(function() return true end) })",
        );
        let values: Vec<Value> = objects.iter().map(|o| shown(o, false)).collect();
        assert!(values[0]["metadata"].get("namespace").is_none());
        let text = render(&values, RenderFormat::Yaml).expect("yaml");
        let docs = manifest::parse("<stdin>", &text, false).expect("parse");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value, values[1]);
        let json = render(&values, RenderFormat::Json).expect("json");
        let docs = manifest::parse("<stdin>", &json, true).expect("parse");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value, values[0]);
        let one = render(&values[..1], RenderFormat::Json).expect("json");
        assert!(one.contains("\"kind\": \"Workflow\""), "{one}");
    }

    #[test]
    fn namespace_is_kept_with_the_flag() {
        let objects = objects("workflow.define('a'):tasks({ task('x'):command('echo x') })");
        assert_eq!(shown(&objects[0], true)["metadata"]["namespace"], "default");
    }
}
