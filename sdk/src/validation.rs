//! Validation shared by slothctl (before sending) and the apiserver (admission).
//! Every error names the field path it is about, e.g. `spec.tasks[2].dependsOn[0]`.

use std::fmt;

use crate::resource::{Object, Spec};

/// One thing wrong with an object, at a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path with indices, e.g. `metadata.labels` or `spec.tasks[2].name`;
    /// empty when the object as a whole is wrong.
    pub field: String,
    /// What is wrong, for humans (`must be a DNS label`).
    pub message: String,
}

impl FieldError {
    /// An error at `field` (a path such as `spec.tasks[2].name`).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// All that is wrong with an object (never empty when returned as an error).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// Records `message` about `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl From<FieldError> for FieldErrors {
    fn from(e: FieldError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// Per-kind validation of whole objects and of changes to them.
pub trait Validate: Spec {
    /// Checks an object as a user or controller submits it.
    fn validate(object: &Object<Self>) -> Result<(), FieldErrors>;

    /// Checks a change from the stored object to a new one.
    fn validate_update(_old: &Object<Self>, _new: &Object<Self>) -> Result<(), FieldErrors> {
        Ok(())
    }

    /// False for kinds whose [`Validate::validate_update`] accepts every
    /// change: an update then skips decoding the stored and the new object
    /// once more just to call it (a Lock renewal, thousands a second). True
    /// by default, so that a kind which gains update rules cannot lose them.
    const CHECKS_UPDATES: bool = true;
}

mod agent;
mod artifacts;
mod event;
mod lock;
mod taskrun;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod workflow;

mod common;
mod cron;
mod dag;
pub mod limits;
mod metadata;
pub mod names;
mod state;
pub use cron::{MAX_CRONWORKFLOW_NAME_LEN, MAX_STACK_HISTORY};
mod secret;
pub(crate) use secret::admit as admit_secret;
