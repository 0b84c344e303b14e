//! Workflows end to end: an apiserver, `sloth-controllers` and real agents
//! drive DAGs of shell tasks; each test checks what the acceptance of the
//! workflow issue names, from the objects and the tasks' own records.

use std::collections::BTreeMap;
use std::time::Duration;

use sloth_sdk::objects::workflow::{TaskPhase, WorkflowPhase};
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunSpec, Workflow, WorkflowSpec};
use sloth_sdk::{Api, Client, ListParams};
use sloth_tests::{
    Agent, ApiServer, Controllers, run_to_end, runtime, slothctl, wait_until, workflow_yaml,
};
use tokio::runtime::Runtime;

const DEADLINE: Duration = Duration::from_secs(60);

struct Cluster {
    agents: Vec<Agent>,
    controllers: Vec<Controllers>,
    client: Client,
    rt: Runtime,
    server: ApiServer,
}

/// Short leases so that losses are noticed within seconds.
const CONTROLLER_ARGS: &[&str] = &["--lease-duration", "3s", "--agent-lost-grace", "1s"];

impl Cluster {
    /// An apiserver, one `sloth-controllers`, and agents `a1..aN` with
    /// capacity 4 each and a 3 s heartbeat lease.
    fn start(agents: usize) -> Self {
        let server = ApiServer::start();
        let rt = runtime();
        let client = server.client_in(&rt);
        let mut cluster = Self {
            agents: Vec::new(),
            controllers: Vec::new(),
            client,
            rt,
            server,
        };
        cluster.add_controllers("c1");
        for i in 1..=agents {
            cluster.agents.push(Agent::start(
                &cluster.server,
                &format!("a{i}"),
                &[
                    "--capacity",
                    "4",
                    "--lease-seconds",
                    "3",
                    "--labels",
                    "pool=main",
                ],
            ));
        }
        cluster
    }

    fn add_controllers(&mut self, id: &str) {
        self.controllers
            .push(Controllers::start(&self.server, id, CONTROLLER_ARGS));
    }

    fn apply(&self, yaml: &str) {
        let mut cmd = slothctl(&self.server);
        cmd.args(["apply", "-f", "-"]);
        run_to_end(cmd, Some(yaml), DEADLINE).ok();
    }

    /// Applies Workflow `name` whose `spec.tasks` list is `tasks` (YAML).
    fn apply_tasks(&self, name: &str, tasks: &str) {
        self.apply(&workflow_yaml(name, &format!("  tasks:{tasks}")));
    }

    /// Applies Workflow `doomed` with `tasks` (one named `long`) and waits
    /// until `doomed-long-1` runs.
    fn start_doomed(&self, tasks: &str) -> TaskRun {
        self.apply_tasks("doomed", tasks);
        self.wait_taskrun("doomed", "doomed-long-1", "ran", |t| {
            status(t).phase == TaskRunPhase::Running
        })
    }

    /// Runs `slothctl ARGS`, which must succeed.
    fn ctl(&self, args: &[&str]) {
        let mut cmd = slothctl(&self.server);
        cmd.args(args);
        run_to_end(cmd, None, DEADLINE).ok();
    }

    fn workflow(&self, name: &str) -> Option<Workflow> {
        let api: Api<WorkflowSpec> = Api::namespaced(self.client.clone(), "default");
        self.rt.block_on(api.get(name)).ok()
    }

