//! What the scheduler knows between decisions, kept up to date event by
//! event: agent loads, bindings made but not yet seen in the cache, and the
//! TaskRuns waiting for room.
//!
//! Counting loads from the whole cache on every decision made each bind
//! O(cached TaskRuns), and waking every cached TaskRun when a slot freed
//! made each finished TaskRun cost a pass over the backlog. Here a decision
//! costs O(agents) and a freed slot wakes one waiting TaskRun.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sloth_sdk::objects::{Agent, AgentPhase, AgentSpec, TaskRun, TaskRunPhase};
use sloth_sdk::runtime::{ObjectRef, Store};
use sloth_sdk::selector::Labels;
use sloth_sdk::watcher::Event;
use tokio::sync::mpsc::UnboundedSender;

use super::filter::candidates;
use super::policy::Placer;
use sloth_sdk::well_known::WORKFLOW_LABEL;

/// At most this many waiting TaskRuns are looked at per freed slot, so that
/// a long queue of TaskRuns for other agents cannot make a slot expensive
/// (those are still woken by agent changes and the periodic recheck).
const WAKE_SCAN_LIMIT: usize = 512;

/// A queue of TaskRuns waiting for an agent counts as moving while one of
/// the agents freed a slot this recently.
pub const MOVING_WINDOW: Duration = Duration::from_secs(1);

/// One cached TaskRun, as far as placement cares.
#[derive(Debug)]
struct Entry {
    /// `spec.agentName` as the cache has it.
    bound: Option<String>,
    unfinished: bool,
    /// Unbound and Pending: the scheduler's to place.
    pending: bool,
    group: Option<String>,
    /// Order of first sight, so that waiting TaskRuns wake oldest first.
    seq: u64,
    /// When the scheduler first saw it (a clock no other host can skew).
    seen: Instant,
}

impl Entry {
    fn of(tr: &TaskRun, seq: u64, seen: Instant) -> Self {
        let phase = tr.phase();
        Self {
            bound: tr.spec.agent_name.clone(),
            unfinished: !phase.is_terminal(),
            pending: tr.spec.agent_name.is_none() && phase == TaskRunPhase::Pending,
            group: tr.metadata.labels.get(WORKFLOW_LABEL).cloned(),
            seq,
            seen,
        }
    }
}

/// What to do with a Pending TaskRun.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// A binding to this agent is assumed (counted); write it, and call
    /// [`State::forget_binding`] if the write fails.
    Bind(String),
    /// Nothing fits; it waits (parked) until room frees or agents change.
    Unschedulable(String),
    /// Nothing fits only because the agents that could take it are full; it
    /// waits (parked) for a slot. `waited`: how long it has been waiting
    /// (since its creation, or since the scheduler first saw it if that is
    /// longer). `moving`: a slot freed on a matching agent within
    /// [`MOVING_WINDOW`], i.e. it waits in a queue that drains.
    Full {
        message: String,
        waited: Duration,
        moving: bool,
    },
    /// A binding of it was already made; the cache has not shown it yet.
    AlreadyBound,
}

/// Placement state shared by the scheduler's reconciles and its watch taps.
pub struct State {
    agents: Store<AgentSpec>,
    wake: UnboundedSender<ObjectRef>,
    placer: Placer,
    entries: HashMap<ObjectRef, Entry>,
    next_seq: u64,
    /// Bindings made (or being written) that the cache does not show yet;
    /// counted in the loads so that concurrent decisions never over-commit.
    assumed: HashMap<ObjectRef, String>,
    /// Unfinished TaskRuns per agent, the assumed ones included.
    running: HashMap<String, u32>,
    /// Per workflow, per agent: its unfinished TaskRuns (for Spread).
    groups: HashMap<String, HashMap<String, u32>>,
    /// Waiting TaskRuns by `Entry::seq`, with their selectors.
    parked: BTreeMap<u64, (ObjectRef, Labels)>,
    /// What of the agents placement depends on, to tell a heartbeat from a
    /// change that may let waiting TaskRuns fit.
    agents_digest: Vec<AgentDigest>,
    /// When each agent last freed a slot.
    freed_at: HashMap<String, Instant>,
}

type AgentDigest = (String, Vec<(String, String)>, u32, bool, bool);

