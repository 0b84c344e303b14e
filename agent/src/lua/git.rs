//! `git`: repositories through the `git` command. `clone` of a directory
//! that is already a repository, `pull` and `checkout` that move nothing
//! report `changed = false`; every result shows the command line it ran.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use mlua::{Lua, Table};

use super::tools::{self, opt_count, result, shell_line};
use super::{Args, ModuleTable, RunCtx, opt_string_field};

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "git")?;
    m.add("git.clone", clone)?;
    m.add("git.pull", pull)?;
    m.add("git.fetch", fetch)?;
    m.add("git.checkout", checkout)?;
    m.add("git.status", status)?;
    m.add("git.current_commit", |_, c, a| {
        let dir = repo_arg(c, &a, 1)?;
        head(c, &a, &dir)
    })?;
    m.add("git.log", log)?;
    Ok(m.into_table())
}

fn git(words: &[&str]) -> Vec<String> {
    std::iter::once("git")
        .chain(words.iter().copied())
        .map(str::to_string)
        .collect()
}

/// Runs git in `dir`; its trimmed stdout.
fn run(ctx: &RunCtx, args: &Args, dir: &Path, argv: &[String]) -> mlua::Result<String> {
    let ran = tools::run_ok(ctx, args.func(), argv, Some(dir), None)?;
    Ok(ran.stdout_text().trim().to_string())
}

/// Argument `n`: a directory that is a git work tree.
fn repo_arg(ctx: &RunCtx, args: &Args, n: usize) -> mlua::Result<PathBuf> {
    let dir = ctx.path(&args.string(n, "dir")?);
    if !dir.join(".git").exists() {
        return Err(args.fail(format!("{} is not a git repository", dir.display())));
    }
    Ok(dir)
}

fn head(ctx: &RunCtx, args: &Args, dir: &Path) -> mlua::Result<String> {
    run(ctx, args, dir, &git(&["rev-parse", "HEAD"]))
}

fn done(
    lua: &Lua,
    ctx: &RunCtx,
    changed: bool,
    commit: Option<String>,
    argv: &[String],
) -> mlua::Result<Table> {
    let t = result(lua, ctx, changed)?;
    t.set("commit", commit)?;
    t.set("command", shell_line(argv))?;
    Ok(t)
}

/// `git.clone(url, dir, {branch, tag, depth})`: unchanged when dir is
/// already a repository.
fn clone(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let url = args.string(1, "url")?;
    let dir = ctx.path(&args.string(2, "dir")?);
    let opts = args.options(3, &["branch", "tag", "depth"])?;
    let branch = opt_string_field(args.func(), opts.as_ref(), "branch")?;
    let tag = opt_string_field(args.func(), opts.as_ref(), "tag")?;
    if branch.is_some() && tag.is_some() {
        return Err(args.fail("options branch and tag exclude each other"));
    }
    let depth = opt_count(args.func(), opts.as_ref(), "depth")?;
    if url.starts_with('-') {
        return Err(args.fail(format!("argument 1 (url) {url:?} is not a repository")));
    }
    let mut argv = git(&["clone"]);
    if let Some(depth) = depth {
        argv.extend(["--depth".to_string(), depth.to_string()]);
    }
    if let Some(reference) = branch.or(tag) {
        argv.extend(["--branch".to_string(), reference]);
    }
    argv.extend(["--".to_string(), url, dir.to_string_lossy().into_owned()]);
    if dir.join(".git").exists() {
        let commit = head(ctx, &args, &dir)?;
        return done(lua, ctx, false, Some(commit), &argv);
    }
    if ctx.check_mode {
        return done(lua, ctx, true, None, &argv);
    }
    run(ctx, &args, &ctx.cwd, &argv)?;
    let commit = head(ctx, &args, &dir)?;
    done(lua, ctx, true, Some(commit), &argv)
}

