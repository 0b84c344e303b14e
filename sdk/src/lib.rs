//! Sloth's SDK: API object types, validation, the gRPC client and the
//! watch/controller runtime.

// Every public item is documented (clippy -D warnings makes this an error
// in CI). Set here: sdk/Cargo.toml's `[lints] workspace = true` cannot be
// combined with a crate's own `[lints.rust]` table.
#![warn(missing_docs)]

pub mod backoff;
pub mod blob;
pub mod client;
#[cfg(feature = "cli")]
pub mod credentials;
pub mod dag;
pub mod duration;
#[cfg(feature = "cli")]
pub mod env_flags;
pub mod error;
pub mod events;
pub mod kinds;
pub mod lease;
pub mod logs_auth;
#[cfg(feature = "lua")]
pub mod lua;
pub mod meta;
pub mod object_name;
pub mod objects;
pub mod resource;
pub mod role;
pub mod runtime;
pub mod schedule;
#[cfg(feature = "schema")]
pub mod schema;
pub mod selector;
pub mod state;
pub mod strategy;
#[cfg(feature = "telemetry")]
pub mod telemetry;
pub mod tls;
pub mod validation;
pub mod watcher;
pub mod well_known;

pub use client::{
    Api, Client, ClientOptions, ListParams, LogOptions, ObjectList, WatchEvent, WatchParams,
};
pub use error::Error;
pub use meta::{API_VERSION, Condition, DEFAULT_NAMESPACE, ObjectMeta, OwnerReference, Time};
pub use resource::{DynamicObject, Object, Spec};
