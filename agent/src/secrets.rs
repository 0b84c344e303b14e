//! Delivery of Secrets to a run: the agent reads every Secret the TaskRun
//! references (the apiserver lets it only while the TaskRun is bound to it
//! and unfinished), then hands the values over as environment variables
//! (`env[].valueFrom.secretKeyRef`, `envFrom`), files (`secretFiles`, mode
//! 0600, removed after the run) and to Lua (`secret.get`, `secrets`). A
//! missing Secret or key fails the run before it starts, naming it. The
//! values never go back into any object: only masked output does.

use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use sloth_sdk::objects::{SecretSpec, TaskRunSpec};
use sloth_sdk::validation::names::validate_env_var_name;
use sloth_sdk::{Api, Client, Error};

use crate::lua::Secrets;
use crate::masking::Masks;

/// Reasons a run fails before it starts.
pub(crate) mod reason {
    pub(crate) const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub(crate) const SECRET_KEY_NOT_FOUND: &str = "SecretKeyNotFound";
    pub(crate) const SECRET_ERROR: &str = "SecretError";
}

/// Why the Secrets of a run cannot be delivered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Undeliverable {
    pub reason: &'static str,
    pub message: String,
}

impl Undeliverable {
    fn new(reason: &'static str, message: String) -> Self {
        Self { reason, message }
    }
}

/// What a run gets.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    /// Environment variables from Secrets (after the plain ones).
    pub env: Vec<(String, String)>,
    /// The Secrets, for Lua.
    pub secrets: Secrets,
    /// Every delivered value, to hide.
    pub masks: Masks,
}

/// Reads every Secret `spec` references, in `namespace`.
pub(crate) async fn fetch(
    client: &Client,
    namespace: &str,
    spec: &TaskRunSpec,
) -> Result<Secrets, Undeliverable> {
    let api: Api<SecretSpec> = Api::namespaced(client.clone(), namespace);
    let mut secrets = Secrets::new();
    for name in spec.secret_use().names() {
        let secret = match api.get(name).await {
            Ok(secret) => secret,
            Err(Error::NotFound(_)) => {
                return Err(Undeliverable::new(
                    reason::SECRET_NOT_FOUND,
                    format!("Secret {name:?} not found in namespace {namespace:?}"),
                ));
            }
            Err(e) => {
                return Err(Undeliverable::new(
                    reason::SECRET_ERROR,
                    format!("cannot read Secret {name:?}: {e}"),
                ));
            }
        };
        let values = secret.spec.values().map_err(|e| {
            Undeliverable::new(reason::SECRET_ERROR, format!("Secret {name:?}: {e}"))
        })?;
        secrets.insert(name.to_string(), values);
    }
    Ok(secrets)
}

/// The environment and masks of a run from the Secrets fetched (pure).
pub(crate) fn resolve(spec: &TaskRunSpec, secrets: Secrets) -> Result<Delivery, Undeliverable> {
    let value_of = |name: &str, key: &str, field: &str| -> Result<&Vec<u8>, Undeliverable> {
        let secret = secrets.get(name).ok_or_else(|| {
            Undeliverable::new(
                reason::SECRET_NOT_FOUND,
                format!("Secret {name:?} (referenced by {field}) was not read"),
            )
        })?;
        secret.get(key).ok_or_else(|| {
            Undeliverable::new(
                reason::SECRET_KEY_NOT_FOUND,
                format!("Secret {name:?} has no key {key:?} (referenced by {field})"),
            )
        })
    };
    let text = |bytes: &Vec<u8>, what: String| {
        String::from_utf8(bytes.clone()).map_err(|_| {
            Undeliverable::new(
                reason::SECRET_ERROR,
                format!("{what} is not UTF-8 text and cannot be an environment variable"),
            )
        })
    };
    let mut env = Vec::new();
    for from in &spec.env_from {
        let name = &from.secret_ref.name;
        let keys = secrets.get(name).into_iter().flatten();
        // Keys that are not variable names are skipped, as Kubernetes does.
        for (key, value) in keys.filter(|(k, _)| validate_env_var_name(k).is_ok()) {
            env.push((
                key.clone(),
                text(value, format!("Secret {name:?} key {key:?}"))?,
            ));
        }
    }
    for (var, reference) in &spec.env.secret_refs {
        let field = format!("spec.env[{var:?}]");
        let value = value_of(&reference.name, &reference.key, &field)?;
        env.push((var.clone(), text(value, field)?));
    }
    let masks = Masks::new(
        secrets
            .values()
            .flat_map(|keys| keys.values())
            .map(Vec::as_slice),
    );
    Ok(Delivery {
        env,
        secrets,
        masks,
    })
}

