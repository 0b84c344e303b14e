//! Whose write an agent's write of a StateEntry is: the TaskRun named in
//! `spec.updatedBy` (`TaskRun/NAMESPACE/NAME`, as Lua's `state` module
//! stamps it), which must be in the entry's own namespace and, as
//! [`crate::access::agent_writes`] then checks, bound to the agent. So a TaskRun
//! writes state only in its own namespace, and an agent only for the
//! TaskRuns it runs.

use serde_json::Value;

use crate::access::auth::restriction::HolderTaskRun;

/// The TaskRun on whose behalf `entry` (as requested, or as stored for a
/// delete) is written into `namespace`.
pub fn writer(namespace: &str, entry: &Value) -> Result<HolderTaskRun, String> {
    let updated_by = entry
        .pointer("/spec/updatedBy")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut parts = updated_by.splitn(3, '/');
    let (Some("TaskRun"), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "spec.updatedBy is {updated_by:?}: an agent writes state entries only for a \
             TaskRun bound to it, named as TaskRun/NAMESPACE/NAME"
        ));
    };
    if ns != namespace || name.is_empty() {
        return Err(format!(
            "spec.updatedBy is {updated_by:?}: a TaskRun writes state entries only in its \
             own namespace ({namespace:?} is not)"
        ));
    }
    Ok(HolderTaskRun {
        namespace: ns.to_string(),
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(updated_by: Option<&str>) -> Value {
        json!({"kind": "StateEntry", "spec": {"key": "k", "value": 1, "updatedBy": updated_by}})
    }

    #[test]
    fn the_writer_is_a_taskrun_of_the_entrys_namespace() {
        assert_eq!(
            writer("prod", &entry(Some("TaskRun/prod/deploy-1"))),
            Ok(HolderTaskRun {
                namespace: "prod".into(),
                name: "deploy-1".into()
            })
        );
        let other = writer("prod", &entry(Some("TaskRun/dev/deploy-1"))).expect_err("dev");
        assert!(other.contains("own namespace"), "{other}");
        for bad in [None, Some(""), Some("agent:a1"), Some("TaskRun/prod/")] {
            assert!(writer("prod", &entry(bad)).is_err(), "{bad:?}");
        }
    }
}