    fn taskruns(&self, workflow: &str) -> BTreeMap<String, TaskRun> {
        let api: Api<TaskRunSpec> = Api::namespaced(self.client.clone(), "default");
        let params = ListParams {
            label_selector: format!("sloth.dev/workflow={workflow}"),
            ..ListParams::default()
        };
        self.rt
            .block_on(api.list(&params))
            .map(|l| {
                l.items
                    .into_iter()
                    .map(|t| (t.metadata.name.clone(), t))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn logs(&self) -> String {
        let mut out = format!("--- apiserver\n{}", self.server.log());
        for (i, c) in self.controllers.iter().enumerate() {
            out.push_str(&format!("\n--- controllers {i}\n{}", c.log()));
        }
        for a in &self.agents {
            out.push_str(&format!("\n--- agent {}\n{}", a.name(), a.log()));
        }
        out
    }

    /// Waits until the workflow satisfies `pred`.
    fn wait_workflow(&self, name: &str, what: &str, pred: impl Fn(&Workflow) -> bool) -> Workflow {
        wait_until(DEADLINE, || self.workflow(name).filter(|w| pred(w))).unwrap_or_else(|| {
            panic!(
                "workflow {name} never {what}; now: {:#?}\ntaskruns: {:#?}\n{}",
                self.workflow(name).and_then(|w| w.status),
                self.taskruns(name)
                    .values()
                    .map(|t| (&t.metadata.name, &t.status))
                    .collect::<Vec<_>>(),
                self.logs()
            )
        })
    }

    fn finished(&self, name: &str) -> Workflow {
        self.wait_workflow(name, "finished", |w| {
            matches!(
                w.status_or_default().phase,
                WorkflowPhase::Succeeded | WorkflowPhase::Failed | WorkflowPhase::Cancelled
            )
        })
    }

    fn wait_taskrun(
        &self,
        workflow: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&TaskRun) -> bool,
    ) -> TaskRun {
        wait_until(DEADLINE, || {
            self.taskruns(workflow).remove(name).filter(|t| pred(t))
        })
        .unwrap_or_else(|| panic!("taskrun {name} never {what}\n{}", self.logs()))
    }
}

fn status(tr: &TaskRun) -> sloth_sdk::objects::TaskRunStatus {
    tr.status.clone().unwrap_or_default()
}

/// Seconds since the epoch as the task itself recorded them.
fn recorded(tr: &TaskRun, key: &str) -> f64 {
    let value = status(tr).results.get(key).cloned().unwrap_or_default();
    value
        .parse()
        .unwrap_or_else(|_| panic!("{} recorded {key}={value:?}", tr.metadata.name))
}

/// A task that records its start and end (as results) around `sleep`.
fn timed(sleep: &str) -> String {
    format!(
        "echo start=$(date +%s.%N) >> \"$SLOTH_RESULTS\"; sleep {sleep}; echo end=$(date +%s.%N) >> \"$SLOTH_RESULTS\""
    )
}

#[test]
fn a_diamond_runs_in_order_with_the_middle_tasks_in_parallel() {
    let cluster = Cluster::start(2);
    let body = timed("1");
    cluster.apply_tasks(
        "diamond",
        &format!(
            r#"
    - {{name: a, run: {{shell: '{body}'}}}}
    - {{name: b, dependsOn: [a], run: {{shell: '{body}'}}}}
    - {{name: c, dependsOn: [a], run: {{shell: '{body}'}}}}
    - {{name: d, dependsOn: [b, c], run: {{shell: '{body}'}}}}
"#
        ),
    );
    let wf = cluster.finished("diamond");
    let st = wf.status_or_default();
    assert_eq!(
        st.phase,
        WorkflowPhase::Succeeded,
        "{st:#?}\n{}",
        cluster.logs()
    );
    let runs = cluster.taskruns("diamond");
    assert_eq!(runs.len(), 4, "one TaskRun per task: {:?}", runs.keys());
    let t = |task: &str, key: &str| recorded(&runs[&format!("diamond-{task}-1")], key);
    assert!(t("a", "end") <= t("b", "start") && t("a", "end") <= t("c", "start"));
    assert!(
        t("b", "start") < t("c", "end") && t("c", "start") < t("b", "end"),
        "b and c overlap"
    );
    assert!(t("d", "start") >= t("b", "end") && t("d", "start") >= t("c", "end"));
    for task in ["a", "b", "c", "d"] {
        assert_eq!(st.tasks[task].phase, TaskPhase::Succeeded);
        assert_eq!(
            st.tasks[task].task_run.as_deref(),
            Some(format!("diamond-{task}-1").as_str())
        );
    }
}

#[test]
fn a_failing_task_is_retried_to_its_limit_then_fails_and_skips_downstream() {
    let cluster = Cluster::start(1);
    cluster.apply_tasks(
        "flaky",
        r#"
    - name: broken
      run: {shell: 'echo attempt; exit 3'}
      retries: {limit: 2, backoff: {duration: 100ms}}
    - {name: after, dependsOn: [broken], run: {shell: 'true'}}
"#,
    );
    let wf = cluster.finished("flaky");
    let st = wf.status_or_default();
    assert_eq!(st.phase, WorkflowPhase::Failed);
    assert_eq!(st.tasks["broken"].phase, TaskPhase::Failed);
    assert_eq!(st.tasks["broken"].attempt, 3);
    assert_eq!(st.tasks["after"].phase, TaskPhase::Skipped);
    let runs = cluster.taskruns("flaky");
    let names: Vec<&String> = runs.keys().collect();
    assert_eq!(
        names,
        ["flaky-broken-1", "flaky-broken-2", "flaky-broken-3"]
    );
    for tr in runs.values() {
        assert_eq!(status(tr).phase, TaskRunPhase::Failed);
        assert_eq!(status(tr).exit_code, Some(3));
    }
}

#[test]
fn a_task_timeout_fails_the_taskrun_and_the_workflow_within_seconds() {
    let cluster = Cluster::start(1);
    cluster.apply_tasks(
        "slow",
        r#"
    - {name: hang, timeout: 2s, run: {shell: 'sleep 120'}}
"#,
    );
    let wf = cluster.finished("slow");
    let st = wf.status_or_default();
    assert_eq!(st.phase, WorkflowPhase::Failed);
    let elapsed = st.completion_time.expect("ok") - st.start_time.expect("ok");
    assert!(elapsed < chrono::Duration::seconds(20), "took {elapsed}");
    let tr = &cluster.taskruns("slow")["slow-hang-1"];
    assert_eq!(status(tr).reason, "TimedOut");
    assert_eq!(st.tasks["hang"].reason, "TimedOut");
}

#[test]
fn cancel_kills_the_running_task_and_skips_the_rest() {
    let cluster = Cluster::start(1);
    let tr = cluster.start_doomed(
        r#"
    - {name: long, run: {shell: 'echo $$ >> "$SLOTH_RESULTS.pid"; sleep 120'}}
    - {name: next, dependsOn: [long], run: {shell: 'true'}}
"#,
    );
    let agent = &cluster.agents[0];
    let pid_file = agent
        .work_dir()
        .join("default")
        .join(tr.metadata.name.as_str())
        .join("results.pid");
    let pid: u32 = wait_until(DEADLINE, || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
    .unwrap_or_else(|| {
        panic!(
            "the task never wrote {}\n{}",
            pid_file.display(),
            cluster.logs()
        )
    });
    cluster.ctl(&["cancel", "workflow", "doomed"]);
    let wf = cluster.finished("doomed");
    let st = wf.status_or_default();
    assert_eq!(st.phase, WorkflowPhase::Cancelled);
    assert_eq!(st.tasks["next"].phase, TaskPhase::Skipped);
    let tr = &cluster.taskruns("doomed")["doomed-long-1"];
    assert_eq!(status(tr).reason, "Cancelled");
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    wait_until(DEADLINE, || (!proc_dir.exists()).then_some(())).unwrap_or_else(|| {
        panic!(
            "the cancelled task's shell {pid} still runs\n{}",
            cluster.logs()
        )
    });
}

#[test]
fn results_flow_from_one_task_to_the_next() {
    let cluster = Cluster::start(1);
    cluster.apply(
        r#"
apiVersion: sloth.dev/v1
kind: Workflow
metadata: {name: relay}
spec:
  params: {target: staging}
  tasks:
    - {name: build, run: {shell: 'echo version=1.2.3 >> "$SLOTH_RESULTS"'}}
    - name: deploy
      run: {shell: 'echo deploying $(tasks.build.results.version) to $(params.target)'}
"#,
    );
    let wf = cluster.finished("relay");
    assert_eq!(wf.status_or_default().phase, WorkflowPhase::Succeeded);
    let runs = cluster.taskruns("relay");
    let build = &runs["relay-build-1"];
    assert_eq!(status(build).results["version"], "1.2.3");
    let deploy = &runs["relay-deploy-1"];
    assert_eq!(
        deploy.spec.run.shell.as_deref(),
        Some("echo deploying 1.2.3 to staging")
    );
    let tail = status(deploy).log_tail.unwrap_or_default();
    assert!(tail.contains("deploying 1.2.3 to staging"), "{tail:?}");
}

#[test]
fn a_task_lock_keeps_two_workflows_critical_tasks_apart() {
    let cluster = Cluster::start(2);
    let body = timed("1.5");
    for name in ["one", "two"] {
        cluster.apply_tasks(
            name,
            &format!(
                r#"
    - {{name: critical, locks: [deploy-lock], run: {{shell: '{body}'}}}}
"#
            ),
        );
    }
    let mut spans = Vec::new();
    for name in ["one", "two"] {
        let wf = cluster.finished(name);
        assert_eq!(
            wf.status_or_default().phase,
            WorkflowPhase::Succeeded,
            "{name}"
        );
        let tr = &cluster.taskruns(name)[&format!("{name}-critical-1")];
        spans.push((recorded(tr, "start"), recorded(tr, "end")));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        spans[0].1 <= spans[1].0,
        "the critical sections overlap: {spans:?}"
    );
}

#[test]
fn a_task_on_a_killed_agent_is_agent_lost_and_retried_on_the_other_agent() {
    let mut cluster = Cluster::start(2);
    cluster.apply_tasks(
        "survivor",
        r#"
    - name: work
      retries: {limit: 1}
      run: {shell: 'if [ "$SLOTH_TASKRUN" = survivor-work-1 ]; then sleep 30; fi; echo done on $SLOTH_AGENT'}
"#,
    );
    let first = cluster.wait_taskrun("survivor", "survivor-work-1", "ran", |t| {
        status(t).phase == TaskRunPhase::Running
    });
    let victim = status(&first).agent.expect("running on an agent");
    let index = cluster
        .agents
        .iter()
        .position(|a| a.name() == victim)
        .expect("known agent");
    cluster.agents[index].kill9();
    let wf = cluster.finished("survivor");
    let st = wf.status_or_default();
    assert_eq!(
        st.phase,
        WorkflowPhase::Succeeded,
        "{st:#?}\n{}",
        cluster.logs()
    );
    let runs = cluster.taskruns("survivor");
    assert_eq!(status(&runs["survivor-work-1"]).reason, "AgentLost");
    let second = &runs["survivor-work-2"];
    assert_eq!(status(second).phase, TaskRunPhase::Succeeded);
    let other = status(second).agent.expect("ran somewhere");
    assert_ne!(other, victim, "the retry ran on the lost agent");
    // The lost agent comes back: it must neither finish nor re-run attempt 1.
    cluster.agents[index].start_again();
    let again = &cluster.taskruns("survivor")["survivor-work-1"];
    assert_eq!(status(again).reason, "AgentLost");
    assert_eq!(cluster.taskruns("survivor").len(), 2);
}

#[test]
fn deleting_a_workflow_removes_its_taskruns() {
    let cluster = Cluster::start(1);
    cluster.start_doomed(
        r#"
    - {name: quick, run: {shell: 'true'}}
    - {name: long, dependsOn: [quick], run: {shell: 'sleep 120'}}
"#,
    );
    cluster.ctl(&["delete", "workflow", "doomed"]);
    wait_until(DEADLINE, || {
        cluster.taskruns("doomed").is_empty().then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "taskruns left: {:?}\n{}",
            cluster.taskruns("doomed").keys(),
            cluster.logs()
        )
    });
}

#[test]
fn the_workflow_completes_when_the_leading_controller_is_killed_midway() {
    let mut cluster = Cluster::start(2);
    cluster.add_controllers("c2");
    let marks = tempfile::tempdir().expect("temp dir");
    let ledger = marks.path().join("ran");
    let body = |task: &str| format!("echo {task} >> {}; sleep 1", ledger.display());
    cluster.apply_tasks(
        "relay",
        &format!(
            r#"
    - {{name: s1, run: {{shell: '{}'}}}}
    - {{name: s2, dependsOn: [s1], run: {{shell: '{}'}}}}
    - {{name: s3, dependsOn: [s2], run: {{shell: '{}'}}}}
    - {{name: s4, dependsOn: [s3], run: {{shell: '{}'}}}}
"#,
            body("s1"),
            body("s2"),
            body("s3"),
            body("s4")
        ),
    );
    cluster.wait_taskrun("relay", "relay-s2-1", "was created", |_| true);
    let leader = wait_until(DEADLINE, || {
        let api: Api<sloth_sdk::objects::LockSpec> =
            Api::namespaced(cluster.client.clone(), "sloth-system");
        cluster
            .rt
            .block_on(api.get("sloth-controllers"))
            .ok()
            .and_then(|l| l.spec.holder_identity)
    })
    .expect("a leader");
    let index = if leader == "c1" { 0 } else { 1 };
    cluster.controllers[index].kill9();
    let wf = cluster.finished("relay");
    assert_eq!(
        wf.status_or_default().phase,
        WorkflowPhase::Succeeded,
        "{}",
        cluster.logs()
    );
    let ran = std::fs::read_to_string(&ledger).expect("ledger");
    let mut lines: Vec<&str> = ran.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["s1", "s2", "s3", "s4"],
        "every task ran exactly once"
    );
    assert_eq!(cluster.taskruns("relay").len(), 4);
}
