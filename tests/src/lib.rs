//! Helpers for end-to-end tests: build and start the real binaries on
//! loopback with OS-picked ports and temporary directories. Every wait has a
//! deadline; a process that does not come up fails the test with its output.
//!
//! One module per job; everything is re-exported here so tests import from
//! the crate root.

mod agent;
mod apiserver;
mod binaries;
mod controllers;
mod etcd;
mod etcd_fleet;
pub mod files;
mod fixtures;
mod haproxy;
pub mod json_schema;
mod lines;
mod one_agent;
mod process;
mod slothctl;
mod waits;
mod workflow_cluster;

pub use agent::Agent;
pub use apiserver::ApiServer;
pub use binaries::{bin_dir, binary};
pub use controllers::Controllers;
pub use etcd::Etcd;
pub use etcd_fleet::EtcdFleet;
pub use fixtures::{
    AGENT_COLUMNS, client_with_token, read_logs, runtime, shell_bound_to, workflow_yaml,
};
pub use haproxy::{Backend, HaProxy};
pub use lines::LineReader;
pub use one_agent::OneAgent;
pub use process::{Run, drain, process_gone, run_to_end, send_signal, spawn_announcing, wait_exit};
pub use slothctl::{CTL_DEADLINE, ctl, ctl_bare, ctl_on_a_tty, ctl_stdin, slothctl, slothctl_at};
pub use waits::{http_get, http_get_with, wait_until};
pub use workflow_cluster::{FixtureCluster, WorkflowCluster, sloth_runner_fixture};
