//! DAG evaluation (pure): which tasks may start now. Partial: no retries,
//! failFast, finally or cancellation yet.

use std::collections::BTreeMap;

use sloth_sdk::objects::workflow::{TaskPhase, WorkflowTask};

/// Tasks not yet started whose `dependsOn` all Succeeded, in spec order.
pub fn ready<'a>(tasks: &'a [WorkflowTask], phases: &BTreeMap<String, TaskPhase>) -> Vec<&'a str> {
    tasks
        .iter()
        .filter(|t| phases.get(&t.name).copied().unwrap_or_default() == TaskPhase::Pending)
        .filter(|t| {
            t.depends_on
                .iter()
                .all(|d| phases.get(d) == Some(&TaskPhase::Succeeded))
        })
        .map(|t| t.name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, deps: &[&str]) -> WorkflowTask {
        WorkflowTask {
            name: name.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn diamond() {
        let tasks = [
            task("a", &[]),
            task("b", &["a"]),
            task("c", &["a"]),
            task("d", &["b", "c"]),
        ];
        let mut phases = BTreeMap::new();
        assert_eq!(ready(&tasks, &phases), ["a"]);
        phases.insert("a".to_string(), TaskPhase::Running);
        assert!(ready(&tasks, &phases).is_empty());
        phases.insert("a".to_string(), TaskPhase::Succeeded);
        assert_eq!(ready(&tasks, &phases), ["b", "c"]);
        phases.insert("b".to_string(), TaskPhase::Succeeded);
        phases.insert("c".to_string(), TaskPhase::Running);
        assert!(ready(&tasks, &phases).is_empty());
        phases.insert("c".to_string(), TaskPhase::Succeeded);
        assert_eq!(ready(&tasks, &phases), ["d"]);
    }
}
