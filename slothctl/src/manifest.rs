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
pub const STDIN: &str = "<stdin>";

/// The largest manifest (a file or stdin) slothctl reads: far above any real
/// one (the server stores objects of at most 1 MiB), far below what would
/// strain memory.
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

/// How much the YAML documents of one manifest may decode to: string bytes
/// plus [`YAML_NODE_COST`] per value. An alias (`*a`) repeats the whole node
/// its anchor names, so without a bound a few kilobytes of aliases decode to
/// gigabytes ("billion laughs").
pub const MAX_YAML_EXPANSION: usize = 64 * 1024 * 1024;

/// The deepest nesting of YAML flow collections (`[`, `{`) a manifest may
/// have, counting every bracket in the text. libyaml's scanner does work
/// proportional to the open flow levels for every token, so 100k nested
/// `{a: ` took half a minute to refuse; serde_norway refuses more than 128
/// levels of nesting anyway, so this only turns that refusal into a quick one.
pub const MAX_YAML_FLOW_DEPTH: usize = 256;

/// What one decoded value counts against [`MAX_YAML_EXPANSION`], roughly
/// the memory a `serde_json::Value` takes.
const YAML_NODE_COST: usize = 32;

/// One object read from a manifest, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
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
    pub fn label(&self) -> String {
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
pub type Params = BTreeMap<String, String>;

/// Reads every path and resolves every document (see [`resolve`]); returns
/// the objects, or every problem found across all files and documents.
/// `params` override the declared `spec.params` of Workflows, and are the
/// `values` of Lua workflow files.
pub fn load(
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

/// Reads every path (`-` is stdin) into documents, in order: the documents
/// of every readable file, and one message per problem (all of them, not
/// just the first).
fn read_all(
    paths: &[String],
    stdin: &mut dyn Read,
    params: &Params,
) -> (Vec<Document>, Vec<String>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let mut stdin_used = false;
    for path in paths {
        let result = if path == "-" {
            if std::mem::replace(&mut stdin_used, true) {
                Err(vec![
                    "error: stdin (-f -) can be read only once".to_string(),
                ])
            } else {
                read_stdin(stdin, params)
            }
        } else {
            read_path(Path::new(path), path, params)
        };
        match result {
            Ok(mut found) => {
                for doc in &mut found {
                    override_params(&mut doc.value, params);
                }
                docs.extend(found);
            }
            Err(found) => errors.extend(found),
        }
    }
    (docs, errors)
}

fn read_stdin(stdin: &mut dyn Read, params: &Params) -> Result<Vec<Document>, Vec<String>> {
    let text = read_limited(stdin, STDIN).map_err(|e| vec![e])?;
    if looks_like_lua(&text) {
        // Modules beside it are looked up in the current directory.
        return parse_lua_in(STDIN, &text, params, Some(Path::new("."))).map_err(|e| vec![e]);
    }
    let json = text.trim_start().starts_with(['{', '[']);
    parse(STDIN, &text, json).map_err(|e| vec![e])
}

/// True when stdin holds a Lua workflow file rather than YAML or JSON,
/// judged by its first line that says anything (YAML's `#` comments and a
/// `#!` line skipped): a Lua comment (`--` but not YAML's `---`), a
/// statement a manifest never starts with, or an assignment or call
/// (`name = ...`, `name(...)`, where YAML would have `name:`). Only the
/// first line counts: a YAML block scalar may hold Lua further down.
pub fn looks_like_lua(text: &str) -> bool {
    const STARTS: &[&str] = &[
        "local ",
        "function ",
        "return ",
        "require(",
        "require ",
        "import(",
        "TaskDefinitions",
        "workflow.define",
        "task(",
    ];
    let Some(line) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    else {
        return false;
    };
    if line.starts_with("--") {
        return !line.starts_with("---");
    }
    if STARTS.iter().any(|s| line.starts_with(s)) {
        return true;
    }
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(line.len());
    let rest = line[name_end..].trim_start();
    name_end > 0 && ((rest.starts_with('=') && !rest.starts_with("==")) || rest.starts_with('('))
}

/// Sets the Workflow params `params` names that the object declares.
fn override_params(value: &mut Value, params: &Params) {
    if params.is_empty() || value.get("kind").and_then(Value::as_str) != Some("Workflow") {
        return;
    }
    if let Some(declared) = value
        .get_mut("spec")
        .and_then(|s| s.get_mut("params"))
        .and_then(Value::as_object_mut)
    {
        for (key, v) in params {
            if let Some(slot) = declared.get_mut(key) {
                *slot = Value::String(v.clone());
            }
        }
    }
}

/// A file, or a directory's `*.yaml`, `*.yml`, `*.json` and `*.lua` files
/// in name order.
fn read_path(path: &Path, shown: &str, params: &Params) -> Result<Vec<Document>, Vec<String>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        vec![if e.kind() == std::io::ErrorKind::NotFound {
            format!("error: the path {shown:?} does not exist")
        } else {
            format!("error: cannot read {shown}: {e}")
        }]
    })?;
    if !meta.is_dir() {
        return read_file(path, shown, params).map_err(|e| vec![e]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| vec![format!("error: cannot read directory {shown}: {e}")])?;
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| vec![format!("error: cannot read directory {shown}: {e}")])?;
        let file = entry.path();
        let manifest = matches!(
            extension(&file).as_deref(),
            Some("yaml" | "yml" | "json" | "lua")
        );
        if manifest && !file.is_dir() {
            files.push(file);
        }
    }
    files.sort();
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let shown = file.display().to_string();
        match read_file(&file, &shown, params) {
            Ok(found) => docs.extend(found),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(errors)
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

fn read_file(path: &Path, shown: &str, params: &Params) -> Result<Vec<Document>, String> {
    let ext = extension(path);
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("error: cannot read {shown}: {e}"))?;
    let text = read_limited(&mut file, shown)?;
    if ext.as_deref() == Some("lua") {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        return parse_lua_in(shown, &text, params, Some(dir));
    }
    parse(shown, &text, ext.as_deref() == Some("json"))
}