impl State {
    /// `wake` receives the TaskRuns that should be reconciled again.
    pub fn new(agents: Store<AgentSpec>, wake: UnboundedSender<ObjectRef>) -> Self {
        Self {
            agents,
            wake,
            placer: Placer::default(),
            entries: HashMap::new(),
            next_seq: 0,
            assumed: HashMap::new(),
            running: HashMap::new(),
            groups: HashMap::new(),
            parked: BTreeMap::new(),
            agents_digest: Vec::new(),
            freed_at: HashMap::new(),
        }
    }

    /// Follows one event of the TaskRun watch.
    pub fn apply(&mut self, event: &Event<TaskRun>) {
        match event {
            Event::Restarted(list) => {
                let live: HashMap<ObjectRef, &TaskRun> = list
                    .iter()
                    .map(|tr| (ObjectRef::from_obj(tr), tr))
                    .collect();
                let before: Vec<ObjectRef> = self.entries.keys().cloned().collect();
                for key in before {
                    if !live.contains_key(&key) {
                        self.remove(&key);
                    }
                }
                for tr in list {
                    self.upsert(tr);
                }
            }
            Event::Applied(tr) => self.upsert(tr),
            Event::Deleted(tr) => self.remove(&ObjectRef::from_obj(tr)),
        }
    }

    /// Decides where `tr` (Pending, unbound, as cached) goes; a binding is
    /// counted at once, before it is written.
    pub fn decide(&mut self, tr: &TaskRun) -> Decision {
        let key = ObjectRef::from_obj(tr);
        if self.assumed.contains_key(&key) {
            return Decision::AlreadyBound;
        }
        if !self.entries.contains_key(&key) {
            self.upsert(tr);
        }
        let agents: Vec<Arc<Agent>> = self.agents.state();
        let candidates = match candidates(tr, &agents, &self.running) {
            Ok(c) => c,
            Err(why) => {
                self.park(&key, tr);
                if why.full {
                    return Decision::Full {
                        message: why.message,
                        waited: self.waited(&key, tr),
                        moving: self.moving(tr, &agents),
                    };
                }
                return Decision::Unschedulable(why.message);
            }
        };
        let policy = tr
            .spec
            .placement
            .as_ref()
            .map(|p| p.policy)
            .unwrap_or_default();
        let selector = selector_of(tr);
        let no_groups = HashMap::new();
        let group_counts = tr
            .metadata
            .labels
            .get(WORKFLOW_LABEL)
            .and_then(|g| self.groups.get(g))
            .unwrap_or(&no_groups);
        let chosen = self
            .placer
            .pick(policy, &selector.to_string(), &candidates, group_counts)
            .map(|c| c.name().to_string());
        match chosen {
            Some(agent) => {
                self.unpark(&key);
                self.uncount(&key);
                self.assumed.insert(key.clone(), agent.clone());
                self.count(&key);
                Decision::Bind(agent)
            }
            None => {
                self.park(&key, tr);
                Decision::Unschedulable("no agent was chosen".to_string())
            }
        }
    }

    /// Takes back an assumed binding whose write failed; its slot goes to a
    /// waiting TaskRun.
    pub fn forget_binding(&mut self, key: &ObjectRef) {
        let freed = self.holder(key);
        self.uncount(key);
        self.assumed.remove(key);
        self.count(key);
        if let Some(agent) = freed {
            self.wake_for(&agent, 1);
        }
    }

    /// Wakes every waiting TaskRun if the agents changed in a way that
    /// matters to placement (not on mere status heartbeats).
    pub fn agents_changed(&mut self) {
        let mut digest: Vec<AgentDigest> = self
            .agents
            .state()
            .iter()
            .map(|a| {
                (
                    a.name().to_string(),
                    a.metadata
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    a.spec.capacity,
                    a.status.as_ref().map(|s| s.phase) == Some(AgentPhase::Ready),
                    a.spec.unschedulable || super::filter::stopping(a),
                )
            })
            .collect();
        digest.sort();
        if digest == self.agents_digest {
            return;
        }
        self.agents_digest = digest;
        for (_, (key, _)) in std::mem::take(&mut self.parked) {
            // The receiver is gone only at shutdown.
            let _ = self.wake.send(key);
        }
    }