/// `git.pull(dir, {remote, branch})`: changed when HEAD moved.
fn pull(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let dir = repo_arg(ctx, &args, 1)?;
    let opts = args.options(2, &["remote", "branch"])?;
    let mut argv = git(&["pull", "--ff-only"]);
    let remote = opt_string_field(args.func(), opts.as_ref(), "remote")?;
    let branch = opt_string_field(args.func(), opts.as_ref(), "branch")?;
    if branch.is_some() && remote.is_none() {
        argv.push("origin".into());
    }
    argv.extend(remote);
    argv.extend(branch);
    let before = head(ctx, &args, &dir)?;
    if ctx.check_mode {
        // What the remote has, without merging it.
        run(ctx, &args, &dir, &git(&["fetch", "--quiet"]))?;
        let upstream = run(ctx, &args, &dir, &git(&["rev-parse", "@{upstream}"]))?;
        return done(lua, ctx, upstream != before, Some(before), &argv);
    }
    run(ctx, &args, &dir, &argv)?;
    let after = head(ctx, &args, &dir)?;
    done(lua, ctx, after != before, Some(after), &argv)
}

/// `git.fetch(dir, {remote})`: changed when a remote ref moved.
fn fetch(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let dir = repo_arg(ctx, &args, 1)?;
    let opts = args.options(2, &["remote"])?;
    let mut argv = git(&["fetch", "--tags"]);
    argv.extend(opt_string_field(args.func(), opts.as_ref(), "remote")?);
    let refs = git(&["for-each-ref", "--format=%(objectname) %(refname)"]);
    let before = run(ctx, &args, &dir, &refs)?;
    if ctx.check_mode {
        return done(lua, ctx, false, None, &argv);
    }
    run(ctx, &args, &dir, &argv)?;
    let after = run(ctx, &args, &dir, &refs)?;
    done(lua, ctx, after != before, None, &argv)
}

/// `git.checkout(dir, ref)`: a branch, tag or commit; changed when HEAD
/// (its commit or its branch) moved.
fn checkout(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let dir = repo_arg(ctx, &args, 1)?;
    let reference = args.string(2, "ref")?;
    if reference.starts_with('-') {
        return Err(args.fail(format!("argument 2 (ref) {reference:?} is not a reference")));
    }
    let argv = git(&["checkout", &reference]);
    let where_ = |ctx: &RunCtx| -> mlua::Result<(String, String)> {
        let branch = tools::run(
            ctx,
            args.func(),
            &git(&["symbolic-ref", "-q", "HEAD"]),
            Some(&dir),
            None,
        )?;
        Ok((
            head(ctx, &args, &dir)?,
            branch.stdout_text().trim().to_string(),
        ))
    };
    let before = where_(ctx)?;
    if ctx.check_mode {
        let target = run(
            ctx,
            &args,
            &dir,
            &git(&["rev-parse", &format!("{reference}^{{commit}}")]),
        )?;
        // A branch not checked out is a change even at the same commit.
        let branch_ref = format!("refs/heads/{reference}");
        let is_branch = tools::run(
            ctx,
            args.func(),
            &git(&["show-ref", "--verify", "-q", &branch_ref]),
            Some(&dir),
            None,
        )?
        .success;
        let changed = target != before.0 || (is_branch && before.1 != branch_ref);
        return done(lua, ctx, changed, Some(before.0), &argv);
    }
    run(ctx, &args, &dir, &argv)?;
    let after = where_(ctx)?;
    let commit = after.0.clone();
    done(lua, ctx, after != before, Some(commit), &argv)
}

/// `git.status(dir)`: `{clean, branch, files = {"M file", ...}}`.
fn status(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let dir = repo_arg(ctx, &args, 1)?;
    let ran = tools::run_ok(
        ctx,
        args.func(),
        &git(&["status", "--porcelain"]),
        Some(&dir),
        None,
    )?;
    let files: Vec<String> = ran
        .stdout_text()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.trim().to_string())
        .collect();
    let branch = run(
        ctx,
        &args,
        &dir,
        &git(&["rev-parse", "--abbrev-ref", "HEAD"]),
    )?;
    let t = lua.create_table()?;
    t.set("clean", files.is_empty())?;
    t.set("branch", branch)?;
    t.set("files", lua.create_sequence_from(files)?)?;
    Ok(t)
}

