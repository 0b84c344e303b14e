//! The per-run supervisor: the small process between an agent and one
//! payload, so that a payload never outlives its agent's lease.
//!
//! The agent starts `sloth-supervise FENCE_AT PID_FILE PROGRAM ARGS..` (or,
//! without that executable, `sloth-agent supervise ...`, the same code) with
//! a pipe on its stdin. The supervisor starts the program in a new process
//! group (recorded in PID_FILE for a restarted agent), and then:
//!
//! - `stop` on the pipe: SIGTERM to the group, SIGKILL after [`KILL_GRACE`];
//! - `fence MS` on the pipe: the new deadline (CLOCK_BOOTTIME ms) granted by
//!   the agent's latest heartbeat renewal;
//! - the deadline passes (the agent is frozen or cut off) or the pipe closes
//!   (the agent died): SIGKILL to the whole group at once.
//!
//! When the program ends, what it left in its group gets the same
//! SIGTERM-then-SIGKILL, and the supervisor exits as the program did (same
//! code, or killed by the same signal), so the agent sees the program's own
//! exit status.
//!
//! The agent depends on this crate (for [`Message`], [`BootMs`] and
//! [`Launcher`]); this crate depends on std and nix only, so that the
//! binary stays small and starts fast.

mod boot_ms;
mod group;
mod launcher;
mod message;
mod supervise;

pub use boot_ms::BootMs;
pub use group::{KILL_GRACE, group_alive, process_start_time};
pub use launcher::{Launcher, NO_PID_FILE};
pub use message::Message;
pub use supervise::main;
