//! Lua files beside a workflow file: `require("x")` and upstream's
//! `import("x.lua")` load `x.lua` or `x/init.lua` relative to the workflow
//! file. slothctl reads them from disk and bundles every one the file uses
//! into the Workflow (`run.lua.modules`, path -> source), so the agents
//! evaluate the same code from the bundle and never read their own disk.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use mlua::{Lua, MultiValue, Table, Value};

use super::AGENT_MODULES;

/// The most bytes of module source one workflow file may bundle: every
/// function task carries the bundle, and an object is at most 1 MiB.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;
/// The most module files one workflow file may bundle.
pub const MAX_BUNDLE_FILES: usize = 64;

/// Module sources by path relative to the workflow file (`lib/init.lua`).
pub type Bundle = BTreeMap<String, String>;

/// Where module sources come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// The workflow file's directory (slothctl); what is read is recorded.
    Dir(PathBuf),
    /// The modules bundled into the Workflow (the agent).
    Bundle(Bundle),
}

/// What the modules read so far: path -> source.
pub type Recorded = Rc<RefCell<Bundle>>;

/// The files `require(name)` may be, in order.
pub fn require_candidates(name: &str) -> Vec<String> {
    let base = name.replace('.', "/");
    vec![format!("{base}.lua"), format!("{base}/init.lua")]
}

/// The files `import(path)` may be, in order.
pub fn import_candidates(path: &str) -> Vec<String> {
    let path = path.trim_start_matches("./").to_string();
    if path.ends_with(".lua") {
        vec![path]
    } else {
        vec![format!("{path}.lua"), format!("{path}/init.lua"), path]
    }
}

/// A path that stays beside the workflow file: relative, no `..`.
fn is_beside(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Reads the first candidate that exists: its path and source.
fn find(source: &Source, recorded: &Recorded, candidates: &[String]) -> Option<(String, String)> {
    for candidate in candidates.iter().filter(|c| is_beside(c)) {
        if let Some(text) = recorded.borrow().get(candidate) {
            return Some((candidate.clone(), text.clone()));
        }
        let text = match source {
            Source::Dir(dir) => std::fs::read_to_string(dir.join(candidate)).ok(),
            Source::Bundle(bundle) => bundle.get(candidate).cloned(),
        };
        if let Some(text) = text {
            return Some((candidate.clone(), text));
        }
    }
    None
}

/// Records `path` in the bundle, refusing one that grows past the bounds.
fn record(recorded: &Recorded, path: &str, text: &str) -> Result<(), String> {
    let mut bundle = recorded.borrow_mut();
    if bundle.contains_key(path) {
        return Ok(());
    }
    let bytes: usize = bundle.values().map(String::len).sum::<usize>() + text.len();
    if bytes > MAX_BUNDLE_BYTES || bundle.len() >= MAX_BUNDLE_FILES {
        return Err(format!(
            "the modules beside the workflow file are too large to bundle (at most \
             {MAX_BUNDLE_FILES} files and {} KiB; {path} would make {} KiB)",
            MAX_BUNDLE_BYTES / 1024,
            bytes / 1024
        ));
    }
    bundle.insert(path.to_string(), text.to_string());
    Ok(())
}

/// Wraps the global `require` and adds `import`: a name of one of the
/// agent's modules goes to the previous `require`; another is looked up as
/// a file beside the workflow file, run once, and its result cached.
/// Returns what was read.
pub fn install(lua: &Lua, source: Source) -> mlua::Result<Recorded> {
    let recorded: Recorded = Rc::default();
    let globals = lua.globals();
    let previous: Option<mlua::Function> = globals.get("require")?;
    let loaded: Table = lua.create_table()?;
    let load = {
        let recorded = recorded.clone();
        let loaded = loaded.clone();
        move |lua: &Lua, what: &str, shown: String, candidates: Vec<String>| {
            let Some((path, text)) = find(&source, &recorded, &candidates) else {
                return Ok(None);
            };
            if let Some(value) = loaded.get::<Option<Value>>(path.as_str())? {
                return Ok(Some(value));
            }
            record(&recorded, &path, &text).map_err(mlua::Error::runtime)?;
            let values: MultiValue = lua
                .load(text)
                .set_name(format!("={path}"))
                .set_mode(mlua::ChunkMode::Text)
                .call(shown)
                .map_err(|e| mlua::Error::runtime(format!("{what}: {}", super::lua_message(&e))))?;
            let value = match values.into_iter().next() {
                None | Some(Value::Nil) => Value::Boolean(true),
                Some(v) => v,
            };
            loaded.set(path.as_str(), value.clone())?;
            Ok(Some(value))
        }
    };
    let load = Rc::new(load);
    let for_require = load.clone();
    let require = move |lua: &Lua, name: &str| -> mlua::Result<Value> {
        if let Some(value) = already_loaded(lua, name)? {
            return Ok(value);
        }
        if AGENT_MODULES.contains(&name) {
            return match &previous {
                Some(f) => f.call::<Value>(name),
                None => Err(not_found("require", name, &[])),
            };
        }
        // Only files beside the workflow file: never the agent's disk.
        let candidates = require_candidates(name);
        let what = format!("require(\"{name}\")");
        for_require(lua, &what, name.to_string(), candidates.clone())?
            .ok_or_else(|| not_found("require", name, &candidates))
    };
    globals.set(
        "require",
        lua.create_function(move |lua, name: String| located(lua, require(lua, &name)))?,
    )?;
    globals.set(
        "import",
        lua.create_function(move |lua, path: String| {
            let candidates = import_candidates(&path);
            let what = format!("import(\"{path}\")");
            let found = load(lua, &what, path.clone(), candidates.clone())
                .and_then(|v| v.ok_or_else(|| not_found("import", &path, &candidates)));
            located(lua, found)
        })?,
    )?;
    Ok(recorded)
}

/// What `package.loaded[name]` holds (the standard libraries on the
/// agent), when there is a `package` table and it holds something.
fn already_loaded(lua: &Lua, name: &str) -> mlua::Result<Option<Value>> {
    let Some(package) = lua.globals().get::<Option<Table>>("package")? else {
        return Ok(None);
    };
    let Some(loaded) = package.get::<Option<Table>>("loaded")? else {
        return Ok(None);
    };
    Ok(Some(loaded.get::<Value>(name)?).filter(|v| !v.is_nil()))
}

fn not_found(func: &str, name: &str, candidates: &[String]) -> mlua::Error {
    mlua::Error::runtime(format!(
        "{func}: module '{name}' not found beside the workflow file (tried {})",
        candidates.join(", ")
    ))
}

/// `error` with the position (`file:line: `) of the Lua code that called
/// `require`/`import` in front, so the message says where.
fn located(lua: &Lua, result: mlua::Result<Value>) -> mlua::Result<Value> {
    result.map_err(|e| {
        let at = lua
            .inspect_stack(1, |d| {
                let source = d.source().short_src.map(|s| s.to_string());
                source.zip(d.current_line())
            })
            .flatten()
            .map_or(String::new(), |(src, line)| format!("{src}:{line}: "));
        mlua::Error::runtime(format!("{at}{}", super::lua_message(&e)))
    })
}

/// The modules `source` names with a literal `require("x")`, `require "x"`
/// or `import("x")`, so that those called only inside task functions (run
/// on the agent) are bundled too.
pub fn named_in(source: &str) -> Vec<(bool, String)> {
    let mut found = Vec::new();
    for (word, is_import) in [("require", false), ("import", true)] {
        let mut rest = source;
        while let Some(at) = rest.find(word) {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + word.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == ':') {
                continue;
            }
            let after = rest.trim_start();
            let after = after.strip_prefix('(').unwrap_or(after).trim_start();
            let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                continue;
            };
            if let Some(end) = after[1..].find(quote) {
                found.push((is_import, after[1..1 + end].to_string()));
            }
        }
    }
    found
}

