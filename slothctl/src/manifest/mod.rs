//! Reading manifests: files, directories and stdin holding YAML (several
//! documents separated by `---`) or JSON, and checking every document before
//! anything is sent. Errors name the file, the document index (1-based, as
//! documents appear in the file), the object and the field path. `.lua`
//! files are workflow files in the sloth-runner DSL, evaluated here into
//! Workflow objects (errors name the file and the Lua line).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use sloth_sdk::kinds::{KindInfo, known_kinds, lookup};
use sloth_sdk::meta::DEFAULT_NAMESPACE;

/// How stdin is named in messages.
pub(crate) const STDIN: &str = "<stdin>";

/// The largest manifest (a file or stdin) slothctl reads: far above any real
/// one (the server stores objects of at most 1 MiB), far below what would
/// strain memory.
pub(crate) const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

mod parse;
mod read;
mod resolve;

pub(crate) use parse::parse;
#[cfg(test)]
pub(crate) use read::parse_lua;
use read::read_all;
pub(crate) use resolve::{Check, Resolved, resolve, resolve_all};

/// One object read from a manifest, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Document {
    /// The path as the user gave it (joined for directory entries), or `<stdin>`.
    pub source: String,
    /// 1-based position of the document in its file, empty documents included.
    pub index: usize,
    /// Position within a `kind: List` document (or a JSON array), if any.
    pub item: Option<usize>,
    pub value: Value,
}

impl Document {
    /// `workflow.yaml (document 2, Workflow "build")`.
    pub(crate) fn label(&self) -> String {
        let mut label = format!("{} (document {}", self.source, self.index);
        if let Some(item) = self.item {
            label.push_str(&format!(", items[{item}]"));
        }
        if let Some(kind) = self.value.get("kind").and_then(Value::as_str) {
            label.push_str(&format!(", {kind}"));
            let meta = |field: &str| {
                self.value
                    .get("metadata")
                    .and_then(|m| m.get(field))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            if let Some(name) = meta("name") {
                label.push_str(&format!(" {name:?}"));
            } else if let Some(prefix) = meta("generateName") {
                label.push_str(&format!(" generateName {prefix:?}"));
            }
        }
        label.push(')');
        label
    }
}

/// `--param KEY=VALUE`s: the Lua global `values` and workflow params.
pub(crate) type Params = BTreeMap<String, String>;

/// Reads every path and resolves every document (see [`resolve()`]); returns
/// the objects, or every problem found across all files and documents.
/// `params` override the declared `spec.params` of Workflows, and are the
/// `values` of Lua workflow files.
pub(crate) fn load(
    paths: &[String],
    stdin: &mut dyn Read,
    namespace_flag: Option<&str>,
    check: Check,
    params: &Params,
) -> Result<Vec<Resolved>, Vec<String>> {
    let (docs, mut errors) = read_all(paths, stdin, params);
    let objects = match resolve_all(docs, namespace_flag, check) {
        Ok(objects) => objects,
        Err(more) => {
            errors.extend(more);
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    if objects.is_empty() {
        return Err(vec![format!(
            "error: no objects found in {}",
            paths.join(", ")
        )]);
    }
    Ok(objects)
}

#[cfg(test)]
mod tests;
