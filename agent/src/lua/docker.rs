//! `docker`: images and containers through the `docker` command. Without
//! docker every call fails with "docker is not installed" and the command
//! line it would have run; in check mode calls that change something only
//! report their command line. `run` of a named container that is running,
//! `stop` of a stopped one and `rm` of a missing one change nothing.

use std::rc::Rc;

use mlua::{Lua, Table, Value};

use super::exec::Ran;
use super::tools::{self, opt_bool, opt_list, result, shell_line};
use super::{
    Args, ModuleTable, RunCtx, check_options, opt_string_field, opt_string_map, type_name,
};

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "docker")?;
    m.add("docker.build", build)?;
    m.add("docker.run", run_container)?;
    m.add("docker.exec", exec)?;
    m.add("docker.pull", |lua, c, a| image_op(lua, c, a, "pull"))?;
    m.add("docker.push", |lua, c, a| image_op(lua, c, a, "push"))?;
    m.add("docker.ps", ps)?;
    m.add("docker.images", images)?;
    m.add("docker.stop", |lua, c, a| container_op(lua, c, a, "stop"))?;
    m.add("docker.rm", |lua, c, a| container_op(lua, c, a, "rm"))?;
    m.add("docker.logs", logs)?;
    Ok(m.into_table())
}

fn docker(words: &[&str]) -> Vec<String> {
    std::iter::once("docker")
        .chain(words.iter().copied())
        .map(str::to_string)
        .collect()
}

fn name_arg(args: &Args, n: usize, what: &str) -> mlua::Result<String> {
    let name = args.string(n, what)?;
    if name.is_empty() || name.starts_with('-') {
        return Err(args.fail(format!("argument {n} ({what}) {name:?} is not valid")));
    }
    Ok(name)
}

/// Runs `argv`; a failure is an error with docker's own message.
fn run(ctx: &RunCtx, args: &Args, argv: &[String]) -> mlua::Result<Ran> {
    tools::run_ok(ctx, args.func(), argv, None, None)
}

/// Runs a changing command unless in check mode; the result table.
fn change(
    lua: &Lua,
    ctx: &RunCtx,
    args: &Args,
    argv: &[String],
    changed: impl FnOnce(&Ran) -> bool,
) -> mlua::Result<Table> {
    if ctx.check_mode {
        let t = result(lua, ctx, true)?;
        t.set("command", shell_line(argv))?;
        return Ok(t);
    }
    let ran = run(ctx, args, argv)?;
    let t = result(lua, ctx, changed(&ran))?;
    t.set("command", shell_line(argv))?;
    t.set("stdout", ran.stdout_text())?;
    Ok(t)
}