/// Reads all of `reader` as UTF-8, refusing more than [`MAX_MANIFEST_BYTES`]
/// (without reading past the limit).
fn read_limited(reader: &mut dyn Read, shown: &str) -> Result<String, String> {
    let mut text = String::new();
    reader
        .take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("error: cannot read {shown}: {e}"))?;
    check_size(shown, text.len())?;
    Ok(text)
}

fn check_size(source: &str, len: usize) -> Result<(), String> {
    if len > MAX_MANIFEST_BYTES {
        return Err(format!(
            "error: {source}: the manifest is larger than the limit of {} MiB",
            MAX_MANIFEST_BYTES / (1024 * 1024)
        ));
    }
    Ok(())
}

/// Evaluates a Lua workflow file: one document per Workflow, numbered in
/// the order the file defines them. What the file printed and the warnings
/// (ignored hooks) go to stderr.
#[cfg(test)]
pub fn parse_lua(source: &str, text: &str, params: &Params) -> Result<Vec<Document>, String> {
    parse_lua_in(source, text, params, None)
}

/// [`parse_lua`] for a file in `dir`: the Lua files beside it that it
/// `require`s or `import`s are read from there and bundled.
pub fn parse_lua_in(
    source: &str,
    text: &str,
    params: &Params,
    dir: Option<&Path>,
) -> Result<Vec<Document>, String> {
    let evaluation = sloth_sdk::lua::evaluate_beside(text, source, params, dir)
        .map_err(|e| format!("error: {e}"))?;
    for line in &evaluation.printed {
        eprintln!("{line}");
    }
    for warning in &evaluation.warnings {
        eprintln!("warning: {warning}");
    }
    if evaluation.workflows.is_empty() {
        return Err(format!(
            "error: {source}: the file defines no workflow (use workflow.define(...) or \
             TaskDefinitions = {{...}})"
        ));
    }
    evaluation
        .workflows
        .iter()
        .enumerate()
        .map(|(i, workflow)| {
            let mut value = evaluation
                .object(workflow)
                .map_err(|e| format!("error: {source}: cannot encode workflow: {e}"))?;
            if let Some(dir) = evaluation.workspaces.get(workflow.name()) {
                request_workspace(&mut value, source, dir);
            }
            Ok(Document {
                source: source.to_string(),
                index: i + 1,
                item: None,
                value,
            })
        })
        .collect()
}