/// Writes `secretFiles` under `run_dir` (directories 0700, files 0600);
/// returns the files written, for [`remove_files`].
pub(crate) fn write_files(
    run_dir: &Path,
    spec: &TaskRunSpec,
    secrets: &Secrets,
) -> Result<Vec<PathBuf>, Undeliverable> {
    let mut written = Vec::new();
    let error = |message: String| Undeliverable::new(reason::SECRET_ERROR, message);
    for (i, file) in spec.secret_files.iter().enumerate() {
        let field = format!("spec.secretFiles[{i}]");
        let relative = Path::new(&file.path);
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(error(format!(
                "{field}.path must stay inside the run directory"
            )));
        }
        let Some(keys) = secrets.get(&file.secret_name) else {
            return Err(Undeliverable::new(
                reason::SECRET_NOT_FOUND,
                format!("Secret {:?} ({field}) was not read", file.secret_name),
            ));
        };
        let dir = run_dir.join(relative);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| error(format!("{field}: cannot create {}: {e}", dir.display())))?;
        for (key, value) in keys {
            let path = dir.join(key);
            let write = || -> std::io::Result<()> {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)?;
                f.write_all(value)
            };
            write().map_err(|e| error(format!("{field}: cannot write {}: {e}", path.display())))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Removes the files [`write_files`] wrote (best effort, logged).
pub(crate) fn remove_files(files: &[PathBuf]) {
    for path in files {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove the secret file {}: {e}", path.display());
        }
    }
}

/// Key -> value maps as the tests write them.
#[cfg(test)]
fn secrets_of(pairs: &[(&str, &[(&str, &str)])]) -> Secrets {
    pairs
        .iter()
        .map(|(name, keys)| {
            let keys: std::collections::BTreeMap<String, Vec<u8>> = keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            (name.to_string(), keys)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> TaskRunSpec {
        serde_json::from_value(value).expect("spec")
    }

    #[test]
    fn env_and_env_from_come_from_the_secrets() {
        let spec = spec(json!({"run": {"shell": "true"},
            "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
            "envFrom": [{"secretRef": {"name": "api"}}]}));
        let secrets = secrets_of(&[
            ("db", &[("password", "hunter2")]),
            ("api", &[("TOKEN", "t0k"), ("not-a-var", "x")]),
        ]);
        let delivery = resolve(&spec, secrets).expect("delivered");
        assert_eq!(
            delivery.env,
            [
                ("TOKEN".to_string(), "t0k".to_string()),
                ("PW".to_string(), "hunter2".to_string())
            ]
        );
        assert_eq!(delivery.masks.text("hunter2 t0k x"), "*** *** ***");
    }

    #[test]
    fn a_missing_key_names_the_secret_the_key_and_the_field() {
        let spec = spec(json!({"run": {"shell": "true"},
            "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pass"}}}]}));
        let err = resolve(&spec, secrets_of(&[("db", &[("password", "x")])])).expect_err("missing");
        assert_eq!(err.reason, reason::SECRET_KEY_NOT_FOUND);
        assert_eq!(
            err.message,
            "Secret \"db\" has no key \"pass\" (referenced by spec.env[\"PW\"])"
        );
    }

    #[test]
    fn files_are_private_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = spec(json!({"run": {"shell": "true"},
            "secretFiles": [{"secretName": "db", "path": "creds/db"}]}));
        let secrets = secrets_of(&[("db", &[("password", "hunter2")])]);
        let files = write_files(dir.path(), &spec, &secrets).expect("written");
        let path = dir.path().join("creds/db/password");
        assert_eq!(files, std::slice::from_ref(&path));
        assert_eq!(std::fs::read(&path).expect("read"), b"hunter2");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        remove_files(&files);
        assert!(!path.exists());
        let climbing = spec_with_path("../x");
        assert!(write_files(dir.path(), &climbing, &secrets).is_err());
    }

    fn spec_with_path(path: &str) -> TaskRunSpec {
        spec(json!({"run": {"shell": "true"},
            "secretFiles": [{"secretName": "db", "path": path}]}))
    }
}
