//! The cluster the workflow-file tests share: `sloth-apiserver
//! --controllers` with real agents and a client. Tests apply workflow files
//! with slothctl, wait for the Workflow to finish and read its TaskRuns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sloth_sdk::objects::workflow::WorkflowPhase;
use sloth_sdk::objects::{TaskRun, TaskRunSpec, Workflow, WorkflowSpec};
use sloth_sdk::well_known::{TASK_LABEL, WORKFLOW_LABEL};
use sloth_sdk::{Api, Client, ListParams};
use tokio::runtime::Runtime;

use crate::{Agent, ApiServer, Run, ctl, runtime, wait_until};

/// A workflow file of tests/fixtures/sloth-runner/.
pub fn sloth_runner_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/sloth-runner")
        .join(name)
}

/// Fields drop in order: the agents are killed before the apiserver.
pub struct WorkflowCluster {
    pub agents: Vec<Agent>,
    pub server: ApiServer,
    pub rt: Runtime,
    pub client: Client,
    /// How long one Workflow may take to finish.
    deadline: Duration,
}

impl WorkflowCluster {
    /// An apiserver running the controllers in process and one agent per
    /// `(name, flags)`, in that order; Workflows get `deadline` to finish.
    pub fn start(agents: &[(&str, &[&str])], deadline: Duration) -> Self {
        let server = ApiServer::start_with(&["--controllers"]);
        let agents = agents
            .iter()
            .map(|(name, flags)| Agent::start(&server, name, flags))
            .collect();
        let rt = runtime();
        let client = server.client_in(&rt);
        Self {
            agents,
            server,
            rt,
            client,
            deadline,
        }
    }

    /// `slothctl apply -f PATH [ARGS]`, run to its end.
    pub fn apply_file(&self, path: &Path, args: &[&str]) -> Run {
        let path = path.to_str().expect("utf-8 path");
        let mut all = vec!["apply", "-f", path];
        all.extend_from_slice(args);
        ctl(&self.server, &all)
    }

    /// Workflow `name` in namespace `default`, if it exists.
    pub fn workflow(&self, name: &str) -> Option<Workflow> {
        let api: Api<WorkflowSpec> = Api::namespaced(self.client.clone(), "default");
        self.rt.block_on(api.get(name)).ok()
    }

    /// Waits for Workflow `name` to finish (a completion time); panics with
    /// its status and the apiserver's log when it does not in time.
    pub fn finished(&self, name: &str) -> Workflow {
        wait_until(self.deadline, || {
            self.workflow(name).filter(|w| {
                w.status
                    .as_ref()
                    .is_some_and(|s| s.completion_time.is_some())
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} never finished: {:#?}\n{}",
                self.workflow(name).map(|w| w.status),
                self.server.log()
            )
        })
    }

    /// Every TaskRun Workflow `name` owns (its tasks' and its hooks'), by name.
    pub fn taskruns_of(&self, name: &str) -> Vec<TaskRun> {
        let taskruns: Api<TaskRunSpec> = Api::namespaced(self.client.clone(), "default");
        self.rt
            .block_on(taskruns.list(&ListParams {
                label_selector: format!("{WORKFLOW_LABEL}={name}"),
                ..ListParams::default()
            }))
            .expect("list taskruns")
            .items
    }

    /// The TaskRuns of Workflow `name`'s tasks by task name (the
    /// `sloth.dev/task` label: the name as written), the last attempt of
    /// each.
    pub fn tasks_of(&self, name: &str) -> BTreeMap<String, TaskRun> {
        let mut runs: BTreeMap<String, TaskRun> = BTreeMap::new();
        for tr in self.taskruns_of(name) {
            let task = tr.metadata.labels[TASK_LABEL].clone();
            if runs
                .get(&task)
                .is_none_or(|kept| kept.spec.attempt < tr.spec.attempt)
            {
                runs.insert(task, tr);
            }
        }
        runs
    }

    /// Waits for Workflow `name` to finish, asserts it ended in `phase`
    /// and returns its tasks' TaskRuns ([`tasks_of`](Self::tasks_of)).
    #[track_caller]
    pub fn ended(&self, name: &str, phase: WorkflowPhase) -> BTreeMap<String, TaskRun> {
        let wf = self.finished(name);
        let runs = self.tasks_of(name);
        assert_eq!(
            wf.status_or_default().phase,
            phase,
            "{name}: {:#?}\n{:#?}",
            wf.status,
            runs.values().map(|t| &t.status).collect::<Vec<_>>()
        );
        runs
    }
}

/// A [`WorkflowCluster`] with one agent `worker-1` (capacity 4) for the
/// sloth-runner fixtures, and the directory their hooks write marker files
/// into (passed as `--param out=DIR`).
pub struct FixtureCluster {
    pub cluster: WorkflowCluster,
    out: tempfile::TempDir,
}

impl FixtureCluster {
    pub fn start(deadline: Duration) -> Self {
        Self {
            cluster: WorkflowCluster::start(&[("worker-1", &["--capacity", "4"])], deadline),
            out: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// `slothctl apply -f FIXTURE --param out=DIR [ARGS]`; asserts exit 0.
    pub fn apply(&self, file: &str, args: &[&str]) {
        let out = format!("out={}", self.out.path().display());
        let mut all = vec!["--param", out.as_str()];
        all.extend_from_slice(args);
        self.cluster
            .apply_file(&sloth_runner_fixture(file), &all)
            .ok();
    }

    /// What a hook wrote into marker file `name`, if it wrote one.
    pub fn marker(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.out.path().join(name)).ok()
    }
}
