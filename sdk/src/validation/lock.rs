//! Validation of Locks.

use super::metadata::validate_envelope;
use super::{FieldErrors, Validate};
use crate::objects::LockSpec;
use crate::resource::Object;

impl Validate for LockSpec {
    /// Any change of a valid object is valid: nothing is immutable.
    const CHECKS_UPDATES: bool = false;

    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        if object.spec.lease_duration_seconds == Some(0) {
            errs.push(
                "spec.leaseDurationSeconds",
                "must be at least 1 (a zero lease would expire as it is taken)",
            );
        }
        errs.into_result()
    }
}

#[cfg(test)]
mod tests {

    use crate::objects::LockSpec;
    use crate::resource::Object;
    use crate::validation::Validate;
    use crate::validation::testing::*;

    #[test]
    fn lock_lease_duration_is_positive() {
        let mut o = Object::new("l", LockSpec::default());
        o.spec.lease_duration_seconds = Some(0);
        assert_eq!(
            fields(LockSpec::validate(&o)),
            ["spec.leaseDurationSeconds"]
        );
    }
}
