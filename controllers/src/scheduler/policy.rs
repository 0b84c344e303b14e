//! Choosing one agent among the feasible ones, by placement policy.

use std::collections::HashMap;

use sloth_sdk::objects::PlacementPolicy;

use super::filter::Candidate;

/// Placement state that outlives one decision: the round-robin cursors.
#[derive(Debug, Default)]
pub struct Placer {
    /// Per selector (its text), how many bindings it has made.
    cursors: HashMap<String, usize>,
}

impl Placer {
    /// Picks one candidate. `group_counts` says, per agent, how many
    /// unfinished TaskRuns of the same group (workflow) it already has, for
    /// Spread. Ties break by agent name, so decisions are reproducible.
    pub fn pick<'a>(
        &mut self,
        policy: PlacementPolicy,
        selector_key: &str,
        candidates: &'a [Candidate],
        group_counts: &HashMap<String, u32>,
    ) -> Option<&'a Candidate> {
        let mut sorted: Vec<&Candidate> = candidates.iter().collect();
        sorted.sort_by(|a, b| a.name().cmp(b.name()));
        match policy {
            PlacementPolicy::LeastLoaded => sorted
                .into_iter()
                .min_by(|a, b| a.load().total_cmp(&b.load()).then(a.name().cmp(b.name()))),
            PlacementPolicy::RoundRobin => {
                if sorted.is_empty() {
                    return None;
                }
                let cursor = self.cursors.entry(selector_key.to_string()).or_default();
                let chosen = sorted[*cursor % sorted.len()];
                *cursor = cursor.wrapping_add(1);
                Some(chosen)
            }
            PlacementPolicy::Spread => sorted.into_iter().min_by(|a, b| {
                let count = |c: &Candidate| group_counts.get(c.name()).copied().unwrap_or(0);
                count(a)
                    .cmp(&count(b))
                    .then(a.load().total_cmp(&b.load()))
                    .then(a.name().cmp(b.name()))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::agent;

    fn candidates(loads: &[(&str, u32, u32)]) -> Vec<Candidate> {
        loads
            .iter()
            .map(|(name, running, capacity)| Candidate {
                agent: agent(name, &[], *capacity, true, false),
                running: *running,
            })
            .collect()
    }

    #[test]
    fn least_loaded_uses_the_ratio_to_capacity() {
        let c = candidates(&[("a1", 1, 2), ("a2", 1, 4), ("a3", 0, 1)]);
        let mut placer = Placer::default();
        let pick = |placer: &mut Placer, c: &[Candidate]| {
            placer
                .pick(PlacementPolicy::LeastLoaded, "", c, &HashMap::new())
                .map(|c| c.name().to_string())
        };
        assert_eq!(pick(&mut placer, &c).as_deref(), Some("a3"));
        let c = candidates(&[("a1", 1, 2), ("a2", 1, 4)]);
        assert_eq!(pick(&mut placer, &c).as_deref(), Some("a2"));
    }

    #[test]
    fn round_robin_cycles_per_selector() {
        let c = candidates(&[("a2", 0, 1), ("a1", 5, 9)]);
        let mut placer = Placer::default();
        let names: Vec<String> = (0..4)
            .map(|_| {
                placer
                    .pick(PlacementPolicy::RoundRobin, "role=x", &c, &HashMap::new())
                    .map(|c| c.name().to_string())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(names, ["a1", "a2", "a1", "a2"]);
        let other = placer
            .pick(PlacementPolicy::RoundRobin, "role=y", &c, &HashMap::new())
            .map(|c| c.name().to_string());
        assert_eq!(
            other.as_deref(),
            Some("a1"),
            "a new selector starts at the first"
        );
    }

    #[test]
    fn spread_avoids_agents_running_the_same_group() {
        let c = candidates(&[("a1", 0, 4), ("a2", 3, 4)]);
        let counts = HashMap::from([("a1".to_string(), 2), ("a2".to_string(), 0)]);
        let mut placer = Placer::default();
        let chosen = placer.pick(PlacementPolicy::Spread, "", &c, &counts);
        assert_eq!(chosen.map(Candidate::name), Some("a2"));
    }
}