/// Adds to `recorded` every module named (transitively) by a literal
/// `require`/`import` in `source` that exists beside the workflow file.
pub fn bundle_named(dir: &Path, source: &str, recorded: &Recorded) -> Result<(), String> {
    let mut queue = vec![source.to_string()];
    let from = Source::Dir(dir.to_path_buf());
    let mut steps = 0;
    while let Some(text) = queue.pop() {
        for (is_import, name) in named_in(&text) {
            steps += 1;
            if steps > 10 * MAX_BUNDLE_FILES {
                return Ok(());
            }
            if !is_import && AGENT_MODULES.contains(&name.as_str()) {
                continue;
            }
            let candidates = if is_import {
                import_candidates(&name)
            } else {
                require_candidates(&name)
            };
            let fresh = candidates
                .iter()
                .all(|c| !recorded.borrow().contains_key(c));
            if let Some((path, module)) = find(&from, recorded, &candidates)
                && fresh
            {
                record(recorded, &path, &module)?;
                queue.push(module);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_requires_and_imports_are_found() {
        let names = named_in(
            "local h = require(\"helpers\")\nlocal x = require 'lib.util'\nimport(\"more.lua\")\nfoo.require('no')",
        );
        assert_eq!(
            names,
            vec![
                (false, "helpers".to_string()),
                (false, "lib.util".to_string()),
                (true, "more.lua".to_string())
            ]
        );
    }

    #[test]
    fn only_paths_beside_the_file_are_read() {
        assert!(is_beside("lib/init.lua"));
        assert!(!is_beside("../secret.lua"));
        assert!(!is_beside("/etc/passwd"));
        assert_eq!(require_candidates("a.b"), vec!["a/b.lua", "a/b/init.lua"]);
    }

    #[test]
    fn modules_load_once_from_the_bundle_and_errors_name_the_file() {
        let lua = Lua::new();
        let bundle = Bundle::from([
            (
                "helpers.lua".to_string(),
                "count = (count or 0) + 1\nreturn { twice = function(x) return 2 * x end }"
                    .to_string(),
            ),
            ("lib/init.lua".to_string(), "return 'lib'".to_string()),
            ("bad.lua".to_string(), "\n\nerror('boom')".to_string()),
        ]);
        install(&lua, Source::Bundle(bundle)).expect("install");
        let (a, b, lib, n): (i64, i64, String, i64) = lua
            .load("local h = require('helpers') local h2 = import('helpers.lua') return h.twice(2), h2.twice(3), require('lib'), count")
            .eval()
            .expect("eval");
        assert_eq!((a, b, lib.as_str(), n), (4, 6, "lib", 1));
        let e = lua.load("require('bad')").exec().expect_err("raises");
        assert!(e.to_string().contains("bad.lua:3: boom"), "{e}");
        let e = lua.load("require('missing')").exec().expect_err("raises");
        assert!(
            e.to_string()
                .contains("tried missing.lua, missing/init.lua"),
            "{e}"
        );
    }
}
