use super::*;

fn object(kind: &str, json: &str) -> pb::Object {
    pb::Object {
        kind: kind.into(),
        json: json.as_bytes().to_vec(),
        ..pb::Object::default()
    }
}

#[test]
fn lists_at_resource_version_0_may_come_from_the_cache() {
    let request = |rv: &str, token: &str| pb::ListRequest {
        resource_version: rv.into(),
        continue_token: token.into(),
        ..pb::ListRequest::default()
    };
    assert_eq!(list_source(&request("", "")).ok(), Some(ListSource::Store));
    assert_eq!(
        list_source(&request("0", "")).ok(),
        Some(ListSource::AnyRecent)
    );
    assert_eq!(
        list_source(&request("0", "5:/k")).ok(),
        Some(ListSource::Store)
    );
    let refused = list_source(&request("17", "")).expect_err("exact revision");
    assert!(refused.to_string().contains("\"17\""), "{refused}");
}

#[test]
fn a_write_is_judged_by_the_names_it_would_be_stored_under() {
    // Duplicate keys: the last wins, for authorization as for storage.
    let target = Target::of(&object(
        "Lock",
        r#"{"kind":"Lock","metadata":{"namespace":"default","name":"x",
            "namespace":"sloth-system","name":"agent-a2"}}"#,
    ));
    assert_eq!(
        (
            target.kind.as_str(),
            target.namespace.as_str(),
            target.name.as_str()
        ),
        ("Lock", "sloth-system", "agent-a2")
    );
    // The body's kind wins over the envelope's; namespaced kinds default.
    let target = Target::of(&object("", r#"{"kind":"taskrun","metadata":{"name":"t"}}"#));
    assert_eq!(
        (target.kind.as_str(), target.namespace.as_str()),
        ("TaskRun", "default")
    );
    // Agents are cluster-scoped whatever the body says.
    let target = Target::of(&object(
        "Agent",
        r#"{"metadata":{"name":"a1","namespace":"default"}}"#,
    ));
    assert_eq!(
        (target.namespace.as_str(), target.name.as_str()),
        ("", "a1")
    );
}
