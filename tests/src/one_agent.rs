//! The smallest cluster a payload test needs: an apiserver (no
//! controllers), one agent `a1` and a client, with TaskRuns bound to `a1`
//! directly.

use std::time::Duration;

use sloth_sdk::duration::Duration as SlothDuration;
use sloth_sdk::objects::{Payload, TaskRun, TaskRunSpec};
use sloth_sdk::{Api, Client};
use tokio::runtime::Runtime;

use crate::{Agent, ApiServer, runtime, wait_until};

/// How long one TaskRun may take to finish.
const DEADLINE: Duration = Duration::from_secs(30);

/// Fields drop in order: the agent is killed first.
pub struct OneAgent {
    pub agent: Agent,
    pub client: Client,
    pub server: ApiServer,
    pub rt: Runtime,
}

impl OneAgent {
    pub fn start() -> Self {
        let server = ApiServer::start();
        let rt = runtime();
        let client = server.client_in(&rt);
        let agent = Agent::start(&server, "a1", &[]);
        Self {
            agent,
            client,
            server,
            rt,
        }
    }

    /// TaskRuns in namespace `default`.
    pub fn api(&self) -> Api<TaskRunSpec> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates TaskRun `name` running `run` on `a1` and waits until it
    /// finished.
    pub fn run(&self, name: &str, run: Payload, timeout: Option<Duration>) -> TaskRun {
        let taskrun = TaskRun::new(
            name,
            TaskRunSpec {
                run,
                agent_name: Some("a1".into()),
                timeout: timeout.map(SlothDuration),
                ..TaskRunSpec::default()
            },
        );
        self.rt
            .block_on(self.api().create(&taskrun))
            .expect("create taskrun");
        self.finished(name)
    }

    /// Waits until TaskRun `name` finished (Succeeded or Failed).
    pub fn finished(&self, name: &str) -> TaskRun {
        let api = self.api();
        wait_until(DEADLINE, || {
            self.rt
                .block_on(api.get(name))
                .ok()
                .filter(|t| t.status_or_default().phase.is_terminal())
        })
        .unwrap_or_else(|| {
            panic!(
                "taskrun {name} never finished; now: {:#?}\nagent log:\n{}",
                self.rt.block_on(api.get(name)),
                self.agent.log()
            )
        })
    }
}
