//! The task graph of a Workflow, built once from its tasks: validation
//! reads it for unknown names and cycles, the workflow planner for the
//! order to walk and the tasks each one waits for.
//!
//! Tasks are numbered in declaration order, `spec.tasks` first and then
//! `spec.finally`. A task waits for its `dependsOn` and for every task whose
//! results it references (`$(tasks.NAME.results.KEY)`).

use std::collections::HashMap;

use crate::objects::workflow::{WorkflowSpec, WorkflowTask, result_refs};

/// Which list of the spec a task is declared in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// `spec.tasks`: the DAG.
    Tasks,
    /// `spec.finally`: run after every task of `spec.tasks` has finished.
    Finally,
}

impl Section {
    /// The field path of the list.
    pub fn path(self) -> &'static str {
        match self {
            Self::Tasks => "spec.tasks",
            Self::Finally => "spec.finally",
        }
    }
}

/// A Workflow's tasks as a graph of indices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dag {
    names: Vec<String>,
    /// Index of the first task of `spec.finally`.
    finally_start: usize,
    /// Name to index; with duplicate names, the first declaration.
    index: HashMap<String, usize>,
    /// Per task, the tasks it waits for: `dependsOn` in order, then result
    /// producers in order of reference, each once, never itself.
    upstream: Vec<Vec<usize>>,
    /// Per task, the tasks that wait for it.
    downstream: Vec<Vec<usize>>,
    /// Per task, whether it also waits for a name that is not another task
    /// (unknown, or itself): validation refuses these, and a planner never
    /// starts such a task.
    waits_for_missing: Vec<bool>,
}

impl Dag {
    /// The graph of a Workflow spec.
    pub fn of(spec: &WorkflowSpec) -> Self {
        Self::new(&spec.tasks, &spec.finally)
    }

    /// The graph of `tasks` followed by `finally`.
    pub fn new(tasks: &[WorkflowTask], finally: &[WorkflowTask]) -> Self {
        let all = || tasks.iter().chain(finally);
        let n = tasks.len() + finally.len();
        let mut index = HashMap::with_capacity(n);
        for (i, task) in all().enumerate() {
            index.entry(task.name.clone()).or_insert(i);
        }
        let mut upstream = Vec::with_capacity(n);
        let mut waits_for_missing = Vec::with_capacity(n);
        for (i, task) in all().enumerate() {
            let mut deps: Vec<usize> = Vec::with_capacity(task.depends_on.len());
            let mut missing = false;
            let mut add = |name: &str| match index.get(name) {
                Some(&dep) if dep != i && task.name != name => {
                    if !deps.contains(&dep) {
                        deps.push(dep);
                    }
                }
                _ => missing = true,
            };
            for dep in &task.depends_on {
                add(dep);
            }
            for text in task.substituted_texts() {
                for reference in result_refs(text) {
                    add(&reference.task);
                }
            }
            upstream.push(deps);
            waits_for_missing.push(missing);
        }
        let mut downstream = vec![Vec::new(); n];
        for (i, deps) in upstream.iter().enumerate() {
            for &dep in deps {
                downstream[dep].push(i);
            }
        }
        Self {
            names: all().map(|t| t.name.clone()).collect(),
            finally_start: tasks.len(),
            index,
            upstream,
            downstream,
            waits_for_missing,
        }
    }

    /// How many tasks, both sections.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True for a workflow without tasks (which validation refuses).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The index of the task named `name` (its first declaration).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The name of task `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The section task `i` is declared in.
    pub fn section(&self, i: usize) -> Section {
        if i < self.finally_start {
            Section::Tasks
        } else {
            Section::Finally
        }
    }

    /// The indices of the tasks of `section`, in declaration order.
    pub fn indices(&self, section: Section) -> std::ops::Range<usize> {
        match section {
            Section::Tasks => 0..self.finally_start,
            Section::Finally => self.finally_start..self.names.len(),
        }
    }

    /// The tasks task `i` waits for (in either section).
    pub fn upstream(&self, i: usize) -> &[usize] {
        &self.upstream[i]
    }

    /// The tasks that wait for task `i`.
    pub fn downstream(&self, i: usize) -> &[usize] {
        &self.downstream[i]
    }

    /// Whether task `i` waits for a name that is no other task.
    pub fn waits_for_missing(&self, i: usize) -> bool {
        self.waits_for_missing[i]
    }

    /// The tasks of `section` ordered so that each comes after those of the
    /// section it waits for; ties keep declaration order and tasks on a
    /// cycle (or after one) come last, in declaration order.
    ///
    /// The order is that of repeated passes over the list in declaration
    /// order, each placing every task whose upstream is placed (the
    /// planner's order since its first version, which `concurrency` limits
    /// follow), computed in one walk: a task is placed in the pass after
    /// its latest upstream's, or in the same one if that upstream is
    /// declared before it.
    pub fn topological(&self, section: Section) -> Vec<usize> {
        let range = self.indices(section);
        let in_section = |dep: usize| range.contains(&dep);
        let mut waiting: Vec<usize> = range
            .clone()
            .map(|i| self.upstream[i].iter().filter(|&&d| in_section(d)).count())
            .collect();
        let mut pass: Vec<Option<usize>> = vec![None; range.len()];
        let mut ready: Vec<usize> = range
            .clone()
            .filter(|&i| waiting[i - range.start] == 0)
            .collect();
        while let Some(i) = ready.pop() {
            let local = i - range.start;
            let placed = self.upstream[i]
                .iter()
                .filter(|&&d| in_section(d))
                .filter_map(|&d| pass[d - range.start].map(|p| p + usize::from(d > i)))
                .max()
                .unwrap_or(0);
            pass[local] = Some(placed);
            for &next in &self.downstream[i] {
                if in_section(next) {
                    let left = &mut waiting[next - range.start];
                    *left -= 1;
                    if *left == 0 {
                        ready.push(next);
                    }
                }
            }
        }
        let mut order: Vec<usize> = range
            .clone()
            .filter(|&i| pass[i - range.start].is_some())
            .collect();
        order.sort_by_key(|&i| (pass[i - range.start], i));
        let start = range.start;
        order.extend(range.filter(|&i| pass[i - start].is_none()));
        order
    }

    /// The cycles among the tasks of `section` (edges to the other section
    /// are not followed): at least one through every cyclic part, each as
    /// its earliest declared task, the rest in dependency order, and that
    /// task again.
    pub fn cycles(&self, section: Section) -> Vec<Vec<usize>> {
        let range = self.indices(section);
        let edges: Vec<Vec<usize>> = range
            .clone()
            .map(|i| {
                self.upstream[i]
                    .iter()
                    .filter(|&&d| range.contains(&d))
                    .map(|&d| d - range.start)
                    .collect()
            })
            .collect();
        find_cycles(&edges)
            .into_iter()
            .map(|cycle| cycle.into_iter().map(|n| n + range.start).collect())
            .collect()
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
#[path = "dag_tests.rs"]
pub(crate) mod tests;
