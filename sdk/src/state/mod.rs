//! The state store: namespaced key/value entries kept as StateEntry objects
//! (one per key), shared by `slothctl state` and Lua's `state` module.
//!
//! - [`key`]: which keys are valid and the object name each maps to;
//! - [`value`]: values typed on a command line, and how values print;
//! - [`store`]: reads that treat expired entries as absent, and writes
//!   (set, increment, compare-and-swap, delete) that are compare-and-swaps
//!   on the entry's resourceVersion, retried a bounded number of times.

pub mod key;
pub mod store;
pub mod value;

pub use key::{MAX_KEY_BYTES, entry_name, validate_key};
pub use store::{StateError, StateStore};
pub use value::{MAX_VALUE_BYTES, parse_value, render_value, validate_value};
