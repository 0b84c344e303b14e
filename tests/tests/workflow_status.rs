//! Status writes of a Workflow through the real apiserver: the server
//! checks only the status on the status subresource (the stored spec was
//! checked when it was written), and that takes nothing away: an invalid
//! status is refused naming its field, with the stored object intact; a
//! status write's spec is ignored; a spec change still goes through whole
//! validation.

use std::time::Duration;

use serde_json::{Value, json};
use sloth_sdk::{Client, Error};
use sloth_tests::{ApiServer, runtime};

const DEADLINE: Duration = Duration::from_secs(20);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("deadline passed")
}

fn workflow() -> Value {
    json!({"apiVersion": "sloth.dev/v1", "kind": "Workflow",
    "metadata": {"name": "wf", "namespace": "default"},
    "spec": {"tasks": [
        {"name": "a", "run": {"shell": "true"}},
        {"name": "b", "run": {"shell": "true"}, "dependsOn": ["a"]},
    ]}})
}

async fn stored(client: &Client) -> Value {
    let o = within(client.get("Workflow", "default", "wf"))
        .await
        .expect("get");
    serde_json::to_value(o).expect("encode")
}

#[test]
fn workflow_status_writes_check_the_status_and_keep_the_spec() {
    let server = ApiServer::start();
    let rt = runtime();
    let _enter = rt.enter();
    rt.block_on(async {
        let client = server.client();
        within(client.create(&workflow())).await.expect("create");
        let before = stored(&client).await;

        for (status, field) in [
            (json!({"phase": "Bogus"}), "status.phase"),
            (json!({"phase": "Running", "surprise": 1}), "surprise"),
            (json!({"tasks": {"a": {"phase": "Nope"}}}), "status.tasks"),
        ] {
            let mut write = before.clone();
            write["status"] = status.clone();
            let e = within(client.update_status(&write))
                .await
                .expect_err("an invalid status is refused");
            assert!(
                matches!(&e, Error::Invalid(m) if m.contains(field)),
                "{status}: {e}"
            );
            assert_eq!(stored(&client).await, before, "{status} changed it");
        }

        // A status write without the spec: the status is taken, the stored
        // spec and generation kept.
        let mut write = before.clone();
        write["spec"] = json!({});
        write["status"] =
            json!({"phase": "Running", "tasks": {"a": {"phase": "Running", "attempt": 1}}});
        let written = within(client.update_status(&write))
            .await
            .expect("a valid status is taken");
        let after = serde_json::to_value(written).expect("encode");
        assert_eq!(after["spec"], before["spec"]);
        assert_eq!(
            after["metadata"]["generation"],
            before["metadata"]["generation"]
        );
        assert_eq!(after["status"]["tasks"]["a"]["phase"], "Running");
        assert_eq!(stored(&client).await, after);

        // A spec change through the main endpoint is validated whole.
        let mut update = after.clone();
        update["spec"]["tasks"][1]["dependsOn"] = json!(["missing"]);
        let e = within(client.update(&update))
            .await
            .expect_err("a dependency on no task is refused");
        assert!(
            matches!(&e, Error::Invalid(m) if m.contains("spec.tasks[1].dependsOn")),
            "{e}"
        );
        assert_eq!(stored(&client).await, after);
    });
}
