//! Reading manifest files, directories and stdin (size-limited) into
//! documents, including Lua workflow files evaluated into Workflows.

use super::*;

/// Reads every path (`-` is stdin) into documents, in order: the documents
/// of every readable file, and one message per problem (all of them, not
/// just the first).
pub(super) fn read_all(
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

pub(super) fn read_stdin(
    stdin: &mut dyn Read,
    params: &Params,
) -> Result<Vec<Document>, Vec<String>> {
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
pub(super) fn looks_like_lua(text: &str) -> bool {
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
pub(super) fn override_params(value: &mut Value, params: &Params) {
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
pub(super) fn read_path(
    path: &Path,
    shown: &str,
    params: &Params,
) -> Result<Vec<Document>, Vec<String>> {
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

pub(super) fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

pub(super) fn read_file(
    path: &Path,
    shown: &str,
    params: &Params,
) -> Result<Vec<Document>, String> {
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
pub(super) fn read_limited(reader: &mut dyn Read, shown: &str) -> Result<String, String> {
    let mut text = String::new();
    reader
        .take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("error: cannot read {shown}: {e}"))?;
    check_size(shown, text.len())?;
    Ok(text)
}

pub(super) fn check_size(source: &str, len: usize) -> Result<(), String> {
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
pub(crate) fn parse_lua(
    source: &str,
    text: &str,
    params: &Params,
) -> Result<Vec<Document>, String> {
    parse_lua_in(source, text, params, None)
}

/// Evaluates a Lua workflow file in `dir` (one document per Workflow, in
/// the order the file defines them): the Lua files beside it that it
/// `require`s or `import`s are read from there and bundled.
pub(super) fn parse_lua_in(
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
pub(super) fn request_workspace(value: &mut Value, source: &str, dir: &str) {
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