/// Records a Lua file's `workspace = DIR` (relative to the file) for
/// apply, which packs and uploads it.
fn request_workspace(value: &mut Value, source: &str, dir: &str) {
    let base = std::path::Path::new(source)
        .parent()
        .filter(|_| source != "<stdin>")
        .unwrap_or(std::path::Path::new(""));
    let full = base.join(dir);
    let shown = if full.as_os_str().is_empty() {
        ".".to_string()
    } else {
        full.display().to_string()
    };
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(
                sloth_sdk::well_known::WORKSPACE_DIR_ANNOTATION.to_string(),
                Value::String(shown),
            );
        }
    }
}

/// Parses one file's text: JSON (one or more values) or YAML documents.
pub fn parse(source: &str, text: &str, json: bool) -> Result<Vec<Document>, String> {
    check_size(source, text.len())?;
    let values = if json {
        parse_json(source, text)?
    } else {
        parse_yaml(source, text)?
    };
    let mut docs = Vec::new();
    for (index, value) in values {
        let doc = |item, value| Document {
            source: source.to_string(),
            index,
            item,
            value,
        };
        match value {
            Value::Null => {}
            Value::Array(items) => {
                docs.extend(items.into_iter().enumerate().map(|(i, v)| doc(Some(i), v)));
            }
            Value::Object(ref map)
                if map.get("kind").and_then(Value::as_str) == Some("List")
                    && map.get("items").is_some_and(Value::is_array) =>
            {
                let items = match map.get("items") {
                    Some(Value::Array(items)) => items.clone(),
                    _ => Vec::new(),
                };
                docs.extend(items.into_iter().enumerate().map(|(i, v)| doc(Some(i), v)));
            }
            value => docs.push(doc(None, value)),
        }
    }
    Ok(docs)
}

/// `(1-based index, value)` per YAML document; empty documents are Null.
fn parse_yaml(source: &str, text: &str) -> Result<Vec<(usize, Value)>, String> {
    check_flow_depth(source, text)?;
    let mut values = Vec::new();
    let mut budget = MAX_YAML_EXPANSION;
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        match BudgetedValue(&mut budget).deserialize(document) {
            Ok(value) => values.push((i + 1, value)),
            Err(e) => {
                let at = match e.location() {
                    Some(l) if !e.to_string().contains("line ") => {
                        format!(" at line {} column {}", l.line(), l.column())
                    }
                    _ => String::new(),
                };
                return Err(format!(
                    "error: {source} (document {}): invalid YAML: {e}{at}",
                    i + 1
                ));
            }
        }
    }
    Ok(values)
}

/// Refuses YAML whose brackets open more than [`MAX_YAML_FLOW_DEPTH`]
/// levels, before libyaml scans it.
fn check_flow_depth(source: &str, text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for (at, byte) in text.bytes().enumerate() {
        match byte {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => continue,
        }
        if depth > MAX_YAML_FLOW_DEPTH {
            let line = text.as_bytes()[..at]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(format!(
                "error: {source}: invalid YAML: more than {MAX_YAML_FLOW_DEPTH} nested `[` or \
                 `{{` (at line {line})"
            ));
        }
    }
    Ok(())
}

/// Decodes a YAML document into JSON as `serde_json::Value`'s own
/// `Deserialize` does, but charging every value (aliases expanded, so once
/// per repetition) to a budget shared by the documents of a file, and
/// failing, before allocating more, once the budget is spent. serde_norway
/// bounds nesting (128 levels) and alias jumps (100 per event), not the size
/// of what aliases expand to.
struct BudgetedValue<'a>(&'a mut usize);

