//! Which agents can take a TaskRun, and why none can when none can.

use std::collections::HashMap;
use std::sync::Arc;

use sloth_sdk::objects::{Agent, AgentPhase, TaskRun};
use sloth_sdk::selector::Labels;

/// An agent that passed every filter, with its current load.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub agent: Arc<Agent>,
    /// Unfinished TaskRuns bound to it.
    pub running: u32,
}

impl Candidate {
    pub fn name(&self) -> &str {
        self.agent.name()
    }

    /// running / capacity, for LeastLoaded.
    pub fn load(&self) -> f64 {
        f64::from(self.running) / f64::from(self.agent.spec.capacity.max(1))
    }
}

/// Why no agent can take a TaskRun now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Infeasible {
    /// Says why, for the `Scheduled` condition.
    pub message: String,
    /// Some matching agent is Ready and not cordoned but full: the TaskRun
    /// only waits for a slot to free.
    pub full: bool,
}

/// The agents that match the TaskRun's selector, are Ready, not cordoned and
/// have free capacity; or a message saying why there are none.
pub fn feasible(
    taskrun: &TaskRun,
    agents: &[Arc<Agent>],
    running: &HashMap<String, u32>,
) -> Result<Vec<Candidate>, String> {
    candidates(taskrun, agents, running).map_err(|e| e.message)
}

/// As [`feasible`], telling also whether the TaskRun only waits for a slot.
pub fn candidates(
    taskrun: &TaskRun,
    agents: &[Arc<Agent>],
    running: &HashMap<String, u32>,
) -> Result<Vec<Candidate>, Infeasible> {
    let selector = taskrun
        .spec
        .agent_selector
        .as_ref()
        .map(Labels::from_selector)
        .unwrap_or_default();
    let matching: Vec<&Arc<Agent>> = agents
        .iter()
        .filter(|a| selector.matches(&a.metadata.labels))
        .collect();
    if matching.is_empty() {
        let message = if agents.is_empty() {
            "no agents are registered".to_string()
        } else if selector.is_empty() {
            "no agent matches".to_string()
        } else {
            format!("no agent matches {selector}")
        };
        return Err(Infeasible {
            message,
            full: false,
        });
    }
    let (mut not_ready, mut cordoned, mut full) = (0, 0, 0);
    let mut candidates = Vec::new();
    for agent in matching.iter().copied() {
        let load = running.get(agent.name()).copied().unwrap_or(0);
        let ready = agent.status.as_ref().map(|s| s.phase) == Some(AgentPhase::Ready);
        if !ready {
            not_ready += 1;
        } else if agent.spec.unschedulable || stopping(agent) {
            cordoned += 1;
        } else if load >= agent.spec.capacity {
            full += 1;
        } else {
            candidates.push(Candidate {
                agent: Arc::clone(agent),
                running: load,
            });
        }
    }
    if candidates.is_empty() {
        let described = if selector.is_empty() {
            String::new()
        } else {
            format!(" ({selector})")
        };
        return Err(Infeasible {
            message: format!(
                "all {} matching agents{described} are unavailable: {full} full, {not_ready} NotReady, {cordoned} cordoned",
                matching.len()
            ),
            full: full > 0,
        });
    }
    Ok(candidates)
}

/// An agent asked to stop (`slothctl agent stop`) drains: like a cordoned
/// one, it gets nothing new.
pub fn stopping(agent: &Agent) -> bool {
    agent
        .metadata
        .annotations
        .contains_key(sloth_sdk::well_known::STOP_ANNOTATION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::{agent, taskrun_with_selector};

    #[test]
    fn filters_by_selector_readiness_cordon_and_capacity() {
        let agents = vec![
            agent("a1", &[("role", "build")], 2, true, false),
            agent("a2", &[("role", "build")], 1, true, false),
            agent("a3", &[("role", "build")], 1, false, false),
            agent("a4", &[("role", "build")], 1, true, true),
            agent("b1", &[("role", "test")], 4, true, false),
        ];
        let running = HashMap::from([("a2".to_string(), 1)]);
        let tr = taskrun_with_selector(&[("role", "build")]);
        let names: Vec<String> = feasible(&tr, &agents, &running)
            .expect("feasible")
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        assert_eq!(names, ["a1"]);
    }

    #[test]
    fn an_agent_asked_to_stop_gets_nothing_new() {
        let mut stopping = agent("a1", &[], 2, true, false);
        Arc::make_mut(&mut stopping).metadata.annotations.insert(
            sloth_sdk::well_known::STOP_ANNOTATION.to_string(),
            "5m".to_string(),
        );
        let agents = vec![stopping];
        let e =
            feasible(&taskrun_with_selector(&[]), &agents, &HashMap::new()).expect_err("stopping");
        assert!(e.contains("1 cordoned"), "{e}");
    }

    #[test]
    fn says_why_nothing_fits() {
        let agents = vec![
            agent("a1", &[("role", "build")], 1, true, false),
            agent("a2", &[("role", "build")], 1, false, false),
        ];
        let nobody = taskrun_with_selector(&[("role", "x")]);
        let e = feasible(&nobody, &agents, &HashMap::new()).expect_err("no match");
        assert_eq!(e, "no agent matches role=x");
        let busy = HashMap::from([("a1".to_string(), 1)]);
        let e = feasible(&taskrun_with_selector(&[("role", "build")]), &agents, &busy)
            .expect_err("all busy");
        assert_eq!(
            e,
            "all 2 matching agents (role=build) are unavailable: 1 full, 1 NotReady, 0 cordoned"
        );
        let e = feasible(&nobody, &[], &HashMap::new()).expect_err("empty");
        assert_eq!(e, "no agents are registered");
        let e = candidates(&taskrun_with_selector(&[("role", "build")]), &agents, &busy)
            .expect_err("all busy");
        assert!(e.full, "a1 is Ready and full: a slot will free");
        let e = candidates(&nobody, &agents, &HashMap::new()).expect_err("no match");
        assert!(!e.full);
        let idle = HashMap::new();
        let only_not_ready = [agents[1].clone()];
        let e = candidates(
            &taskrun_with_selector(&[("role", "build")]),
            &only_not_ready,
            &idle,
        )
        .expect_err("NotReady");
        assert!(!e.full);
    }
}
