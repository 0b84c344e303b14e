//! Who may do what: authentication, authorization (the guard), audit,
//! request limits and the rules for agent and secret access.

pub mod agent_writes;
pub mod audit;
pub mod auth;
pub mod guard;
pub mod limits;
pub mod secret_access;