impl BudgetedValue<'_> {
    fn charge<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        match self.0.checked_sub(YAML_NODE_COST.saturating_add(bytes)) {
            Some(left) => {
                *self.0 = left;
                Ok(())
            }
            None => Err(E::custom(format!(
                "the manifest expands to more than {} MiB of data (too many YAML aliases?)",
                MAX_YAML_EXPANSION / (1024 * 1024)
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for BudgetedValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BudgetedValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(mut self, v: i128) -> Result<Value, E> {
        self.charge(0)?;
        <Number as serde::Deserialize>::deserialize(de::value::I128Deserializer::<E>::new(v))
            .map(Value::Number)
    }

    fn visit_u128<E: de::Error>(mut self, v: u128) -> Result<Value, E> {
        self.charge(0)?;
        <Number as serde::Deserialize>::deserialize(de::value::U128Deserializer::<E>::new(v))
            .map(Value::Number)
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(mut self, v: String) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_none<E: de::Error>(mut self) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(BudgetedValue(&mut *self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(BudgetedKey(&mut *self.0))? {
            let value = map.next_value_seed(BudgetedValue(&mut *self.0))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// A mapping key: a string (as `serde_json::Value` reads keys), charged.
struct BudgetedKey<'a>(&'a mut usize);

impl<'de> DeserializeSeed<'de> for BudgetedKey<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for BudgetedKey<'_> {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        BudgetedValue(self.0).charge(v.len())?;
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        BudgetedValue(self.0).charge(v.len())?;
        Ok(v)
    }
}

/// `(1-based index, value)` per JSON value in the text.
fn parse_json(source: &str, text: &str) -> Result<Vec<(usize, Value)>, String> {
    let mut values = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let value = value
            .map_err(|e| format!("error: {source} (document {}): invalid JSON: {e}", i + 1))?;
        values.push((i + 1, value));
    }
    Ok(values)
}

/// A document whose kind is known and whose namespace is settled.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub doc: Document,
    pub kind: &'static KindInfo,
    /// Empty when the server is to generate it (`generateName`).
    pub name: String,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    /// The object to send: canonical JSON when admitted.
    pub value: Value,
}

/// What checks [`resolve`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Decode and validate the whole object, as the server would (apply).
    Admit,
    /// Only kind, name and namespace (delete).
    Identity,
}

/// Settles a document's kind and namespace (`namespace_flag` when given,
/// else `default`, for namespaced kinds; none for cluster-scoped ones) and
/// runs `check`. The error message names the document and the field.
pub fn resolve(
    doc: Document,
    namespace_flag: Option<&str>,
    check: Check,
) -> Result<Resolved, String> {
    let fail = |doc: &Document, message: String| format!("error: {}: {message}", doc.label());
    let Value::Object(_) = &doc.value else {
        let found = match &doc.value {
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            _ => "nothing",
        };
        return Err(fail(
            &doc,
            format!("expected an object with apiVersion, kind, metadata and spec, found {found}"),
        ));
    };
    let kind_name = match doc.value.get("kind") {
        None | Some(Value::Null) => return Err(fail(&doc, "kind: is required".into())),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(fail(&doc, "kind: must be a non-empty string".into())),
    };
    let kind = lookup(&kind_name).ok_or_else(|| {
        fail(
            &doc,
            format!(
                "kind: unknown kind {kind_name:?} (known: {})",
                known_kinds()
            ),
        )
    })?;
    let mut value = doc.value.clone();
    if !value.get("metadata").is_some_and(Value::is_object) {
        if value.get("metadata").is_some_and(|m| !m.is_null()) {
            return Err(fail(&doc, "metadata: must be an object".into()));
        }
        value["metadata"] = Value::Object(Default::default());
    }
    let meta_text = |value: &Value, field: &str| -> Result<String, String> {
        match value["metadata"].get(field) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(fail(&doc, format!("metadata.{field}: must be a string"))),
        }
    };
    let name = meta_text(&value, "name")?;
    let generate_name = meta_text(&value, "generateName")?;
    if name.is_empty() && (generate_name.is_empty() || check == Check::Identity) {
        return Err(fail(&doc, "metadata.name: is required".into()));
    }
    let written = meta_text(&value, "namespace")?;
    let namespace = if kind.namespaced {
        match namespace_flag {
            Some(flag) if !written.is_empty() && written != flag => {
                return Err(fail(
                    &doc,
                    format!(
                        "metadata.namespace: the object's namespace {written:?} does not match \
                         the namespace {flag:?} given with --namespace"
                    ),
                ));
            }
            _ if !written.is_empty() => written,
            Some(flag) => flag.to_string(),
            None => DEFAULT_NAMESPACE.to_string(),
        }
    } else {
        String::new()
    };
    if let Some(meta) = value["metadata"].as_object_mut() {
        if namespace.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        }
    }
    if check == Check::Admit {
        value = (kind.admit)(value).map_err(|errors| fail(&doc, errors.to_string()))?;
    }
    Ok(Resolved {
        doc,
        kind,
        name,
        namespace,
        value,
    })
}

