//! Sloth's controllers: they reconcile desired state through the API.
#![forbid(unsafe_code)]

pub mod lifecycle;
pub mod scheduler;
