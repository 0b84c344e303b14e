//! Line and block editing of text files (lineinfile, blockinfile, replace)
//! and rendering templates to files.

use super::*;

pub(super) fn regex_of(func: &str, what: &str, pattern: &str) -> mlua::Result<regex::Regex> {
    regex::Regex::new(pattern)
        .map_err(|e| super::super::fail(func, format!("{what} is not a valid regex: {e}")))
}

/// Text files as lines; a final newline is kept by [`join_lines`].
pub(super) fn split_lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

pub(super) fn join_lines(lines: &[String]) -> String {
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// `state` option: "present" (default) or "absent".
pub(super) fn present(args: &Args, opts: &Table) -> mlua::Result<bool> {
    match opt_string_field(args.func(), Some(opts), "state")?.as_deref() {
        None | Some("present") => Ok(true),
        Some("absent") => Ok(false),
        Some(other) => Err(args.fail(format!(
            "option state must be \"present\" or \"absent\", got {other:?}"
        ))),
    }
}

/// The lines of `path` after ensuring `line` (or the lines matching
/// `regexp`) present or absent, as Ansible's lineinfile does.
pub(super) fn edit_lines(
    lines: &[String],
    line: Option<&str>,
    regexp: Option<&regex::Regex>,
    present: bool,
) -> Vec<String> {
    let matches = |l: &str| match regexp {
        Some(re) => re.is_match(l),
        None => line == Some(l),
    };
    if !present {
        return lines.iter().filter(|l| !matches(l)).cloned().collect();
    }
    let Some(line) = line else {
        return lines.to_vec();
    };
    let mut out = lines.to_vec();
    // The last matching line is replaced; none matching: appended (unless
    // the exact line is already there).
    match out.iter().rposition(|l| matches(l)) {
        Some(i) => out[i] = line.to_string(),
        None if out.iter().any(|l| l == line) => {}
        None => out.push(line.to_string()),
    }
    out
}

/// `file_ops.line_in_file(path, {line, regexp, state, create, mode})`.
pub(super) fn line_in_file(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let opts = args.table(2, "options")?;
    check_options(
        args.func(),
        Some(&opts),
        &["line", "regexp", "state", "create", "mode"],
    )?;
    let line = opt_string_field(args.func(), Some(&opts), "line")?;
    let regexp = opt_string_field(args.func(), Some(&opts), "regexp")?
        .map(|r| regex_of(args.func(), "option regexp", &r))
        .transpose()?;
    let present = present(&args, &opts)?;
    if present && line.is_none() {
        return Err(args.fail("option line is required unless state is \"absent\""));
    }
    if !present && line.is_none() && regexp.is_none() {
        return Err(args.fail("option line or option regexp is required"));
    }
    let create = match opts.get::<Value>("create")? {
        Value::Nil => true,
        _ => opt_bool(args.func(), Some(&opts), "create")?,
    };
    let mode = opt_mode(&args, Some(&opts))?;
    let current = match read_opt(&args, &path)? {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None if !present => return path_result(lua, ctx, false, &path),
        None if !create => {
            return Err(args.fail(format!(
                "{} does not exist (option create is false)",
                path.display()
            )));
        }
        None => String::new(),
    };
    let lines = edit_lines(
        &split_lines(&current),
        line.as_deref(),
        regexp.as_ref(),
        present,
    );
    let mut text = join_lines(&lines);
    if text == join_lines(&split_lines(&current)) && path.exists() {
        // Only the trailing newline could differ: keep the file as it is.
        text = current;
    }
    let changed = ensure_content(&args, ctx, &path, text.as_bytes(), mode)?;
    path_result(lua, ctx, changed, &path)
}

/// The text with the block between the two marker lines made `block` (or
/// removed); a missing block is appended.
pub(super) fn edit_block(text: &str, begin: &str, end: &str, block: Option<&str>) -> String {
    let lines = split_lines(text);
    let start = lines.iter().position(|l| l == begin);
    let stop = start.and_then(|s| lines[s..].iter().position(|l| l == end).map(|e| s + e));
    let mut wanted = Vec::new();
    if let Some(block) = block {
        wanted.push(begin.to_string());
        wanted.extend(split_lines(block));
        wanted.push(end.to_string());
    }
    let out: Vec<String> = match (start, stop) {
        (Some(s), Some(e)) => lines[..s]
            .iter()
            .cloned()
            .chain(wanted)
            .chain(lines[e + 1..].iter().cloned())
            .collect(),
        _ => lines.into_iter().chain(wanted).collect(),
    };
    join_lines(&out)
}

/// `file_ops.block_in_file(path, {block, marker, state, create, mode})`:
/// the text between `# BEGIN SLOTH MANAGED BLOCK` and `# END ...` markers.
pub(super) fn block_in_file(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let opts = args.table(2, "options")?;
    check_options(
        args.func(),
        Some(&opts),
        &["block", "marker", "state", "create", "mode"],
    )?;
    let present = present(&args, &opts)?;
    let block = opt_string_field(args.func(), Some(&opts), "block")?;
    if present && block.is_none() {
        return Err(args.fail("option block is required unless state is \"absent\""));
    }
    let marker = opt_string_field(args.func(), Some(&opts), "marker")?
        .unwrap_or_else(|| "# {mark} SLOTH MANAGED BLOCK".into());
    if !marker.contains("{mark}") {
        return Err(args.fail("option marker must contain {mark}"));
    }
    let mode = opt_mode(&args, Some(&opts))?;
    let current = match read_opt(&args, &path)? {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None if !present => return path_result(lua, ctx, false, &path),
        None => String::new(),
    };
    let begin = marker.replace("{mark}", "BEGIN");
    let end = marker.replace("{mark}", "END");
    let text = edit_block(&current, &begin, &end, block.as_deref().filter(|_| present));
    let text = if text == join_lines(&split_lines(&current)) {
        current
    } else {
        text
    };
    let changed = ensure_content(&args, ctx, &path, text.as_bytes(), mode)?;
    path_result(lua, ctx, changed, &path)
}

/// `file_ops.replace(path, regexp, replacement)`: every match (`$1` refers
/// to groups); the number replaced is `count`.
pub(super) fn replace(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let re = regex_of(
        args.func(),
        "argument 2 (regexp)",
        &args.string(2, "regexp")?,
    )?;
    let replacement = args.string(3, "replacement")?;
    let bytes = std::fs::read(&path).map_err(|e| io_fail(&args, "read", &path, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let count = re.find_iter(&text).count();
    let replaced = re.replace_all(&text, replacement.as_str()).into_owned();
    let changed = ensure_content(&args, ctx, &path, replaced.as_bytes(), None)?;
    let t = path_result(lua, ctx, changed, &path)?;
    t.set("count", count)?;
    Ok(t)
}

/// `file_ops.template(src, dst, vars, {mode})`: renders the template file
/// `src` (`{{ name }}`, as `template.render`) to `dst`.
pub(super) fn template(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let src = ctx.path(&args.string(1, "src")?);
    let dst = ctx.path(&args.string(2, "dst")?);
    let vars = match args.get(3) {
        Value::Nil => lua.create_table()?,
        _ => args.table(3, "vars")?,
    };
    let opts = args.options(4, &["mode"])?;
    let mode = opt_mode(&args, opts.as_ref())?;
    let text = std::fs::read_to_string(&src).map_err(|e| io_fail(&args, "read", &src, e))?;
    let rendered = super::super::template::render(lua, &text, &vars).map_err(|e| {
        args.fail(format!(
            "{}: {}",
            src.display(),
            super::super::payload::describe_error(&e)
        ))
    })?;
    let changed = ensure_content(&args, ctx, &dst, rendered.as_bytes(), mode)?;
    path_result(lua, ctx, changed, &dst)
}
