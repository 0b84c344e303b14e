//! `slothctl create secret NAME --from-literal k=v --from-file [k=]PATH
//! --from-env-file PATH [--type T]`, as kubectl's `create secret generic`:
//! every source is read (and every key checked) before anything is sent;
//! values travel base64 in `spec.data` and are never printed.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use sloth_sdk::objects::secret::encode;
use sloth_sdk::validation::names::validate_secret_key;

use super::Context;
use crate::error::CliError;
use crate::printer::emit;

#[derive(Debug, clap::Args)]
pub(crate) struct CreateSecretArgs {
    /// The Secret's name.
    pub name: String,
    /// A key and its value; repeatable.
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    pub from_literal: Vec<String>,
    /// A file's bytes as a key (its file name, or KEY); repeatable.
    #[arg(long = "from-file", value_name = "[KEY=]PATH")]
    pub from_file: Vec<String>,
    /// Every KEY=VALUE line of a file (blank lines and # comments
    /// skipped); repeatable.
    #[arg(long = "from-env-file", value_name = "PATH")]
    pub from_env_file: Vec<String>,
    /// The Secret's type (free-form, e.g. Opaque).
    #[arg(long = "type", value_name = "TYPE")]
    pub type_: Option<String>,
}

pub(crate) async fn create_secret(ctx: &Context, args: CreateSecretArgs) -> anyhow::Result<()> {
    let data = secret_data(&args)?;
    let mut spec = json!({ "data": data });
    if let Some(type_) = args.type_.as_deref().filter(|t| !t.is_empty()) {
        spec["type"] = json!(type_);
    }
    let object = json!({
        "apiVersion": sloth_sdk::API_VERSION,
        "kind": "Secret",
        "metadata": {"name": args.name, "namespace": ctx.namespace},
        "spec": spec,
    });
    ctx.client.create(&object).await.map_err(|e| ctx.error(e))?;
    emit(&format!("secret/{} created\n", args.name))?;
    Ok(())
}

/// Key -> base64 value from every source, in the order given; a key given
/// twice is an error (exit 2), as is an unreadable file.
fn secret_data(args: &CreateSecretArgs) -> Result<BTreeMap<String, String>, CliError> {
    let mut data = BTreeMap::new();
    let mut add = |key: String, value: &[u8], source: &str| -> Result<(), CliError> {
        validate_secret_key(&key)
            .map_err(|why| CliError::usage(format!("{source}: key {key:?}: {why}")))?;
        if data.insert(key.clone(), encode(value)).is_some() {
            return Err(CliError::usage(format!(
                "{source}: key {key:?} is given twice"
            )));
        }
        Ok(())
    };
    for literal in &args.from_literal {
        let (key, value) = literal.split_once('=').ok_or_else(|| {
            CliError::usage("--from-literal: expected KEY=VALUE (the value is not shown here)")
        })?;
        add(key.to_string(), value.as_bytes(), "--from-literal")?;
    }
    for file in &args.from_file {
        let (key, path) = match file.split_once('=') {
            Some((key, path)) => (key.to_string(), path),
            None => (file_key(file)?, file.as_str()),
        };
        let bytes = std::fs::read(path)
            .map_err(|e| CliError::usage(format!("--from-file: cannot read {path}: {e}")))?;
        add(key, &bytes, &format!("--from-file {path}"))?;
    }
    for path in &args.from_env_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("--from-env-file: cannot read {path}: {e}")))?;
        for (key, value) in parse_env_file(&text, path)? {
            add(key, value.as_bytes(), &format!("--from-env-file {path}"))?;
        }
    }
    if data.is_empty() {
        return Err(CliError::usage(
            "a Secret needs at least one key: --from-literal, --from-file or --from-env-file",
        ));
    }
    Ok(data)
}

/// The key of `--from-file PATH`: the file's name.
fn file_key(path: &str) -> Result<String, CliError> {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| CliError::usage(format!("--from-file {path:?}: give KEY=PATH")))
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped; the value
/// is taken as written (no quotes removed), as kubectl does.
fn parse_env_file(text: &str, path: &str) -> Result<Vec<(String, String)>, CliError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (key, value) = trimmed.split_once('=').ok_or_else(|| {
            CliError::usage(format!(
                "--from-env-file {path}, line {}: expected KEY=VALUE",
                i + 1
            ))
        })?;
        out.push((key.trim_end().to_string(), value.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(literals: &[&str], files: &[&str], env_files: &[&str]) -> CreateSecretArgs {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        CreateSecretArgs {
            name: "db".into(),
            from_literal: own(literals),
            from_file: own(files),
            from_env_file: own(env_files),
            type_: None,
        }
    }

    #[test]
    fn every_source_becomes_base64_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("tls.crt");
        std::fs::write(&cert, b"\x00\xffcert").expect("write");
        let env = dir.path().join("db.env");
        std::fs::write(&env, "# comment\n\nUSER=admin\nURL=a=b \n").expect("write");
        let data = secret_data(&args(
            &["password=hunter2", "empty="],
            &[
                cert.to_str().expect("utf8"),
                &format!("ca={}", cert.display()),
            ],
            &[env.to_str().expect("utf8")],
        ))
        .expect("valid");
        assert_eq!(data["password"], encode(b"hunter2"));
        assert_eq!(data["empty"], "");
        assert_eq!(data["tls.crt"], encode(b"\x00\xffcert"));
        assert_eq!(data["ca"], data["tls.crt"]);
        assert_eq!(data["USER"], encode(b"admin"));
        assert_eq!(data["URL"], encode(b"a=b "));
    }

    #[test]
    fn bad_sources_are_usage_errors_that_never_show_a_value() {
        for (bad, why) in [
            (args(&["nokey"], &[], &[]), "KEY=VALUE"),
            (args(&["a=1", "a=2"], &[], &[]), "twice"),
            (args(&["bad key=hunter2"], &[], &[]), "\"bad key\""),
            (args(&[], &["/nonexistent/x"], &[]), "cannot read"),
            (args(&[], &[], &[]), "at least one key"),
        ] {
            let err = secret_data(&bad).expect_err(why);
            assert_eq!(err.code, crate::error::USAGE, "{err}");
            assert!(err.to_string().contains(why), "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }
}
