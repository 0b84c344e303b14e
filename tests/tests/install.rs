//! scripts/install.sh into a temporary prefix (with --no-start: nothing on
//! this machine is started, no user is created) and scripts/package.sh's
//! .deb packages installed by `dpkg --root` into a temporary root: their
//! systemd units pass `systemd-analyze verify` without a warning.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sloth_tests::{Run, bin_dir, run_to_end};

/// Copying four debug binaries (and packing them) on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(300);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("scripts")
        .join(name)
}

fn install(prefix: &Path, units: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new("bash");
    cmd.arg(script("install.sh"))
        .arg("--prefix")
        .arg(prefix)
        .arg("--unit-dir")
        .arg(units)
        .arg("--no-start")
        .arg("--from")
        .arg(bin_dir())
        .args(args);
    run_to_end(cmd, None, DEADLINE)
}

/// `systemd-analyze verify` on `units` (under `root`, if given): exit 0 and
/// not one warning (an unknown key or value is only a warning).
#[track_caller]
fn verify(root: Option<&Path>, units: &[PathBuf]) {
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify");
    if let Some(root) = root {
        cmd.arg(format!("--root={}", root.display()));
    }
    cmd.args(units);
    let run = run_to_end(cmd, None, DEADLINE);
    assert!(
        run.code == 0 && run.stderr.trim().is_empty() && run.stdout.trim().is_empty(),
        "systemd-analyze verify complained: {run:#?}"
    );
}

fn exec_start(unit: &Path) -> String {
    let text = std::fs::read_to_string(unit).expect("read unit");
    text.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in {text}"))
        .to_string()
}

#[test]
fn install_sh_installs_every_role_into_a_prefix_with_verified_units() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (prefix, units) = (temp.path().join("prefix"), temp.path().join("units"));
    install(&prefix, &units, &["apiserver", "--listen", "0.0.0.0:50053"]).ok();
    install(
        &prefix,
        &units,
        &["controllers", "--server", "127.0.0.1:50053"],
    )
    .ok();
    install(
        &prefix,
        &units,
        &[
            "agent",
            "--name",
            "box-1",
            "--master",
            "10.0.0.1:50053",
            "--incus",
            "192.0.2.7:40051",
            "--labels",
            "zone=lab,os=linux",
        ],
    )
    .ok();
    for binary in [
        "sloth-apiserver",
        "sloth-controllers",
        "sloth-agent",
        "slothctl",
    ] {
        let path = prefix.join("bin").join(binary);
        let out = Command::new(&path)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
        assert!(out.status.success(), "{binary} --version: {out:?}");
    }
    // The agent's per-run supervisor, beside it.
    assert!(prefix.join("bin/sloth-supervise").is_file());
    let unit = |role: &str| units.join(format!("sloth-{role}.service"));
    let bin = prefix.join("bin");
    let state = prefix.join("var/lib/sloth");
    assert_eq!(
        exec_start(&unit("apiserver")),
        format!(
            "{}/sloth-apiserver --listen 0.0.0.0:50053 --data-dir {}/apiserver/data",
            bin.display(),
            state.display()
        )
    );
    assert_eq!(
        exec_start(&unit("controllers")),
        format!(
            "{}/sloth-controllers --server 127.0.0.1:50053",
            bin.display()
        )
    );
    // --incus: listen everywhere, report the forwarded address.
    assert_eq!(
        exec_start(&unit("agent")),
        format!(
            "{}/sloth-agent --name box-1 --master 10.0.0.1:50053 --bind-address 0.0.0.0 \
             --report-address 192.0.2.7:40051 --labels zone=lab,os=linux --work-dir {}/agent/work",
            bin.display(),
            state.display()
        )
    );
    let apiserver_unit = std::fs::read_to_string(unit("apiserver")).expect("unit");
    for line in [
        "Type=notify",
        "Restart=always",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "User=sloth",
    ] {
        assert!(
            apiserver_unit.contains(line),
            "{line} missing:\n{apiserver_unit}"
        );
    }
    assert!(apiserver_unit.contains(&format!(
        "EnvironmentFile=-{}/etc/sloth/apiserver.env",
        prefix.display()
    )));
    let agent_unit = std::fs::read_to_string(unit("agent")).expect("unit");
    assert!(
        !agent_unit.lines().any(|l| l.starts_with("User=")),
        "the agent runs as root"
    );
    for role in ["apiserver", "controllers", "agent"] {
        assert!(state.join(role).is_dir(), "no state dir for {role}");
    }
    verify(
        None,
        &[unit("apiserver"), unit("controllers"), unit("agent")],
    );

    // Again: an upgrade. Settings stay, the unit takes the new flags.
    let env_file = prefix.join("etc/sloth/agent.env");
    std::fs::write(&env_file, "SLOTH_SERVER=http://10.0.0.2:50053\n").expect("edit settings");
    install(
        &prefix,
        &units,
        &["agent", "--name", "box-1", "--capacity", "3"],
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(&env_file).expect("settings"),
        "SLOTH_SERVER=http://10.0.0.2:50053\n"
    );
    assert!(exec_start(&unit("agent")).contains("--capacity 3"));
    assert!(!exec_start(&unit("agent")).contains("--incus"));
    verify(None, &[unit("agent")]);
}

