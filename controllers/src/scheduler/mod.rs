//! The scheduler: binds Pending TaskRuns to agents.

pub mod controller;
pub mod filter;
pub mod policy;
pub mod state;
#[cfg(test)]
mod testing;
