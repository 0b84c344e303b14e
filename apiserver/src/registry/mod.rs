//! The resource registry: admission and storage of objects, their keys,
//! watches and paged lists.

pub mod keys;
pub mod objects;
pub mod paging;
pub mod resources;
pub mod state_writes;
pub mod watch;
