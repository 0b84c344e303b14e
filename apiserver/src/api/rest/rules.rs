//! `GET /apis/sloth.dev/v1/selfsubjectrulesreview?namespace=NS`: what the
//! caller may do, computed by the same policy the guard applies
//! ([`crate::access::auth::policy::authorize`]), so that a client (the
//! dashboard) can hide the actions it would be refused.
//!
//! Only unconditional permissions are listed: an agent's rights that depend
//! on the object (a TaskRun bound to it) are not, and `incomplete` says so.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use sloth_sdk::kinds::{KINDS, KindInfo};

use super::Rest;
use super::call::Caller;
use super::query::Params;
use super::status::Failure;
use crate::access::auth::policy::{self, Attributes, Decision, Verb};
use crate::access::auth::{Role, User};
use crate::api::version::API_VERSION;

/// The REST verbs each policy verb grants, on the kind (`""`) or a
/// subresource of it.
const GRANTS: &[(Verb, &str, &[&str])] = &[
    (Verb::Get, "", &["get"]),
    (Verb::List, "", &["list"]),
    (Verb::Watch, "", &["watch"]),
    (Verb::Create, "", &["create"]),
    (Verb::Update, "", &["update", "patch"]),
    (Verb::Delete, "", &["delete"]),
    (Verb::UpdateStatus, "status", &["update", "patch"]),
    (Verb::Logs, "log", &["get"]),
];

pub(super) fn review(rest: &Rest, caller: &Caller, params: &Params) -> Result<Response, Failure> {
    let user = caller.authenticate(&rest.guard)?;
    let namespace = Params::text(&params.namespace);
    let body = json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": API_VERSION,
        "spec": {"namespace": namespace},
        "status": {
            "user": user.name,
            "role": user.role.as_str(),
            "resourceRules": rules(&user, &namespace),
            "incomplete": user.role == Role::Agent,
        },
    });
    Ok(super::objects::json_bytes(
        StatusCode::OK,
        body.to_string().into_bytes(),
    ))
}

/// `[{"verbs": [..], "resources": [..]}]`, resources with the same verbs
/// grouped.
fn rules(user: &User, namespace: &str) -> Vec<Value> {
    let mut by_verbs: BTreeMap<Vec<&str>, Vec<String>> = BTreeMap::new();
    for kind in KINDS {
        let mut granted: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (verb, subresource, rest_verbs) in GRANTS {
            if *verb == Verb::Logs && kind.kind != "TaskRun" {
                continue;
            }
            if allowed(user, kind, *verb, namespace) {
                let resource = match *subresource {
                    "" => kind.plural.to_string(),
                    sub => format!("{}/{sub}", kind.plural),
                };
                granted
                    .entry(resource)
                    .or_default()
                    .extend(rest_verbs.iter());
            }
        }
        for (resource, verbs) in granted {
            by_verbs.entry(verbs).or_default().push(resource);
        }
    }
    by_verbs
        .into_iter()
        .map(|(verbs, resources)| json!({"verbs": verbs, "resources": resources}))
        .collect()
}

fn allowed(user: &User, kind: &KindInfo, verb: Verb, namespace: &str) -> bool {
    let namespace = if kind.namespaced { namespace } else { "" };
    let call = Attributes {
        verb,
        kind: kind.kind,
        namespace,
        name: "",
        field_selector: "",
    };
    policy::authorize(user, &call) == Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verbs_of(rules: &[Value], resource: &str) -> Vec<String> {
        rules
            .iter()
            .filter(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == resource))
            })
            .flat_map(|r| r["verbs"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn a_viewer_reads_and_an_admin_writes() {
        let viewer = User {
            name: "vera".into(),
            role: Role::Viewer,
        };
        let rules = rules(&viewer, "default");
        assert_eq!(verbs_of(&rules, "workflows"), ["get", "list", "watch"]);
        assert_eq!(verbs_of(&rules, "taskruns/log"), ["get"]);
        assert!(verbs_of(&rules, "workflows/status").is_empty());
        let admin = User {
            name: "root".into(),
            role: Role::Admin,
        };
        let rules = super::rules(&admin, "default");
        let verbs = verbs_of(&rules, "agents");
        for verb in ["create", "update", "patch", "delete"] {
            assert!(verbs.iter().any(|v| v == verb), "{verb} in {verbs:?}");
        }
    }

    #[test]
    fn an_operator_may_not_write_system_locks() {
        let operator = User {
            name: "olga".into(),
            role: Role::Operator,
        };
        let system = rules(&operator, sloth_sdk::well_known::SYSTEM_NAMESPACE);
        assert!(!verbs_of(&system, "locks").iter().any(|v| v == "update"));
        let default = rules(&operator, "default");
        assert!(verbs_of(&default, "locks").iter().any(|v| v == "update"));
    }
}
