//! `sloth-supervise FENCE_AT_MS PID_FILE PROGRAM [ARGS...]`: started by
//! `sloth-agent` for each payload, never by hand (see the library's docs).

fn main() {
    // The agent executes a pinned file (`/proc/self/fd/N`), which names the
    // process "N": give it its own name for ps, top and /proc/PID/stat.
    let _ = nix::sys::prctl::set_name(c"sloth-supervise");
    sloth_supervisor::main("sloth-supervise", std::env::args_os().skip(1))
}
