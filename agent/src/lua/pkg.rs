//! `pkg`: packages through the machine's package manager (apt, dnf, yum,
//! apk, pacman, zypper, brew; detected, or named with `{manager = ...}`).
//! Install and remove act only on the packages whose state differs, and
//! `changed` comes from the manager's own database before and after; every
//! result lists the command lines it ran (or, in check mode, would run).

use std::rc::Rc;

use mlua::{Lua, Table, Value};

use super::tools::{self, find_program, result, shell_line};
use super::{Args, ModuleTable, RunCtx, opt_string_field, type_name};

/// The managers, in the order they are looked for.
pub(super) const MANAGERS: &[&str] = &["apt", "dnf", "yum", "apk", "pacman", "zypper", "brew"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Install,
    Remove,
    Update,
    Upgrade,
}

impl Action {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "install" => Self::Install,
            "remove" => Self::Remove,
            "update" => Self::Update,
            "upgrade" => Self::Upgrade,
            _ => return None,
        })
    }
}

fn argv(words: &[&str], packages: &[String]) -> Vec<String> {
    words
        .iter()
        .map(|w| w.to_string())
        .chain(packages.iter().cloned())
        .collect()
}

/// The command `manager` runs for `action` on `packages`.
pub(super) fn command(manager: &str, action: Action, packages: &[String]) -> Vec<String> {
    use Action::*;
    let none: &[String] = &[];
    match (manager, action) {
        ("apt", Install) => argv(
            &[
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
            ],
            packages,
        ),
        ("apt", Remove) => argv(
            &[
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "remove",
                "-y",
            ],
            packages,
        ),
        ("apt", Update) => argv(&["apt-get", "update"], none),
        ("apt", Upgrade) => argv(
            &[
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "upgrade",
                "-y",
            ],
            none,
        ),
        ("dnf" | "yum", Install) => argv(&[manager, "install", "-y"], packages),
        ("dnf" | "yum", Remove) => argv(&[manager, "remove", "-y"], packages),
        ("dnf" | "yum", Update) => argv(&[manager, "makecache"], none),
        ("dnf" | "yum", Upgrade) => argv(&[manager, "upgrade", "-y"], none),
        ("apk", Install) => argv(&["apk", "add"], packages),
        ("apk", Remove) => argv(&["apk", "del"], packages),
        ("apk", Update) => argv(&["apk", "update"], none),
        ("apk", Upgrade) => argv(&["apk", "upgrade"], none),
        ("pacman", Install) => argv(&["pacman", "-S", "--noconfirm", "--needed"], packages),
        ("pacman", Remove) => argv(&["pacman", "-R", "--noconfirm"], packages),
        ("pacman", Update) => argv(&["pacman", "-Sy"], none),
        ("pacman", Upgrade) => argv(&["pacman", "-Syu", "--noconfirm"], none),
        ("zypper", Install) => argv(&["zypper", "--non-interactive", "install"], packages),
        ("zypper", Remove) => argv(&["zypper", "--non-interactive", "remove"], packages),
        ("zypper", Update) => argv(&["zypper", "--non-interactive", "refresh"], none),
        ("zypper", Upgrade) => argv(&["zypper", "--non-interactive", "update"], none),
        ("brew", Install) => argv(&["brew", "install"], packages),
        ("brew", Remove) => argv(&["brew", "uninstall"], packages),
        ("brew", Update) => argv(&["brew", "update"], none),
        (_, Upgrade) => argv(&["brew", "upgrade"], none),
        _ => Vec::new(),
    }
}

/// The command that asks `manager` for the installed version of `name`.
pub(super) fn query_command(manager: &str, name: &str) -> Vec<String> {
    let words: &[&str] = match manager {
        "apt" => &["dpkg-query", "-W", "-f=${Status}\t${Version}"],
        "dnf" | "yum" | "zypper" => &["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}"],
        "apk" => &["apk", "info", "-e", "-v"],
        "pacman" => &["pacman", "-Q"],
        _ => &["brew", "list", "--versions"],
    };
    argv(words, &[name.to_string()])
}

