//! `slothctl state`: the state store (docs/state.md). Keys and values of a
//! namespace, written with compare-and-swap through `sloth_sdk::state`, so
//! concurrent `incr` and `cas` from many processes never lose an update.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::Value;
use sloth_sdk::state::store::StateError;
use sloth_sdk::state::{StateStore, parse_value, render_value};

use super::Context;
use crate::error::CliError;
use crate::printer::age::{age, human_duration};
use crate::printer::{emit, table};

/// Longest VALUE shown by `state list` (and `get stateentries`).
const SHORT_VALUE_CHARS: usize = 40;

#[derive(Debug, Subcommand)]
pub(crate) enum StateCommand {
    /// Set KEY to VALUE (JSON numbers, booleans, arrays, objects and quoted
    /// strings are typed; anything else is a string).
    Set(SetArgs),
    /// Print the value of KEY; exit 1 when it is missing or expired.
    Get(KeyArgs),
    /// Delete KEY; exit 1 when it is missing.
    Delete(KeyArgs),
    /// List keys (starting with PREFIX): KEY, VALUE (shortened), AGE, EXPIRES.
    List(ListArgs),
    /// Add BY (default 1) to the integer at KEY (0 when missing) and print
    /// the new value.
    Incr(IncrArgs),
    /// Set KEY to NEW only if its value is OLD; exit 1 when it is not.
    Cas(CasArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    pub key: String,
    #[arg(allow_hyphen_values = true)]
    pub value: String,
    /// Expire the key after this long (e.g. 30s, 5m, 1h); must be positive.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub ttl: Option<String>,
    /// Store VALUE as a string whatever it looks like (`007`, `true`).
    #[arg(long)]
    pub string: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    pub key: String,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only keys starting with this.
    #[arg(default_value = "")]
    pub prefix: String,
}

#[derive(Debug, Args)]
pub(crate) struct IncrArgs {
    pub key: String,
    /// An integer, may be negative.
    #[arg(allow_hyphen_values = true, default_value = "1")]
    pub by: String,
}

#[derive(Debug, Args)]
pub(crate) struct CasArgs {
    pub key: String,
    #[arg(allow_hyphen_values = true)]
    pub old: String,
    #[arg(allow_hyphen_values = true)]
    pub new: String,
    /// Read OLD and NEW as strings whatever they look like.
    #[arg(long)]
    pub string: bool,
}

pub(crate) async fn run(ctx: &Context, command: StateCommand) -> anyhow::Result<()> {
    let store = StateStore::new(ctx.client.clone(), &ctx.namespace);
    let fail = |e: StateError| error(ctx, e);
    match command {
        StateCommand::Set(args) => {
            let ttl = args.ttl.as_deref().map(parse_ttl).transpose()?;
            let value = parse_value(&args.value, args.string)
                .map_err(|m| CliError::usage(format!("VALUE: {m}")))?;
            store.set(&args.key, &value, ttl).await.map_err(fail)?;
        }
        StateCommand::Get(args) => {
            let Some(entry) = store.get(&args.key).await.map_err(fail)? else {
                return Err(missing(ctx, &args.key).into());
            };
            emit(&format!("{}\n", render_value(&entry.spec.value)))?;
        }
        StateCommand::Delete(args) => {
            if !store.delete(&args.key).await.map_err(fail)? {
                return Err(missing(ctx, &args.key).into());
            }
            emit(&format!("deleted {}\n", args.key))?;
        }
        StateCommand::List(args) => {
            let entries = store.list(&args.prefix).await.map_err(fail)?;
            let now = Utc::now();
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.spec.key.clone(),
                        short_value(&e.spec.value),
                        age(e.metadata.creation_timestamp, now),
                        expires(e.spec.expires_at, now),
                    ]
                })
                .collect();
            let headers = ["KEY", "VALUE", "AGE", "EXPIRES"].map(String::from);
            emit(&table::render(Some(&headers), &rows))?;
        }
        StateCommand::Incr(args) => {
            let by: i64 = args.by.trim().parse().map_err(|_| {
                CliError::usage(format!("BY: must be an integer, not {:?}", args.by))
            })?;
            let new = store.increment(&args.key, by).await.map_err(fail)?;
            emit(&format!("{new}\n"))?;
        }
        StateCommand::Cas(args) => {
            let new = parse_value(&args.new, args.string)
                .map_err(|m| CliError::usage(format!("NEW: {m}")))?;
            let expected = expected_value(&store, &args).await.map_err(fail)?;
            if !store
                .compare_and_swap(&args.key, Some(&expected), &new)
                .await
                .map_err(fail)?
            {
                return Err(CliError::failed(format!(
                    "the value of {:?} is not {}",
                    args.key, args.old
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// OLD as the value it is compared with: the text as a string when the
/// key holds exactly that string (`cas k 5 6` on the string "5"), else OLD
/// typed as `set` types it.
async fn expected_value(store: &StateStore, args: &CasArgs) -> Result<Value, StateError> {
    if !args.string
        && let Some(entry) = store.get(&args.key).await?
        && entry.spec.value.as_str() == Some(args.old.as_str())
    {
        return Ok(Value::String(args.old.clone()));
    }
    parse_value(&args.old, args.string).map_err(|message| StateError::Invalid {
        field: "OLD",
        message,
    })
}

/// `--ttl`: a positive duration.
fn parse_ttl(text: &str) -> Result<Duration, CliError> {
    let ttl = sloth_sdk::duration::parse_flag(text)
        .map_err(|e| CliError::usage(format!("--ttl: {e}")))?;
    if ttl.is_zero() {
        return Err(CliError::usage(
            "--ttl: must be positive (omit it for a key that never expires)",
        ));
    }
    Ok(ttl)
}

fn missing(ctx: &Context, key: &str) -> CliError {
    CliError::failed(format!(
        "key {key:?} not found in namespace {:?}",
        ctx.namespace
    ))
}

fn error(ctx: &Context, e: StateError) -> CliError {
    match e {
        StateError::Api(e) => ctx.error(e),
        e if e.is_invalid() => CliError::usage(e),
        e => CliError::failed(e),
    }
}

/// A value on one line, cut to [`SHORT_VALUE_CHARS`].
pub(crate) fn short_value(value: &Value) -> String {
    let text = render_value(value).replace(['\n', '\r', '\t'], " ");
    if text.chars().count() <= SHORT_VALUE_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(SHORT_VALUE_CHARS - 3).collect();
    cut.push_str("...");
    cut
}

/// The EXPIRES column: `<none>`, the time left, or `expired`.
pub(crate) fn expires(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match at {
        None => "<none>".to_string(),
        Some(at) if at <= now => "expired".to_string(),
        Some(at) => human_duration(at - now),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_shortened_on_one_line() {
        assert_eq!(short_value(&json!("a\nb")), "a b");
        let long = short_value(&json!("é".repeat(100)));
        assert_eq!(long.chars().count(), SHORT_VALUE_CHARS);
        assert!(long.ends_with("..."));
        assert_eq!(short_value(&json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn a_ttl_must_be_a_positive_duration() {
        assert_eq!(parse_ttl("30s"), Ok(Duration::from_secs(30)));
        for bad in ["0", "0s", "-5s", "soon"] {
            let e = parse_ttl(bad).expect_err(bad);
            assert!(e.message.contains("--ttl"), "{}", e.message);
            assert_eq!(e.code, crate::error::USAGE);
        }
    }

    #[test]
    fn expiry_reads_as_time_left() {
        let now = Utc::now();
        assert_eq!(expires(None, now), "<none>");
        assert_eq!(expires(Some(now), now), "expired");
        assert_eq!(
            expires(Some(now + chrono::TimeDelta::seconds(30)), now),
            "30s"
        );
    }
}