#[test]
fn install_sh_rejects_bad_input_and_writes_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (prefix, units) = (temp.path().join("prefix"), temp.path().join("units"));
    let run = install(&prefix, &units, &["database"]).code(2);
    assert!(
        run.stderr
            .contains("ROLE must be agent, apiserver or controllers"),
        "{run:#?}"
    );
    let run = install(&prefix, &units, &["agent", "--incus", "nohost"]).code(2);
    assert!(run.stderr.contains("--incus needs HOST:PORT"), "{run:#?}");
    let run = install(&prefix, &units, &[]).code(2);
    assert!(run.stderr.contains("ROLE"), "{run:#?}");
    assert!(!prefix.exists(), "a rejected install wrote files");
    assert!(!units.exists(), "a rejected install wrote a unit");
}

#[test]
fn packages_install_with_dpkg_into_a_root_with_verified_units() {
    let temp = tempfile::tempdir().expect("temp dir");
    let out = temp.path().join("debs");
    let mut cmd = Command::new("bash");
    cmd.arg(script("package.sh"))
        .arg("--from")
        .arg(bin_dir())
        .arg("--out")
        .arg(&out)
        // Debug binaries are large; xz would spend minutes on them.
        .args(["--compression", "gzip"]);
    let built = run_to_end(cmd, None, DEADLINE).ok();
    let debs: Vec<PathBuf> = built.stdout.lines().map(PathBuf::from).collect();
    assert_eq!(debs.len(), 4, "{built:#?}");

    // dpkg --root: a database and files under a temporary root, maintainer
    // scripts run outside a chroot with DPKG_ROOT set (they then create no
    // user and touch no service of this machine).
    let root = temp.path().join("root");
    let admin = root.join("var/lib/dpkg");
    for dir in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(dir)).expect("dpkg admin dir");
    }
    for file in ["status", "available"] {
        std::fs::write(admin.join(file), "").expect("dpkg admin file");
    }
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--force-not-root", "-i"])
        .args(&debs);
    run_to_end(cmd, None, DEADLINE).ok();
    for package in [
        "sloth-apiserver",
        "sloth-controllers",
        "sloth-agent",
        "slothctl",
    ] {
        let mut cmd = Command::new("dpkg-query");
        cmd.arg(format!("--admindir={}", admin.display()))
            .args(["-W", "-f", "${Status}", package]);
        let status = run_to_end(cmd, None, DEADLINE).ok();
        assert_eq!(status.stdout, "install ok installed", "{package}");
    }
    let out = Command::new(root.join("usr/bin/sloth-agent"))
        .arg("--version")
        .output()
        .expect("run the packaged agent");
    assert!(out.status.success(), "{out:?}");
    // The agent's per-run supervisor, beside it.
    assert!(root.join("usr/bin/sloth-supervise").is_file());
    for role in ["apiserver", "controllers", "agent"] {
        assert!(
            root.join(format!("etc/sloth/{role}.env")).is_file(),
            "{role}"
        );
        assert!(
            root.join(format!("var/lib/sloth/{role}")).is_dir(),
            "{role}"
        );
    }
    // Verify the packaged units in the root, beside this machine's own
    // units (the targets they name).
    let unit_dir = root.join("lib/systemd/system");
    for host_units in ["/lib/systemd/system", "/usr/lib/systemd/system"] {
        let Ok(entries) = std::fs::read_dir(host_units) else {
            continue;
        };
        for entry in entries.flatten() {
            let target = unit_dir.join(entry.file_name());
            if !target.exists() && entry.path().is_file() {
                let _ = std::fs::copy(entry.path(), target);
            }
        }
    }
    let units: Vec<PathBuf> = ["apiserver", "controllers", "agent"]
        .iter()
        .map(|role| unit_dir.join(format!("sloth-{role}.service")))
        .collect();
    assert!(exec_start(&units[2]).starts_with("/usr/bin/sloth-agent "));
    verify(Some(&root), &units);
}