/// The version in a successful query's output, None when not installed.
pub(super) fn parse_version(manager: &str, name: &str, stdout: &str) -> Option<String> {
    let out = stdout.trim();
    match manager {
        "apt" => {
            let (status, version) = out.split_once('\t')?;
            status.ends_with(" installed").then(|| version.to_string())
        }
        "apk" => out
            .lines()
            .next()?
            .strip_prefix(&format!("{name}-"))
            .map(str::to_string),
        "pacman" | "brew" => out
            .lines()
            .next()?
            .split_whitespace()
            .nth(1)
            .map(str::to_string),
        _ => (!out.is_empty() && !out.contains("not installed")).then(|| out.to_string()),
    }
}

/// The manager of this machine (the program each needs on PATH).
pub(super) fn detect(ctx: &RunCtx) -> Option<&'static str> {
    MANAGERS.iter().copied().find(|m| {
        let program = match *m {
            "apt" => "apt-get",
            other => other,
        };
        find_program(ctx, program).is_some()
    })
}

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "pkg")?;
    m.add("pkg.install", |lua, c, a| act(lua, c, a, Action::Install))?;
    m.add("pkg.remove", |lua, c, a| act(lua, c, a, Action::Remove))?;
    m.add("pkg.update", |lua, c, a| refresh(lua, c, a, Action::Update))?;
    m.add("pkg.upgrade", |lua, c, a| {
        refresh(lua, c, a, Action::Upgrade)
    })?;
    m.add("pkg.is_installed", |_, c, a| {
        let name = a.string(1, "name")?;
        let manager = manager_of(c, &a, a.opt_table(2, "options")?.as_ref())?;
        Ok(installed_version(c, a.func(), manager, &name)?.is_some())
    })?;
    m.add("pkg.version", |_, c, a| {
        let name = a.string(1, "name")?;
        let manager = manager_of(c, &a, a.opt_table(2, "options")?.as_ref())?;
        installed_version(c, a.func(), manager, &name)
    })?;
    m.add("pkg.manager", |_, c, _| Ok(detect(c)))?;
    m.add("pkg.commands", commands)?;
    Ok(m.into_table())
}

/// `{manager = NAME}` or the detected one.
fn manager_of(ctx: &RunCtx, args: &Args, opts: Option<&Table>) -> mlua::Result<&'static str> {
    match opt_string_field(args.func(), opts, "manager")? {
        Some(name) => MANAGERS
            .iter()
            .copied()
            .find(|m| *m == name)
            .ok_or_else(|| {
                args.fail(format!(
                    "option manager {name:?} is not one of {}",
                    MANAGERS.join(", ")
                ))
            }),
        None => detect(ctx).ok_or_else(|| {
            args.fail(format!(
                "no package manager found on PATH (looked for {})",
                MANAGERS.join(", ")
            ))
        }),
    }
}

/// The installed version of `name`, None when it is not installed.
pub(super) fn installed_version(
    ctx: &RunCtx,
    func: &str,
    manager: &str,
    name: &str,
) -> mlua::Result<Option<String>> {
    if name.is_empty() || name.starts_with('-') {
        return Err(super::fail(func, format!("{name:?} is not a package name")));
    }
    let ran = tools::run(ctx, func, &query_command(manager, name), None, None)?;
    if !ran.success {
        return Ok(None);
    }
    Ok(parse_version(manager, name, &ran.stdout_text()))
}

/// Package names: a string, a list, or sloth-runner's `{name = ...}` /
/// `{packages = {...}}`.
fn packages_arg(args: &Args) -> mlua::Result<Vec<String>> {
    let value = args.get(1);
    if let Value::Table(t) = &value {
        for key in ["name", "names", "packages"] {
            let v: Value = t.get(key)?;
            if !v.is_nil() {
                return tools::string_list(args.func(), 1, "packages", &v);
            }
        }
    }
    let list = tools::string_list(args.func(), 1, "packages", &value)?;
    if let Some(bad) = list.iter().find(|p| p.is_empty() || p.starts_with('-')) {
        return Err(args.fail(format!(
            "argument 1 (packages): {bad:?} is not a package name"
        )));
    }
    Ok(list)
}

fn lines_table(lua: &Lua, commands: &[Vec<String>]) -> mlua::Result<Table> {
    lua.create_sequence_from(commands.iter().map(|c| shell_line(c)))
}