    /// How long `tr` has waited: since its creation by the server's clock,
    /// or since this scheduler first saw it, whichever is longer (so that a
    /// skewed clock can delay nothing by more than the time it is seen).
    fn waited(&self, key: &ObjectRef, tr: &TaskRun) -> Duration {
        let seen = self
            .entries
            .get(key)
            .map(|e| e.seen.elapsed())
            .unwrap_or_default();
        let since_creation = tr
            .metadata
            .creation_timestamp
            .and_then(|t| (chrono::Utc::now() - t).to_std().ok())
            .unwrap_or_default();
        seen.max(since_creation)
    }

    /// True when an agent matching `tr`'s selector freed a slot within
    /// [`MOVING_WINDOW`].
    fn moving(&self, tr: &TaskRun, agents: &[Arc<Agent>]) -> bool {
        let selector = selector_of(tr);
        agents.iter().any(|a| {
            self.freed_at
                .get(a.name())
                .is_some_and(|t| t.elapsed() < MOVING_WINDOW)
                && selector.matches(&a.metadata.labels)
        })
    }

    /// The agent whose capacity `key` takes, if any.
    fn holder(&self, key: &ObjectRef) -> Option<String> {
        let entry = self.entries.get(key)?;
        if !entry.unfinished {
            return None;
        }
        entry
            .bound
            .clone()
            .or_else(|| self.assumed.get(key).cloned())
    }

    fn count(&mut self, key: &ObjectRef) {
        self.add(key, 1);
    }

    fn uncount(&mut self, key: &ObjectRef) {
        self.add(key, -1);
    }

    fn add(&mut self, key: &ObjectRef, delta: i64) {
        let Some(agent) = self.holder(key) else {
            return;
        };
        let group = self.entries.get(key).and_then(|e| e.group.clone());
        bump(self.running.entry(agent.clone()).or_default(), delta);
        if let Some(group) = group {
            let per_agent = self.groups.entry(group.clone()).or_default();
            bump(per_agent.entry(agent.clone()).or_default(), delta);
            if per_agent.get(&agent) == Some(&0) {
                per_agent.remove(&agent);
            }
            if per_agent.is_empty() {
                self.groups.remove(&group);
            }
        }
    }

    fn upsert(&mut self, tr: &TaskRun) {
        let key = ObjectRef::from_obj(tr);
        let before = self.holder(&key);
        self.uncount(&key);
        let (seq, seen) = match self.entries.get(&key) {
            Some(e) => (e.seq, e.seen),
            None => {
                self.next_seq += 1;
                (self.next_seq, Instant::now())
            }
        };
        let entry = Entry::of(tr, seq, seen);
        // The cache caught up with the binding, or the TaskRun ended: either
        // way the assumption has nothing left to say.
        if entry.bound.is_some() || !entry.unfinished {
            self.assumed.remove(&key);
        }
        if !entry.pending {
            self.unpark(&key);
        }
        self.entries.insert(key.clone(), entry);
        self.count(&key);
        if let Some(agent) = before
            && self.holder(&key).as_ref() != Some(&agent)
        {
            self.wake_for(&agent, 1);
        }
    }

    fn remove(&mut self, key: &ObjectRef) {
        let before = self.holder(key);
        self.uncount(key);
        self.entries.remove(key);
        self.assumed.remove(key);
        self.unpark(key);
        if let Some(agent) = before {
            self.wake_for(&agent, 1);
        }
    }

    fn park(&mut self, key: &ObjectRef, tr: &TaskRun) {
        if let Some(entry) = self.entries.get(key) {
            self.parked
                .entry(entry.seq)
                .or_insert_with(|| (key.clone(), selector_of(tr)));
        }
    }

    fn unpark(&mut self, key: &ObjectRef) {
        if let Some(entry) = self.entries.get(key) {
            self.parked.remove(&entry.seq);
        }
    }

    /// Wakes up to `n` of the oldest waiting TaskRuns that `agent` could
    /// take.
    fn wake_for(&mut self, agent: &str, n: usize) {
        if self.parked.is_empty() {
            return;
        }
        match self.freed_at.get_mut(agent) {
            Some(t) => *t = Instant::now(),
            None => {
                self.freed_at.insert(agent.to_string(), Instant::now());
            }
        }
        let Some(agent) = self.agents.get(&ObjectRef::new("", agent)) else {
            return;
        };
        let chosen: Vec<u64> = self
            .parked
            .iter()
            .take(WAKE_SCAN_LIMIT)
            .filter(|(_, (_, selector))| selector.matches(&agent.metadata.labels))
            .take(n)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in chosen {
            if let Some((key, _)) = self.parked.remove(&seq) {
                // The receiver is gone only at shutdown.
                let _ = self.wake.send(key);
            }
        }
    }