/// `docker.build(path, {tag, file, build_args})`.
fn build(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = args.string(1, "path")?;
    let opts = args.options(2, &["tag", "file", "build_args"])?;
    let mut argv = docker(&["build"]);
    if let Some(tag) = opt_string_field(args.func(), opts.as_ref(), "tag")? {
        argv.extend(["-t".into(), tag]);
    }
    if let Some(file) = opt_string_field(args.func(), opts.as_ref(), "file")? {
        argv.extend(["-f".into(), file]);
    }
    for (k, v) in opt_string_map(args.func(), opts.as_ref(), "build_args")? {
        argv.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    argv.push(path);
    change(lua, ctx, &args, &argv, |_| true)
}

/// The `docker run` command line for `image` and its options.
fn run_command(args: &Args, image: String, opts: Option<&Table>) -> mlua::Result<Vec<String>> {
    let func = args.func();
    check_options(
        func,
        opts,
        &[
            "name", "detach", "ports", "env", "volumes", "command", "rm", "network",
        ],
    )?;
    let mut argv = docker(&["run"]);
    if opt_bool(func, opts, "detach")? {
        argv.push("-d".into());
    }
    if opt_bool(func, opts, "rm")? {
        argv.push("--rm".into());
    }
    if let Some(name) = opt_string_field(func, opts, "name")? {
        argv.extend(["--name".into(), name]);
    }
    if let Some(network) = opt_string_field(func, opts, "network")? {
        argv.extend(["--network".into(), network]);
    }
    for port in opt_list(func, opts, "ports")? {
        argv.extend(["-p".into(), port]);
    }
    for (k, v) in opt_string_map(func, opts, "env")? {
        argv.extend(["-e".into(), format!("{k}={v}")]);
    }
    for volume in opt_list(func, opts, "volumes")? {
        argv.extend(["-v".into(), volume]);
    }
    argv.push(image);
    argv.extend(opt_list(func, opts, "command")?);
    Ok(argv)
}

/// `docker.run(image, {name, detach, ports, env, volumes, command, rm,
/// network})`: unchanged when a container of that name is running.
fn run_container(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let image = name_arg(&args, 1, "image")?;
    let opts = args.opt_table(2, "options")?;
    let argv = run_command(&args, image, opts.as_ref())?;
    let name = opt_string_field(args.func(), opts.as_ref(), "name")?;
    if let Some(name) = name
        && !ctx.check_mode
        && running(ctx, &args, &name)?
    {
        let t = result(lua, ctx, false)?;
        t.set("command", shell_line(&argv))?;
        return Ok(t);
    }
    change(lua, ctx, &args, &argv, |_| true)
}

/// True when a container named `name` is running.
fn running(ctx: &RunCtx, args: &Args, name: &str) -> mlua::Result<bool> {
    let filter = format!("name=^/{name}$");
    let ran = run(ctx, args, &docker(&["ps", "-q", "--filter", &filter]))?;
    Ok(!ran.stdout_text().trim().is_empty())
}

/// `docker.exec(container, cmd)`: a string runs with `sh -c`, a list as is;
/// `{stdout, stderr, exit_code, success}`.
fn exec(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let container = name_arg(&args, 1, "container")?;
    let mut argv = docker(&["exec", &container]);
    match args.get(2) {
        Value::String(s) => argv.extend(["sh".into(), "-c".into(), s.to_str()?.to_string()]),
        v @ Value::Table(_) => argv.extend(tools::string_list(args.func(), 2, "cmd", &v)?),
        other => {
            return Err(args.fail(format!(
                "argument 2 (cmd) must be a string or a list of strings, got {}",
                type_name(&other)
            )));
        }
    }
    let ran = tools::run(ctx, args.func(), &argv, None, None)?;
    let t = ran.table(lua)?;
    t.set("command", shell_line(&argv))?;
    Ok(t)
}

/// `docker.pull(image)` (changed unless docker says it is up to date) and
/// `docker.push(image)`.
fn image_op(lua: &Lua, ctx: &RunCtx, args: Args, verb: &str) -> mlua::Result<Table> {
    let image = name_arg(&args, 1, "image")?;
    let argv = docker(&[verb, &image]);
    change(lua, ctx, &args, &argv, |ran| {
        !ran.stdout_text().contains("Image is up to date")
    })
}

/// `docker.stop(container)`, `docker.rm(container, {force})`.
fn container_op(lua: &Lua, ctx: &RunCtx, args: Args, verb: &str) -> mlua::Result<Table> {
    let container = name_arg(&args, 1, "container")?;
    let opts = args.opt_table(2, "options")?;
    check_options(
        args.func(),
        opts.as_ref(),
        if verb == "rm" { &["force"] } else { &[] },
    )?;
    let mut argv = docker(&[verb]);
    if opt_bool(args.func(), opts.as_ref(), "force")? {
        argv.push("-f".into());
    }
    argv.push(container.clone());
    if !ctx.check_mode {
        let filter = format!("name=^/{container}$");
        let list = if verb == "stop" { "-q" } else { "-aq" };
        let exists = run(ctx, &args, &docker(&["ps", list, "--filter", &filter]))?;
        if exists.stdout_text().trim().is_empty() {
            let t = result(lua, ctx, false)?;
            t.set("command", shell_line(&argv))?;
            return Ok(t);
        }
    }
    change(lua, ctx, &args, &argv, |_| true)
}

/// Lines of JSON objects (docker's `--format '{{json .}}'`) as tables.
fn json_lines(lua: &Lua, text: &str) -> mlua::Result<Table> {
    use mlua::LuaSerdeExt;
    let list = lua.create_table()?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
            list.push(lua.to_value(&value)?)?;
        }
    }
    Ok(list)
}