/// `pkg.install(packages, {manager})` / `pkg.remove(...)`.
fn act(lua: &Lua, ctx: &RunCtx, args: Args, action: Action) -> mlua::Result<Table> {
    let packages = packages_arg(&args)?;
    let opts = args.options(2, &["manager"])?;
    let manager = manager_of(ctx, &args, opts.as_ref())?;
    let wanted = action == Action::Install;
    let mut todo = Vec::new();
    for name in &packages {
        if installed_version(ctx, args.func(), manager, name)?.is_some() != wanted {
            todo.push(name.clone());
        }
    }
    let commands: Vec<Vec<String>> = if todo.is_empty() {
        Vec::new()
    } else {
        vec![command(manager, action, &todo)]
    };
    let mut changed_packages = todo.clone();
    if !ctx.check_mode && !commands.is_empty() {
        tools::run_ok(ctx, args.func(), &commands[0], None, None)?;
        // What the manager's database says now.
        changed_packages.clear();
        for name in &todo {
            if installed_version(ctx, args.func(), manager, name)?.is_some() == wanted {
                changed_packages.push(name.clone());
            }
        }
    }
    let t = result(lua, ctx, !changed_packages.is_empty())?;
    t.set("manager", manager)?;
    t.set("packages", lua.create_sequence_from(changed_packages)?)?;
    t.set("commands", lines_table(lua, &commands)?)?;
    Ok(t)
}

/// Whether the output of an upgrade or update says something changed.
pub(super) fn output_changed(manager: &str, action: Action, stdout: &str) -> bool {
    let nothing = [
        "0 upgraded, 0 newly installed",
        "Nothing to do",
        "there is nothing to do",
        "Already up-to-date",
        "Nothing to upgrade",
    ];
    if nothing.iter().any(|n| stdout.contains(n)) {
        return false;
    }
    if manager == "apt" && action == Action::Update {
        return stdout.lines().any(|l| l.starts_with("Get:"));
    }
    true
}

/// `pkg.update({manager})` (the package lists) / `pkg.upgrade(...)`.
fn refresh(lua: &Lua, ctx: &RunCtx, args: Args, action: Action) -> mlua::Result<Table> {
    let opts = args.options(1, &["manager"])?;
    let manager = manager_of(ctx, &args, opts.as_ref())?;
    let commands = vec![command(manager, action, &[])];
    let changed = if ctx.check_mode {
        true
    } else {
        let ran = tools::run_ok(ctx, args.func(), &commands[0], None, None)?;
        output_changed(manager, action, &ran.stdout_text())
    };
    let t = result(lua, ctx, changed)?;
    t.set("manager", manager)?;
    t.set("commands", lines_table(lua, &commands)?)?;
    Ok(t)
}