/// `git.log(dir, {n = 10})`: `{commit, author, date, subject}`, newest first.
fn log(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let dir = repo_arg(ctx, &args, 1)?;
    let opts = args.options(2, &["n"])?;
    let n = opt_count(args.func(), opts.as_ref(), "n")?.unwrap_or(10);
    let out = run(
        ctx,
        &args,
        &dir,
        &git(&["log", &format!("-n{n}"), "--format=%H%x1f%an%x1f%aI%x1f%s"]),
    )?;
    let list = lua.create_table()?;
    for line in out.lines() {
        let mut parts = line.split('\u{1f}');
        let t = lua.create_table()?;
        for key in ["commit", "author", "date", "subject"] {
            t.set(key, parts.next().unwrap_or_default())?;
        }
        list.push(t)?;
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_errors, state};

    fn sh(dir: &std::path::Path, script: &str) {
        let status = std::process::Command::new("bash")
            .args(["-ec", script])
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .status()
            .expect("bash");
        assert!(status.success(), "{script}");
    }

    #[test]
    fn clone_pull_checkout_against_a_bare_repository() {
        let dir = tempfile::tempdir().expect("tempdir");
        sh(
            dir.path(),
            "git init -q --bare -b main origin.git
             git clone -q origin.git work 2>/dev/null
             cd work && git checkout -q -b main && echo one > f && git add f && git commit -qm one
             git tag v1 && git push -q origin main v1",
        );
        let (lua, _ctx) = state(dir.path());
        lua.load(
            r#"
            local c = git.clone("origin.git", "clone", {branch = "main", depth = 1})
            assert(c.changed == true and #c.commit == 40, c.command)
            assert(c.command:find("git clone --depth 1 --branch main -- origin.git ", 1, true), c.command)
            assert(git.clone("origin.git", "clone").changed == false)
            assert(git.current_commit("clone") == c.commit)
            assert(git.pull("clone").changed == false)
            assert(git.status("clone").clean and git.status("clone").branch == "main")
            fs.write("clone/new.txt", "x")
            local s = git.status("clone")
            assert(not s.clean and s.files[1] == "?? new.txt", s.files[1])
            "#,
        )
        .exec()
        .expect("clone");
        sh(
            dir.path(),
            "cd work && echo two > f && git commit -qam two && git push -q origin main",
        );
        lua.load(
            r#"
            local p = git.pull("clone")
            assert(p.changed == true)
            assert(git.log("clone", {n = 1})[1].subject == "two")
            assert(git.pull("clone").changed == false)
            local t = git.clone("origin.git", "tagged", {tag = "v1"})
            assert(git.log("tagged")[1].subject == "one")
            assert(git.checkout("clone", "main").changed == false)
            assert(git.checkout("clone", "v1").changed == true)
            assert(git.current_commit("clone") == git.log("tagged")[1].commit)
            assert(git.checkout("clone", "main").changed == true)
            assert(git.fetch("clone").changed == false)
            "#,
        )
        .exec()
        .expect("pull");
        // Check mode: what checkout would do, HEAD left where it is.
        let out = super::super::Output::open(&dir.path().join("o")).expect("output");
        let mut check =
            super::super::RunCtx::new(dir.path().into(), out, super::super::Ctl::new(None, None));
        check.check_mode = true;
        let check = std::rc::Rc::new(check);
        let lua = mlua::Lua::new();
        super::super::install(&lua, &check).expect("install");
        lua.load(
            r#"
            local head = git.current_commit("clone")
            assert(git.checkout("clone", "main").changed == false)
            local r = git.checkout("clone", "v1")
            assert(r.changed == true and r.check_mode == true)
            assert(git.current_commit("clone") == head)
            assert(git.status("clone").branch == "main")
            "#,
        )
        .exec()
        .expect("check mode");
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_errors(&[
            (
                "git.clone()",
                "git.clone: argument 1 (url) must be a string, got nil",
            ),
            (
                "git.clone('u', 'd', {branch = 'a', tag = 'b'})",
                "git.clone: options branch and tag exclude each other",
            ),
            (
                "git.clone('u', 'd', {depth = 0})",
                "git.clone: option depth must be a positive integer",
            ),
            (
                "git.clone('--upload-pack=x', 'd')",
                "git.clone: argument 1 (url) \"--upload-pack=x\" is not a repository",
            ),
            ("git.clone('missing.git', 'd')", "git.clone: `git clone -- "),
            ("git.pull('.')", "is not a git repository"),
            (
                "git.status(1)",
                "git.status: argument 1 (dir) must be a string",
            ),
            ("git.log('.', {n = 'x'})", "git.log: "),
        ]);
    }
}