/// `docker.ps({all})`: the containers, as docker describes them.
fn ps(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let opts = args.options(1, &["all"])?;
    let mut argv = docker(&["ps", "--format", "{{json .}}"]);
    if opt_bool(args.func(), opts.as_ref(), "all")? {
        argv.push("-a".into());
    }
    json_lines(lua, &run(ctx, &args, &argv)?.stdout_text())
}

/// `docker.images()`.
fn images(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let argv = docker(&["images", "--format", "{{json .}}"]);
    json_lines(lua, &run(ctx, &args, &argv)?.stdout_text())
}

/// `docker.logs(container, {tail})`: the text.
fn logs(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<String> {
    let container = name_arg(&args, 1, "container")?;
    let opts = args.options(2, &["tail"])?;
    let mut argv = docker(&["logs"]);
    if let Some(tail) = tools::opt_count(args.func(), opts.as_ref(), "tail")? {
        argv.extend(["--tail".into(), tail.to_string()]);
    }
    argv.push(container);
    let ran = run(ctx, &args, &argv)?;
    Ok(format!("{}{}", ran.stdout_text(), ran.stderr_text()))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, assert_errors, state};
    use super::super::{Ctl, Output, RunCtx};
    use super::*;

    #[test]
    fn without_docker_the_error_says_so_with_the_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        // A PATH without docker.
        lua.load("env.set('PATH', '/nonexistent')")
            .exec()
            .expect("env");
        assert_error(
            &lua,
            "docker.run('nginx:1', {detach = true, name = 'web', ports = {'8080:80'}, env = {A = 'b c'}, volumes = {'/srv:/data'}})",
            "docker.run: docker is not installed (not found on PATH); the command was: docker ps -q --filter 'name=^/web$'",
        );
        assert_error(
            &lua,
            "docker.pull('alpine')",
            "docker.pull: docker is not installed (not found on PATH); the command was: docker pull alpine",
        );
        assert_error(&lua, "docker.ps()", "docker.ps: docker is not installed");
    }

    #[test]
    fn check_mode_reports_exact_command_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Output::open(&dir.path().join("o")).expect("output");
        let mut ctx = RunCtx::new(dir.path().into(), out, Ctl::new(None, None));
        ctx.check_mode = true;
        let ctx = Rc::new(ctx);
        let lua = Lua::new();
        super::super::install(&lua, &ctx).expect("install");
        let lines: Vec<String> = lua
            .load(
                r#"return {
                  docker.run("nginx:1", {detach = true, name = "web", ports = {"8080:80"},
                                         env = {A = "b c"}, volumes = {"/srv:/data"}, command = {"nginx", "-g", "daemon off;"}}).command,
                  docker.build(".", {tag = "app:1", file = "Dockerfile", build_args = {V = "2"}}).command,
                  docker.pull("alpine:3").command,
                  docker.push("registry.local/app:1").command,
                  docker.stop("web").command,
                  docker.rm("web", {force = true}).command,
                }"#,
            )
            .eval()
            .expect("check mode");
        assert_eq!(
            lines,
            vec![
                "docker run -d --name web -p 8080:80 -e 'A=b c' -v /srv:/data nginx:1 nginx -g 'daemon off;'",
                "docker build -t app:1 -f Dockerfile --build-arg V=2 .",
                "docker pull alpine:3",
                "docker push registry.local/app:1",
                "docker stop web",
                "docker rm -f web",
            ]
        );
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_errors(&[
            (
                "docker.run()",
                "docker.run: argument 1 (image) must be a string, got nil",
            ),
            (
                "docker.run('-x')",
                "docker.run: argument 1 (image) \"-x\" is not valid",
            ),
            (
                "docker.run('i', {port = 1})",
                "docker.run: unknown option \"port\"",
            ),
            (
                "docker.run('i', {ports = 80})",
                "docker.run: option ports must be a list of strings",
            ),
            (
                "docker.run('i', {detach = 'yes'})",
                "docker.run: option detach must be a boolean",
            ),
            (
                "docker.exec('c', 3)",
                "docker.exec: argument 2 (cmd) must be a string or a list of strings, got number",
            ),
            (
                "docker.stop('c', {force = true})",
                "docker.stop: unknown option \"force\"",
            ),
            (
                "docker.logs('c', {tail = -1})",
                "docker.logs: option tail must be a positive integer",
            ),
        ]);
    }
}