/// `pkg.commands(action, packages, {manager})`: the command lines, without
/// running anything.
fn commands(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let text = args.string(1, "action")?;
    let action = Action::parse(&text).ok_or_else(|| {
        args.fail(format!(
            "argument 1 (action) must be install, remove, update or upgrade, got {text:?}"
        ))
    })?;
    let packages = match args.get(2) {
        Value::Nil => Vec::new(),
        v => tools::string_list(args.func(), 2, "packages", &v)?,
    };
    if matches!(action, Action::Install | Action::Remove) && packages.is_empty() {
        return Err(args.fail(format!("argument 2 (packages) is required for {text}")));
    }
    let opts = match args.get(3) {
        Value::Nil => None,
        Value::Table(t) => Some(t),
        other => {
            return Err(args.fail(format!(
                "argument 3 (options) must be a table or nil, got {}",
                type_name(&other)
            )));
        }
    };
    let manager = manager_of(ctx, &args, opts.as_ref())?;
    lines_table(lua, &[command(manager, action, &packages)])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, state};
    use super::*;

    fn line(manager: &str, action: Action, packages: &[&str]) -> String {
        let packages: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
        shell_line(&command(manager, action, &packages))
    }

    #[test]
    fn command_lines_per_manager() {
        assert_eq!(
            line("apt", Action::Install, &["nginx", "curl"]),
            "env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx curl"
        );
        assert_eq!(
            line("dnf", Action::Remove, &["nginx"]),
            "dnf remove -y nginx"
        );
        assert_eq!(line("yum", Action::Update, &[]), "yum makecache");
        assert_eq!(line("apk", Action::Install, &["nginx"]), "apk add nginx");
        assert_eq!(
            line("pacman", Action::Upgrade, &[]),
            "pacman -Syu --noconfirm"
        );
        assert_eq!(
            line("zypper", Action::Install, &["vim"]),
            "zypper --non-interactive install vim"
        );
        assert_eq!(line("brew", Action::Remove, &["jq"]), "brew uninstall jq");
        assert_eq!(
            parse_version("apt", "bash", "install ok installed\t5.2-1"),
            Some("5.2-1".into())
        );
        assert_eq!(
            parse_version("apt", "x", "deinstall ok config-files\t1.0"),
            None
        );
        assert_eq!(
            parse_version("pacman", "bash", "bash 5.2.015-1\n"),
            Some("5.2.015-1".into())
        );
        assert_eq!(
            parse_version("apk", "bash", "bash-5.2.15-r5\n"),
            Some("5.2.15-r5".into())
        );
        assert!(!output_changed(
            "apt",
            Action::Upgrade,
            "0 upgraded, 0 newly installed, 0 to remove"
        ));
        assert!(output_changed(
            "apt",
            Action::Upgrade,
            "3 upgraded, 0 newly installed"
        ));
        assert!(!output_changed(
            "apt",
            Action::Update,
            "Hit:1 http://deb stable InRelease\n"
        ));
    }

    #[test]
    fn dpkg_answers_and_check_mode_lists_commands() {
        let dir = tempfile::tempdir().expect("tempdir");
        if !std::path::Path::new("/usr/bin/dpkg-query").exists() {
            return;
        }
        let (lua, ctx) = state(dir.path());
        let version: Option<String> = lua
            .load("assert(pkg.is_installed('bash')) assert(not pkg.is_installed('no-such-package-sloth')) return pkg.version('bash')")
            .eval()
            .expect("dpkg");
        let out = std::process::Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", "bash"])
            .output()
            .expect("dpkg-query");
        assert_eq!(
            version,
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        );
        drop(lua);
        drop(ctx);
        let out = super::super::Output::open(&dir.path().join("o")).expect("output");
        let mut check = RunCtx::new(dir.path().into(), out, super::super::Ctl::new(None, None));
        check.check_mode = true;
        let check = Rc::new(check);
        let lua = Lua::new();
        super::super::install(&lua, &check).expect("install");
        let (changed, line, none): (bool, String, bool) = lua
            .load(
                r#"local r = pkg.install({"bash", "no-such-package-sloth"}, {manager = "apt"})
                   local same = pkg.install("bash", {manager = "apt"})
                   return r.changed, r.commands[1], (not same.changed) and #same.commands == 0"#,
            )
            .eval()
            .expect("check mode");
        assert!(changed && none);
        assert_eq!(
            line,
            "env DEBIAN_FRONTEND=noninteractive apt-get install -y no-such-package-sloth"
        );
    }

    #[test]
    fn bad_arguments_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        for (code, want) in [
            (
                "pkg.install()",
                "pkg.install: argument 1 (packages) must be a string or a list of strings, got nil",
            ),
            (
                "pkg.install({})",
                "pkg.install: argument 1 (packages) is an empty list",
            ),
            (
                "pkg.install('-y')",
                "pkg.install: argument 1 (packages): \"-y\" is not a package name",
            ),
            (
                "pkg.install('x', {manager = 'port'})",
                "pkg.install: option manager \"port\" is not one of apt",
            ),
            (
                "pkg.install('x', {force = true})",
                "pkg.install: unknown option \"force\"",
            ),
            (
                "pkg.is_installed()",
                "pkg.is_installed: argument 1 (name) must be a string",
            ),
            (
                "pkg.commands('purge', 'x')",
                "pkg.commands: argument 1 (action) must be install, remove, update or upgrade",
            ),
            (
                "pkg.commands('install')",
                "pkg.commands: argument 2 (packages) is required for install",
            ),
        ] {
            assert_error(&lua, code, want);
        }
        let line: String = lua
            .load("return pkg.commands('install', {'a', 'b'}, {manager = 'dnf'})[1]")
            .eval()
            .expect("commands");
        assert_eq!(line, "dnf install -y a b");
    }
}
