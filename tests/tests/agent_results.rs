//! Task results: a shell TaskRun writes `key=value` lines to
//! `$SLOTH_RESULTS` and the agent records them in `status.results`; an
//! invalid results file fails the TaskRun with reason InvalidResults.

use sloth_sdk::objects::{Payload, TaskRun, TaskRunPhase};
use sloth_tests::OneAgent;

/// Creates a shell TaskRun bound to `a1` and waits until it finished.
fn run(c: &OneAgent, name: &str, script: &str) -> TaskRun {
    let payload = Payload::shell(script);
    c.run(name, payload, None)
}

#[test]
fn results_written_to_sloth_results_are_recorded() {
    let c = OneAgent::start();
    let done = run(
        &c,
        "release",
        "set -e\n\
         test ! -e \"$SLOTH_RESULTS\"\n\
         case \"$SLOTH_RESULTS\" in /*) ;; *) exit 9 ;; esac\n\
         cd /\n\
         echo version=1.2.3 >> \"$SLOTH_RESULTS\"\n\
         printf 'url=http://x/?a=b\\r\\n\\n' >> \"$SLOTH_RESULTS\"\n",
    );
    let status = done.status_or_default();
    assert_eq!(status.phase, TaskRunPhase::Succeeded, "{status:#?}");
    assert_eq!(
        status.results.get("version").map(String::as_str),
        Some("1.2.3")
    );
    assert_eq!(
        status.results.get("url").map(String::as_str),
        Some("http://x/?a=b")
    );
    assert_eq!(status.results.len(), 2);

    // No file: no results. A failed run's valid results are kept.
    let none = run(&c, "quiet", "echo nothing to report").status_or_default();
    assert_eq!(none.phase, TaskRunPhase::Succeeded);
    assert!(none.results.is_empty(), "{none:#?}");
    let failed = run(&c, "partial", "echo step=2 > \"$SLOTH_RESULTS\"; exit 4").status_or_default();
    assert_eq!(failed.phase, TaskRunPhase::Failed);
    assert_eq!(failed.reason, "Error");
    assert_eq!(failed.exit_code, Some(4));
    assert_eq!(failed.results.get("step").map(String::as_str), Some("2"));
}

#[test]
fn an_invalid_results_file_fails_the_taskrun() {
    let c = OneAgent::start();
    let status = run(
        &c,
        "bad",
        "echo ok=1 >> \"$SLOTH_RESULTS\"; echo 'not a result' >> \"$SLOTH_RESULTS\"",
    )
    .status_or_default();
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    assert_eq!(status.reason, "InvalidResults");
    assert!(status.message.contains("line 2"), "{}", status.message);
    assert!(status.message.contains("missing '='"), "{}", status.message);
    assert_eq!(status.exit_code, Some(0));
    assert!(status.results.is_empty());

    let key = run(&c, "badkey", "echo 'bad key=1' > \"$SLOTH_RESULTS\"").status_or_default();
    assert_eq!(key.reason, "InvalidResults");
    assert!(
        key.message.contains("line 1: invalid key"),
        "{}",
        key.message
    );
}

// The lock and gc controllers, with the agent they must not disturb.

mod controllers {
    use std::time::Duration;

    use chrono::Utc;
    use sloth_sdk::duration::Duration as SlothDuration;
    use sloth_sdk::objects::{
        LabelSelector, Lock, LockSpec, Payload, TaskRun, TaskRunPhase, TaskRunSpec, Workflow,
        WorkflowSpec, WorkflowTask,
    };
    use sloth_sdk::{Api, Error, OwnerReference};
    use sloth_tests::{Agent, ApiServer, Controllers, runtime, wait_until};

    const DEADLINE: Duration = Duration::from_secs(30);

    fn task(name: &str, script: &str, selector: Option<(&str, &str)>) -> WorkflowTask {
        WorkflowTask {
            name: name.into(),
            run: Payload::shell(script),
            agent_selector: selector.map(|(k, v)| LabelSelector {
                match_labels: [(k.to_string(), v.to_string())].into(),
                ..LabelSelector::default()
            }),
            ..WorkflowTask::default()
        }
    }

