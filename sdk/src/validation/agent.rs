//! Validation of Agents: capacity, address and taints.

use super::common::check;
use super::limits::MAX_AGENT_CAPACITY;
use super::metadata::validate_envelope;
use super::names::{self, shown};
use super::{FieldErrors, Validate};
use crate::objects::AgentSpec;
use crate::resource::Object;

impl Validate for AgentSpec {
    /// Any change of a valid object is valid: nothing is immutable.
    const CHECKS_UPDATES: bool = false;

    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        if !object.metadata.namespace.is_empty() {
            errs.push(
                "metadata.namespace",
                format!(
                    "must be empty: Agents are cluster-scoped (is {})",
                    shown(&object.metadata.namespace)
                ),
            );
        }
        let spec = &object.spec;
        if !spec.address.is_empty() {
            // `https://` marks an agent whose logs port serves TLS.
            let host_port = spec
                .address
                .strip_prefix("https://")
                .unwrap_or(&spec.address);
            check(
                &mut errs,
                "spec.address",
                host_port,
                names::validate_host_port,
            );
        }
        if spec.capacity == 0 {
            errs.push(
                "spec.capacity",
                "must be at least 1 (cordon the agent to stop new work instead)",
            );
        } else if spec.capacity > MAX_AGENT_CAPACITY {
            errs.push(
                "spec.capacity",
                format!(
                    "must be at most {MAX_AGENT_CAPACITY} (is {})",
                    spec.capacity
                ),
            );
        }
        for (i, taint) in spec.taints.iter().enumerate() {
            let at = format!("spec.taints[{i}]");
            check(
                &mut errs,
                format!("{at}.key"),
                &taint.key,
                names::validate_label_key,
            );
            check(
                &mut errs,
                format!("{at}.value"),
                &taint.value,
                names::validate_label_value,
            );
        }
        errs.into_result()
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::objects::{AgentSpec, Taint};

    use crate::validation::Validate;
    use crate::validation::testing::*;

    // ---- Agent and Lock ----

    #[test]
    fn agent_capacity_bounds() {
        assert_eq!(
            only_error(&agent(0)),
            "spec.capacity: must be at least 1 (cordon the agent to stop new work instead)"
        );
        assert_eq!(
            fields(AgentSpec::validate(&agent(MAX_AGENT_CAPACITY + 1))),
            ["spec.capacity"]
        );
    }

    #[test]
    fn agent_is_cluster_scoped() {
        let mut o = agent(1);
        o.metadata.namespace = "default".into();
        assert_eq!(
            only_error(&o),
            "metadata.namespace: must be empty: Agents are cluster-scoped (is \"default\")"
        );
    }

    #[test]
    fn agent_address_and_taints() {
        let mut o = agent(1);
        o.spec.address = String::new();
        assert_eq!(fields(AgentSpec::validate(&o)), Vec::<String>::new());
        for bad in ["nohost", "host:99999", "http://host:80"] {
            o.spec.address = bad.into();
            assert_eq!(fields(AgentSpec::validate(&o)), ["spec.address"], "{bad}");
        }
        o.spec.address = "https://10.0.0.5:7000".into();
        assert_eq!(fields(AgentSpec::validate(&o)), Vec::<String>::new());
        o.spec.address = "[::1]:7000".into();
        o.spec.taints = vec![
            Taint {
                key: "sloth.dev/spot".into(),
                value: "true".into(),
                effect: "NoSchedule".into(),
            },
            Taint {
                key: "bad key".into(),
                value: "-x".into(),
                effect: String::new(),
            },
        ];
        assert_eq!(
            fields(AgentSpec::validate(&o)),
            ["spec.taints[1].key", "spec.taints[1].value"]
        );
    }
}
