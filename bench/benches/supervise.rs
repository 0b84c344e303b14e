//! What starting one payload costs under each supervisor: `/bin/true`
//! alone, under `sloth-supervise` (the dedicated binary) and under
//! `sloth-agent supervise` (the agent's fallback), each with a held pipe
//! on its stdin as the agent gives it; and the pipe's message lines.
//!
//! `cargo build --release --workspace --bins` first (the binaries are taken
//! from the bench's own `target/release`), then
//! `cargo bench -p sloth-bench --bench supervise`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sloth_supervisor::{BootMs, Launcher, Message};

/// `target/<profile>`, where this bench is `target/<profile>/deps/NAME`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("bench executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// Runs `command` to its end with a pipe held on its stdin.
fn run_held(command: &mut Command) {
    let mut child = command
        .stdin(Stdio::piped())
        .spawn()
        .expect("start the supervisor");
    let pipe = child.stdin.take();
    let status = child.wait().expect("wait");
    drop(pipe);
    assert!(status.success(), "{status:?}");
}

fn spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("payload_start");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("true_alone", |b| {
        b.iter(|| run_held(Command::new("/bin/true").stdout(Stdio::null())));
    });
    let dir = bin_dir();
    let launchers = [
        (
            "sloth_supervise",
            Launcher::dedicated(dir.join("sloth-supervise")),
        ),
        (
            "sloth_agent_supervise",
            Launcher::subcommand(dir.join("sloth-agent"), "sloth-agent", "supervise"),
        ),
    ];
    for (name, launcher) in launchers {
        if !launcher.program().exists() {
            eprintln!(
                "skipping {name}: {} is not built (cargo build --release --workspace --bins)",
                launcher.program().display()
            );
            continue;
        }
        group.bench_function(name, |b| {
            b.iter(|| run_held(&mut launcher.command(BootMs::NEVER, None, "/bin/true", &[])));
        });
    }
    group.finish();
}

fn messages(c: &mut Criterion) {
    let fence = Message::Fence(BootMs(1_234_567_890));
    c.bench_function("supervisor_message_line_and_parse", |b| {
        b.iter(|| {
            let line = black_box(fence).line();
            black_box(Message::parse(line.as_bytes()))
        });
    });
}

criterion_group!(benches, spawn, messages);
criterion_main!(benches);
