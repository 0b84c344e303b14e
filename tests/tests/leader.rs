//! Leader election between two real `sloth-controllers` processes: exactly
//! one acts, and when it dies the other takes over within the lease.

use std::time::Duration;

use sloth_sdk::objects::{LabelSelector, LockSpec, Payload, TaskRun, TaskRunPhase, TaskRunSpec};
use sloth_sdk::{Api, Client};
use sloth_tests::{Agent, ApiServer, Controllers, runtime, wait_until};
use tokio::runtime::Runtime;

const DEADLINE: Duration = Duration::from_secs(30);

fn holder(rt: &Runtime, client: &Client) -> Option<String> {
    let locks: Api<LockSpec> = Api::namespaced(client.clone(), "sloth-system");
    rt.block_on(locks.get("sloth-controllers"))
        .ok()
        .and_then(|l| l.spec.holder_identity)
}

fn run_to_success(rt: &Runtime, client: &Client, name: &str) -> TaskRun {
    let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), "default");
    let tr = TaskRun::new(
        name,
        TaskRunSpec {
            run: Payload::shell("true"),
            // A selector, so that only a scheduler can bind it.
            agent_selector: Some(LabelSelector {
                match_labels: [("role".to_string(), "w".to_string())].into(),
                ..LabelSelector::default()
            }),
            ..TaskRunSpec::default()
        },
    );
    rt.block_on(api.create(&tr)).expect("create");
    wait_until(DEADLINE, || {
        rt.block_on(api.get(name))
            .ok()
            .filter(|t| t.status_or_default().phase == TaskRunPhase::Succeeded)
    })
    .unwrap_or_else(|| panic!("{name} never succeeded: {:#?}", rt.block_on(api.get(name))))
}

#[test]
fn one_leader_acts_and_the_other_takes_over_when_it_dies() {
    let server = ApiServer::start();
    let rt = runtime();
    let client = server.client_in(&rt);
    let _agent = Agent::start(&server, "w1", &["--labels", "role=w", "--capacity", "2"]);
    let lease = ["--lease-duration", "3s"];
    let mut c1 = Controllers::start(&server, "c1", &lease);
    let mut c2 = Controllers::start(&server, "c2", &lease);

    let first = wait_until(DEADLINE, || holder(&rt, &client)).expect("nobody leads");
    assert!(first == "c1" || first == "c2", "unexpected holder {first}");
    run_to_success(&rt, &client, "before");

    let (leader, follower, survivor_id) = if first == "c1" {
        (&mut c1, &c2, "c2")
    } else {
        (&mut c2, &c1, "c1")
    };
    // Only the leader acted.
    assert!(
        !follower.log().contains("bound"),
        "the follower scheduled:\n{}",
        follower.log()
    );
    leader.kill9();
    let took_over = wait_until(DEADLINE, || {
        holder(&rt, &client).filter(|h| h == survivor_id)
    });
    assert!(
        took_over.is_some(),
        "{survivor_id} never took over; its log:\n{}",
        follower.log()
    );
    let after = run_to_success(&rt, &client, "after");
    assert_eq!(after.spec.agent_name.as_deref(), Some("w1"));
}
