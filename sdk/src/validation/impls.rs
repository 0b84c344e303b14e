//! Validation rules per kind. (Placeholder: filled in with the full rule set.)

use super::{FieldErrors, Validate};
use crate::objects::{AgentSpec, LockSpec, TaskRunSpec, WorkflowSpec};
use crate::resource::Object;

impl Validate for AgentSpec {
    fn validate(_object: &Object<Self>) -> Result<(), FieldErrors> {
        Ok(())
    }
}

impl Validate for LockSpec {
    fn validate(_object: &Object<Self>) -> Result<(), FieldErrors> {
        Ok(())
    }
}

impl Validate for TaskRunSpec {
    fn validate(_object: &Object<Self>) -> Result<(), FieldErrors> {
        Ok(())
    }
}

impl Validate for WorkflowSpec {
    fn validate(_object: &Object<Self>) -> Result<(), FieldErrors> {
        Ok(())
    }
}