/// Resolves every document; on any failure returns one message per bad one.
pub fn resolve_all(
    docs: Vec<Document>,
    namespace_flag: Option<&str>,
    check: Check,
) -> Result<Vec<Resolved>, Vec<String>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for doc in docs {
        match resolve(doc, namespace_flag, check) {
            Ok(r) => ok.push(r),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
#[path = "manifest_fuzz_tests.rs"]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_on_stdin_is_told_from_yaml_and_json() {
        assert!(looks_like_lua("-- pipeline\nworkflow.define('w', {})"));
        assert!(looks_like_lua("local x = 1\n"));
        assert!(looks_like_lua("TaskDefinitions = {}"));
        assert!(!looks_like_lua(
            "---\napiVersion: sloth.dev/v1\nkind: Workflow\n"
        ));
        assert!(!looks_like_lua("{\"kind\": \"Workflow\"}"));
        assert!(!looks_like_lua("local: x\nfunction: y\n"));
        assert!(looks_like_lua("#!/usr/bin/env sloth\nModern = { x = 1 }\n"));
        assert!(looks_like_lua("\nprint('hi')\n"));
        // Lua inside a YAML block scalar is still YAML.
        assert!(!looks_like_lua(
            "\napiVersion: sloth.dev/v1\nkind: TaskRun\nspec:\n  run:\n    lua:\n      script: |\n        local pw = 1\n        -- a comment\n"
        ));
        let docs = read_stdin(
            &mut "workflow.define('w', { tasks = { task('a'):command('true') } })".as_bytes(),
            &Params::new(),
        )
        .expect("lua");
        assert_eq!(docs[0].value["kind"], "Workflow");
    }

    const TASKRUN: &str = "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: a\nspec:\n  run:\n    shell: 'true'\n";

    fn read_paths(paths: &[String], stdin: &mut dyn Read) -> Result<Vec<Document>, Vec<String>> {
        let (docs, errors) = read_all(paths, stdin, &Params::new());
        if errors.is_empty() {
            Ok(docs)
        } else {
            Err(errors)
        }
    }

    #[test]
    fn yaml_documents_are_numbered_as_they_appear_and_empty_ones_skipped() {
        let text = format!(
            "{TASKRUN}---\n# only a comment\n---\n{}",
            TASKRUN.replace("name: a", "name: b")
        );
        let docs = parse("x.yaml", &text, false).expect("parse");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].index, 1);
        assert_eq!(docs[1].index, 3);
        assert_eq!(docs[1].value["metadata"]["name"], "b");
        assert_eq!(docs[1].label(), r#"x.yaml (document 3, TaskRun "b")"#);
        assert!(parse("e.yaml", "", false).expect("empty").is_empty());
        assert!(
            parse("e.yaml", "---\n---\n", false)
                .expect("seps")
                .is_empty()
        );
    }

    #[test]
    fn malformed_yaml_names_file_document_and_line() {
        let text = format!("{TASKRUN}---\nkind: TaskRun\nmetadata:\n  name: [unclosed\n");
        let e = parse("bad.yaml", &text, false).expect_err("bad yaml");
        assert!(
            e.starts_with("error: bad.yaml (document 2): invalid YAML"),
            "{e}"
        );
        assert!(e.contains("line 11"), "{e}");
        let e = parse("bad.yaml", "a: b: c\n", false).expect_err("bad yaml");
        assert!(e.contains("line 1 column"), "{e}");
    }

    #[test]
    fn json_values_and_lists_are_expanded() {
        let one = serde_json::json!({"apiVersion": "sloth.dev/v1", "kind": "Lock", "metadata": {"name": "l"}, "spec": {}});
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [one, one]});
        let text = format!("{one}\n{list}");
        let docs = parse("x.json", &text, true).expect("parse");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[2].index, 2);
        assert_eq!(docs[2].item, Some(1));
        assert_eq!(
            docs[2].label(),
            r#"x.json (document 2, items[1], Lock "l")"#
        );
        let e = parse("x.json", "{\n  \"a\": ,\n}", true).expect_err("bad json");
        assert!(
            e.contains("x.json (document 1): invalid JSON") && e.contains("line 2"),
            "{e}"
        );
    }

    #[test]
    fn invalid_document_is_named_by_index_and_field() {
        let bad = TASKRUN
            .replace("name: a", "name: b")
            .replace("shell: 'true'", "shell: x\n  comand: y");
        let text = format!("{TASKRUN}---\n{bad}");
        let docs = parse("w.yaml", &text, false).expect("parse");
        let errors = resolve_all(docs, None, Check::Admit).expect_err("invalid");
        assert_eq!(errors.len(), 1);
        let e = &errors[0];
        assert!(
            e.starts_with(r#"error: w.yaml (document 2, TaskRun "b"): spec"#),
            "{e}"
        );
        assert!(e.contains("comand"), "{e}");
    }

    #[test]
    fn unknown_and_missing_kinds_are_named() {
        let docs = parse(
            "k.yaml",
            "kind: Foo\nmetadata: {name: x}\n---\nmetadata: {name: y}\n",
            false,
        )
        .expect("parse");
        let errors = resolve_all(docs, None, Check::Admit).expect_err("bad kinds");
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].contains(r#"(document 1, Foo "x"): kind: unknown kind "Foo""#),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("(document 2): kind: is required"),
            "{errors:?}"
        );
    }

    #[test]
    fn namespaces_default_and_cluster_scoped_kinds_have_none() {
        let docs = parse("n.yaml", TASKRUN, false).expect("parse");
        let r = resolve(docs[0].clone(), None, Check::Admit).expect("ok");
        assert_eq!(r.namespace, "default");
        assert_eq!(r.value["metadata"]["namespace"], "default");
        let r = resolve(docs[0].clone(), Some("team"), Check::Admit).expect("ok");
        assert_eq!(r.namespace, "team");

        let mut pinned = docs[0].clone();
        pinned.value["metadata"]["namespace"] = "other".into();
        assert!(resolve(pinned.clone(), None, Check::Admit).is_ok());
        let e = resolve(pinned, Some("team"), Check::Admit).expect_err("mismatch");
        assert!(e.contains("metadata.namespace"), "{e}");

        let agent = "apiVersion: sloth.dev/v1\nkind: Agent\nmetadata: {name: a1, namespace: x}\nspec: {address: 'h:1'}\n";
        let docs = parse("a.yaml", agent, false).expect("parse");
        let r = resolve(docs[0].clone(), Some("team"), Check::Admit).expect("ok");
        assert_eq!(r.namespace, "");
        assert!(r.value["metadata"].get("namespace").is_none());
    }

    #[test]
    fn names_are_required_except_generate_name_on_apply() {
        let text = TASKRUN.replace("name: a", "generateName: a-");
        let docs = parse("g.yaml", &text, false).expect("parse");
        let r = resolve(docs[0].clone(), None, Check::Admit).expect("apply");
        assert!(r.name.is_empty());
        let e = resolve(docs[0].clone(), None, Check::Identity).expect_err("delete");
        assert!(e.contains("metadata.name: is required"), "{e}");
    }

    #[test]
    fn directories_read_manifest_and_lua_files_in_name_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write");
        };
        write("b.yaml", &TASKRUN.replace("name: a", "name: b"));
        write("a.yml", TASKRUN);
        write(
            "c.json",
            r#"{"apiVersion":"sloth.dev/v1","kind":"Lock","metadata":{"name":"c"},"spec":{}}"#,
        );
        write("notes.txt", "not a manifest");
        write(
            "wf.lua",
            "workflow.define('lua_wf'):tasks({ task('t'):command('true') })",
        );
        write("empty.lua.txt", "not read");
        let path = dir.path().display().to_string();
        let docs = read_paths(std::slice::from_ref(&path), &mut std::io::empty()).expect("read");
        let names: Vec<_> = docs
            .iter()
            .map(|d| d.value["metadata"]["name"].clone())
            .collect();
        assert_eq!(names, ["a", "b", "c", "lua-wf"]);
        assert!(docs[0].source.ends_with("a.yml"));
        assert_eq!(docs[3].value["kind"], "Workflow");

        write("none.lua", "local x = 1");
        let lua = dir.path().join("none.lua").display().to_string();
        let e = read_paths(std::slice::from_ref(&lua), &mut std::io::empty()).expect_err("lua");
        assert!(e[0].contains("defines no workflow"), "{e:?}");
        write("none.lua", "local x = 1\nlocal = 2\n");
        let e = read_paths(&[lua], &mut std::io::empty()).expect_err("lua");
        assert!(
            e[0].starts_with("error: ") && e[0].contains("none.lua:2:"),
            "{e:?}"
        );
        let e =
            read_paths(&["/no/such/file.yaml".into()], &mut std::io::empty()).expect_err("missing");
        assert!(e[0].contains("does not exist"), "{e:?}");
    }

    #[test]
    fn load_reports_problems_of_every_file_and_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad_yaml = dir.path().join("bad.yaml");
        std::fs::write(&bad_yaml, "kind: [\n").expect("write");
        let invalid = dir.path().join("invalid.yaml");
        std::fs::write(&invalid, format!("{TASKRUN}---\nkind: Nope\n")).expect("write");
        let paths = [bad_yaml, invalid].map(|p| p.display().to_string());
        let errors = load(
            &paths,
            &mut std::io::empty(),
            None,
            Check::Admit,
            &Params::new(),
        )
        .expect_err("bad");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("bad.yaml (document 1): invalid YAML"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("invalid.yaml (document 2, Nope)"),
            "{errors:?}"
        );
        let errors = load(
            &["-".into()],
            &mut "---\n".as_bytes(),
            None,
            Check::Admit,
            &Params::new(),
        )
        .expect_err("empty");
        assert_eq!(errors, ["error: no objects found in -"]);
    }

    #[test]
    fn params_override_declared_workflow_params_and_are_lua_values() {
        let params = Params::from([("env".to_string(), "prod".to_string())]);
        let yaml = "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata:\n  name: w\nspec:\n  params:\n    env: dev\n    n: '1'\n  tasks:\n  - name: a\n    run:\n      shell: echo $(params.env)\n";
        let mut docs = parse("w.yaml", yaml, false).expect("yaml");
        override_params(&mut docs[0].value, &params);
        assert_eq!(docs[0].value["spec"]["params"]["env"], "prod");
        assert_eq!(docs[0].value["spec"]["params"]["n"], "1");
        let docs = parse_lua(
            "p.lua",
            "workflow.define('w'):tasks({ task('a'):command('deploy ' .. values.env) })",
            &params,
        )
        .expect("lua");
        assert_eq!(
            docs[0].value["spec"]["tasks"][0]["run"]["shell"],
            "deploy prod"
        );
        assert_eq!(docs[0].value["spec"]["params"]["env"], "prod");
    }

    #[test]
    fn stdin_is_yaml_or_json() {
        let docs = read_paths(&["-".into()], &mut TASKRUN.as_bytes()).expect("yaml");
        assert_eq!(docs[0].source, STDIN);
        let json =
            r#"{"apiVersion":"sloth.dev/v1","kind":"Lock","metadata":{"name":"c"},"spec":{}}"#;
        let docs = read_paths(&["-".into()], &mut json.as_bytes()).expect("json");
        assert_eq!(docs[0].value["kind"], "Lock");
    }
}
