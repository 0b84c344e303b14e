//! Encryption at rest of Secret objects (AES-256-GCM, named rotating keys).

pub mod codec;
pub mod keys;
pub mod rewrite;
pub mod store;

pub use keys::{GENERATED_KEY_FILE, KeyFileError, KeyRing};
pub use store::EncryptingStore;