    #[cfg(test)]
    fn load_of(&self, agent: &str) -> u32 {
        self.running.get(agent).copied().unwrap_or(0)
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.parked.len()
    }
}

fn bump(n: &mut u32, delta: i64) {
    *n = if delta < 0 {
        n.saturating_sub(1)
    } else {
        n.saturating_add(1)
    };
}

fn selector_of(tr: &TaskRun) -> Labels {
    tr.spec
        .agent_selector
        .as_ref()
        .map(Labels::from_selector)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use sloth_sdk::objects::TaskRunStatus;
    use sloth_sdk::runtime::{Writer, store};
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    use super::*;
    use crate::scheduler::testing::{agent, taskrun_with_selector};

    fn setup(agents: &[Arc<Agent>]) -> (State, Writer<AgentSpec>, UnboundedReceiver<ObjectRef>) {
        let (reader, mut writer) = store::<AgentSpec>();
        writer.apply(&Event::Restarted(
            agents.iter().map(|a| (**a).clone()).collect(),
        ));
        let (tx, rx) = unbounded_channel();
        let mut state = State::new(reader, tx);
        state.agents_changed();
        (state, writer, rx)
    }

    fn named(name: &str) -> TaskRun {
        let mut tr = taskrun_with_selector(&[("role", "x")]);
        tr.metadata.name = name.into();
        tr.metadata.namespace = "ns".into();
        tr
    }

    fn with_phase(mut tr: TaskRun, agent: Option<&str>, phase: TaskRunPhase) -> TaskRun {
        tr.spec.agent_name = agent.map(str::to_string);
        tr.status = Some(TaskRunStatus {
            phase,
            ..TaskRunStatus::default()
        });
        tr
    }

    fn woken(rx: &mut UnboundedReceiver<ObjectRef>) -> Vec<String> {
        let mut names = Vec::new();
        while let Ok(key) = rx.try_recv() {
            names.push(key.name);
        }
        names
    }

    #[test]
    fn concurrent_decisions_never_overcommit_and_a_freed_slot_wakes_the_oldest() {
        let (mut state, _w, mut rx) = setup(&[agent("a1", &[("role", "x")], 2, true, false)]);
        let runs: Vec<TaskRun> = (0..4).map(|i| named(&format!("t{i}"))).collect();
        for tr in &runs {
            state.apply(&Event::Applied(tr.clone()));
        }
        // Two bindings in flight (not yet in the cache) fill the agent.
        assert_eq!(state.decide(&runs[0]), Decision::Bind("a1".into()));
        assert_eq!(state.decide(&runs[1]), Decision::Bind("a1".into()));
        assert_eq!(state.decide(&runs[0]), Decision::AlreadyBound);
        let Decision::Full {
            message,
            waited,
            moving,
        } = state.decide(&runs[2])
        else {
            panic!("t2 must wait for a slot");
        };
        assert!(message.contains("1 full"), "{message}");
        assert!(waited < Duration::from_secs(60), "{waited:?}");
        assert!(!moving, "no slot has freed yet");
        assert!(matches!(state.decide(&runs[3]), Decision::Full { .. }));
        assert_eq!(state.load_of("a1"), 2);
        assert_eq!(state.waiting(), 2);

        // The cache shows the bindings: still two.
        let t0 = with_phase(runs[0].clone(), Some("a1"), TaskRunPhase::Running);
        state.apply(&Event::Applied(t0.clone()));
        state.apply(&Event::Applied(with_phase(
            runs[1].clone(),
            Some("a1"),
            TaskRunPhase::Scheduled,
        )));
        assert_eq!(state.load_of("a1"), 2);
        assert!(woken(&mut rx).is_empty());

        // One finishes: exactly the oldest waiting TaskRun is woken.
        state.apply(&Event::Applied(with_phase(
            t0,
            Some("a1"),
            TaskRunPhase::Succeeded,
        )));
        assert_eq!(state.load_of("a1"), 1);
        assert_eq!(woken(&mut rx), ["t2"]);
        assert_eq!(state.waiting(), 1);

        // A failed bind write gives its slot back.
        assert_eq!(state.decide(&runs[2]), Decision::Bind("a1".into()));
        // Meanwhile t3 waits in a queue that drains.
        assert!(matches!(
            state.decide(&runs[3]),
            Decision::Full { moving: true, .. }
        ));
        state.forget_binding(&ObjectRef::from_obj(&runs[2]));
        assert_eq!(state.load_of("a1"), 1);
        assert_eq!(woken(&mut rx), ["t3"]);
    }

    #[test]
    fn only_placement_relevant_agent_changes_wake_everyone() {
        let (mut state, mut writer, mut rx) =
            setup(&[agent("a1", &[("role", "x")], 1, true, false)]);
        let runs: Vec<TaskRun> = (0..3).map(|i| named(&format!("t{i}"))).collect();
        for tr in &runs {
            state.apply(&Event::Applied(tr.clone()));
        }
        assert!(matches!(state.decide(&runs[0]), Decision::Bind(_)));
        assert!(matches!(state.decide(&runs[1]), Decision::Full { .. }));
        assert!(matches!(state.decide(&runs[2]), Decision::Full { .. }));

        let mut heartbeat = (*agent("a1", &[("role", "x")], 1, true, false)).clone();
        heartbeat.metadata.resource_version = "7".into();
        writer.apply(&Event::Applied(heartbeat));
        state.agents_changed();
        assert!(woken(&mut rx).is_empty());

        writer.apply(&Event::Applied(
            (*agent("a2", &[("role", "x")], 1, true, false)).clone(),
        ));
        state.agents_changed();
        assert_eq!(woken(&mut rx), ["t1", "t2"]);
        assert_eq!(state.decide(&runs[1]), Decision::Bind("a2".into()));
    }

    #[test]
    fn deleting_a_bound_taskrun_frees_its_slot_and_spread_counts_follow() {
        let (mut state, _w, _rx) = setup(&[
            agent("a1", &[("role", "x")], 4, true, false),
            agent("a2", &[("role", "x")], 4, true, false),
        ]);
        let mut runs: Vec<TaskRun> = (0..2).map(|i| named(&format!("t{i}"))).collect();
        for tr in &mut runs {
            tr.metadata
                .labels
                .insert(WORKFLOW_LABEL.to_string(), "wf".into());
            tr.spec.placement = Some(sloth_sdk::objects::Placement {
                policy: sloth_sdk::objects::PlacementPolicy::Spread,
            });
            state.apply(&Event::Applied(tr.clone()));
        }
        assert_eq!(state.decide(&runs[0]), Decision::Bind("a1".into()));
        assert_eq!(state.decide(&runs[1]), Decision::Bind("a2".into()));
        state.apply(&Event::Deleted(runs[0].clone()));
        assert_eq!(state.load_of("a1"), 0);
        assert_eq!(state.load_of("a2"), 1);
    }

    #[test]
    fn waiting_is_counted_from_creation_or_first_sight_and_other_reasons_are_not_full() {
        let (mut state, _w, _rx) = setup(&[agent("a1", &[("role", "x")], 1, true, false)]);
        let fresh = named("fresh");
        let mut old = named("old");
        old.metadata.creation_timestamp = Some(chrono::Utc::now() - chrono::Duration::seconds(10));
        let mut gpu = named("gpu");
        gpu.spec.agent_selector = taskrun_with_selector(&[("role", "gpu")])
            .spec
            .agent_selector;
        let filler = named("filler");
        for tr in [&filler, &fresh, &old, &gpu] {
            state.apply(&Event::Applied(tr.clone()));
        }
        assert!(matches!(state.decide(&filler), Decision::Bind(_)));
        let Decision::Full { waited, .. } = state.decide(&fresh) else {
            panic!("fresh waits for a slot");
        };
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        let Decision::Full { waited, .. } = state.decide(&old) else {
            panic!("old waits for a slot");
        };
        assert!(waited >= Duration::from_secs(10), "{waited:?}");
        let Decision::Unschedulable(message) = state.decide(&gpu) else {
            panic!("nothing matches role=gpu");
        };
        assert_eq!(message, "no agent matches role=gpu");
    }
}