    #[test]
    fn locks_expire_orphans_are_collected_and_finished_workflows_expire() {
        let server = ApiServer::start();
        let rt = runtime();
        let client = server.client_in(&rt);
        let agent = Agent::start(&server, "a1", &["--lease-seconds", "3"]);
        let controllers = Controllers::start(&server, "c1", &["--lease-duration", "3s"]);
        let log = || {
            format!(
                "controllers:\n{}\nagent:\n{}",
                controllers.log(),
                agent.log()
            )
        };

        // A lease nobody renews is expired; its history is kept.
        let locks: Api<LockSpec> = Api::namespaced(client.clone(), "default");
        let now = Utc::now();
        let created = rt
            .block_on(locks.create(&Lock::new(
                "deploy",
                LockSpec {
                    holder_identity: Some("gone-job".into()),
                    lease_duration_seconds: Some(1),
                    acquire_time: Some(now),
                    renew_time: Some(now),
                    lease_transitions: 5,
                },
            )))
            .expect("create lock");
        let freed = wait_until(DEADLINE, || {
            rt.block_on(locks.get("deploy"))
                .ok()
                .filter(|l| l.spec.holder_identity.is_none())
        })
        .unwrap_or_else(|| panic!("the lock never expired\n{}", log()));
        assert_eq!(freed.spec.lease_transitions, 5);
        assert_eq!(freed.spec.renew_time, created.spec.renew_time);

        // An agent whose heartbeat Lock was cleared takes it back (held by
        // its instance id, kept in its work dir).
        let instance =
            std::fs::read_to_string(agent.work_dir().join("instance-id")).expect("instance id");
        let heartbeats: Api<LockSpec> = Api::namespaced(client.clone(), "sloth-system");
        wait_until(DEADLINE, || {
            let mut lock = rt.block_on(heartbeats.get("agent-a1")).ok()?;
            lock.spec.holder_identity = None;
            rt.block_on(heartbeats.replace(&lock)).ok()
        })
        .unwrap_or_else(|| panic!("cannot clear the heartbeat lock\n{}", log()));
        wait_until(DEADLINE, || {
            rt.block_on(heartbeats.get("agent-a1"))
                .ok()
                .filter(|l| l.spec.holder_identity.as_deref() == Some(instance.trim()))
        })
        .unwrap_or_else(|| panic!("the agent never took its lock back\n{}", log()));

        // Deleting a Workflow deletes its TaskRuns, killing running ones.
        let workflows: Api<WorkflowSpec> = Api::namespaced(client.clone(), "default");
        let taskruns: Api<TaskRunSpec> = Api::namespaced(client.clone(), "default");
        let wf = rt
            .block_on(workflows.create(&Workflow::new(
                "stuck",
                WorkflowSpec {
                    tasks: vec![task("never", "true", Some(("role", "nowhere")))],
                    ..WorkflowSpec::default()
                },
            )))
            .expect("create workflow");
        let mut child = TaskRun::new(
            "stuck-child",
            TaskRunSpec {
                agent_name: Some("a1".into()),
                ..TaskRunSpec::shell("sleep 300")
            },
        );
        child.metadata.owner_references = vec![OwnerReference {
            api_version: sloth_sdk::API_VERSION.into(),
            kind: "Workflow".into(),
            name: wf.metadata.name.clone(),
            uid: wf.metadata.uid.clone(),
            controller: None,
        }];
        rt.block_on(taskruns.create(&child))
            .expect("create taskrun");
        wait_until(DEADLINE, || {
            rt.block_on(taskruns.get("stuck-child"))
                .ok()
                .filter(|t| t.status_or_default().phase == TaskRunPhase::Running)
        })
        .unwrap_or_else(|| panic!("the child never ran\n{}", log()));
        rt.block_on(workflows.delete("stuck"))
            .expect("delete workflow");
        wait_until(DEADLINE, || {
            let left = rt.block_on(taskruns.list(&Default::default())).ok()?;
            let owned = left.items.iter().any(|t| {
                t.metadata
                    .owner_references
                    .iter()
                    .any(|o| o.uid == wf.metadata.uid)
            });
            (!owned).then_some(())
        })
        .unwrap_or_else(|| panic!("the workflow's taskruns were never collected\n{}", log()));
        wait_until(DEADLINE, || {
            agent
                .log()
                .contains("was deleted; stopping its run")
                .then_some(())
        })
        .unwrap_or_else(|| panic!("the agent never stopped the child\n{}", log()));

        // A finished Workflow with ttlAfterFinished is deleted.
        let mut quick = Workflow::new(
            "quick",
            WorkflowSpec {
                tasks: vec![task("hello", "echo hi", None)],
                ..WorkflowSpec::default()
            },
        );
        quick.spec.ttl_after_finished = Some(SlothDuration::from_secs(1));
        rt.block_on(workflows.create(&quick))
            .expect("create workflow");
        wait_until(DEADLINE, || {
            matches!(rt.block_on(workflows.get("quick")), Err(Error::NotFound(_))).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "the finished workflow was never deleted: {:#?}\n{}",
                rt.block_on(workflows.get("quick")),
                log()
            )
        });
        // It was the lock and gc controllers that did all this.
        let said = controllers.log();
        for what in [
            "lock expired",
            "deleted a taskrun whose workflow is gone",
            "deleted a finished workflow past its ttlAfterFinished",
        ] {
            assert!(said.contains(what), "no {what:?} in\n{}", log());
        }
    }
}
