//! The task graph of a Workflow: names, `dependsOn` references and cycles.
//!
//! `spec.tasks` form a DAG; `spec.finally` tasks run after it, whatever its
//! outcome, and form a second DAG among themselves. Edges between the two
//! would let a normal task wait for something that only starts after it
//! finished, so they are refused.

use std::collections::{BTreeSet, HashMap};

use super::FieldErrors;
use super::common::invalid;
use super::names;
use crate::objects::WorkflowTask;
use crate::objects::workflow::result_refs;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Tasks,
    Finally,
}

impl Section {
    fn path(self) -> &'static str {
        match self {
            Self::Tasks => "spec.tasks",
            Self::Finally => "spec.finally",
        }
    }
}

/// Checks task names and every `dependsOn`, in both sections.
pub(super) fn validate_graph(
    tasks: &[WorkflowTask],
    finally: &[WorkflowTask],
    errs: &mut FieldErrors,
) {
    let sections = [(Section::Tasks, tasks), (Section::Finally, finally)];

    // First declaration wins, so later duplicates point back to it.
    let mut index: HashMap<&str, (Section, usize)> = HashMap::new();
    for (section, list) in sections {
        for (i, task) in list.iter().enumerate() {
            let at = format!("{}[{i}].name", section.path());
            // A badly named task is still indexed, so its dependents are not
            // also told that it does not exist.
            if let Err(why) = names::validate_task_name(&task.name) {
                errs.push(at.clone(), invalid(&task.name, &why));
            }
            match index.get(task.name.as_str()) {
                Some((first_section, first)) => errs.push(
                    at,
                    format!(
                        "duplicate task name {:?} (first at {}[{first}])",
                        task.name,
                        first_section.path()
                    ),
                ),
                None => {
                    index.insert(&task.name, (section, i));
                }
            }
        }
    }

    for (section, list) in sections {
        let mut edges: Vec<Vec<usize>> = vec![Vec::new(); list.len()];
        for (i, task) in list.iter().enumerate() {
            let mut seen = BTreeSet::new();
            for (j, dep) in task.depends_on.iter().enumerate() {
                let at = format!("{}[{i}].dependsOn[{j}]", section.path());
                if !seen.insert(dep.as_str()) {
                    errs.push(at, format!("duplicate dependency {dep:?}"));
                    continue;
                }
                if *dep == task.name {
                    errs.push(at, format!("task {dep:?} cannot depend on itself"));
                    continue;
                }
                match (section, index.get(dep.as_str())) {
                    (_, None) => errs.push(at, format!("unknown task {dep:?}")),
                    (Section::Tasks, Some((Section::Finally, _))) => errs.push(
                        at,
                        format!(
                            "cannot depend on finally task {dep:?}: finally tasks run only \
                             after every task in spec.tasks has finished"
                        ),
                    ),
                    (Section::Finally, Some((Section::Tasks, _))) => errs.push(
                        at,
                        format!(
                            "finally tasks may only depend on other finally tasks; {dep:?} is \
                             in spec.tasks (finally tasks already run after all of them)"
                        ),
                    ),
                    (_, Some((_, target))) => edges[i].push(*target),
                }
            }
            for (field, text) in task.substituted_fields() {
                for reference in result_refs(text) {
                    let at = format!("{}[{i}].{field}", section.path());
                    let dep = reference.task.as_str();
                    if dep == task.name {
                        errs.push(at, format!("task {dep:?} cannot use its own results"));
                        continue;
                    }
                    match (section, index.get(dep)) {
                        (_, None) => errs.push(
                            at,
                            format!(
                                "$(tasks.{dep}.results.{}) names an unknown task",
                                reference.key
                            ),
                        ),
                        (Section::Tasks, Some((Section::Finally, _))) => errs.push(
                            at,
                            format!("cannot use the results of finally task {dep:?}"),
                        ),
                        // A finally task may read the DAG's results: it runs after them.
                        (Section::Finally, Some((Section::Tasks, _))) => {}
                        (_, Some((_, target))) => {
                            if !edges[i].contains(target) {
                                edges[i].push(*target);
                            }
                        }
                    }
                }
            }
        }
        for cycle in find_cycles(&edges) {
            let names: Vec<&str> = cycle.iter().map(|&n| list[n].name.as_str()).collect();
            errs.push(
                section.path(),
                format!("dependency cycle: {}", names.join(" -> ")),
            );
        }
    }
}

/// The cycles a depth-first search closes (at least one in every cyclic part
/// of the graph, which is enough to tell the user where to look), each as
/// the earliest declared node on it, the rest in dependency order, and that
/// node again. Iterative, so a long chain cannot overflow the stack.
fn find_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut cycles = Vec::new();
    for root in 0..edges.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // The current path, each node with the next edge to follow.
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let Some(&target) = edges[node].get(*next) else {
                marks[node] = Mark::Done;
                path.pop();
                continue;
            };
            *next += 1;
            match marks[target] {
                Mark::New => {
                    marks[target] = Mark::OnPath;
                    path.push((target, 0));
                }
                Mark::OnPath => {
                    let from = path.iter().position(|&(n, _)| n == target).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[from..].iter().map(|&(n, _)| n).collect();
                    let start = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|&(_, n)| *n)
                        .map_or(0, |(at, _)| at);
                    cycle.rotate_left(start);
                    cycle.push(cycle[0]);
                    cycles.push(cycle);
                }
                Mark::Done => {}
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_start_at_the_earliest_declared_task() {
        // 0 -> 2 -> 1 -> 2: the cycle is found entering at 2 but printed from 1.
        let edges = vec![vec![2], vec![2], vec![1]];
        assert_eq!(find_cycles(&edges), vec![vec![1, 2, 1]]);
    }

    #[test]
    fn acyclic_graphs_have_no_cycles() {
        let edges = vec![vec![], vec![0], vec![0], vec![1, 2]];
        assert!(find_cycles(&edges).is_empty());
    }

    #[test]
    fn a_long_chain_does_not_overflow_and_a_closing_edge_is_found() {
        let n = 100_000;
        let mut edges: Vec<Vec<usize>> = (0..n).map(|i| vec![i + 1]).collect();
        edges[n - 1] = vec![0];
        let cycles = find_cycles(&edges);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n + 1);
    }

    #[test]
    fn two_separate_cycles_are_both_reported() {
        let edges = vec![vec![1], vec![0], vec![3], vec![2]];
        assert_eq!(find_cycles(&edges), vec![vec![0, 1, 0], vec![2, 3, 2]]);
    }
}
