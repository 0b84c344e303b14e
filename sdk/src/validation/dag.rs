//! The task graph of a Workflow: names, `dependsOn` references and cycles.
//!
//! `spec.tasks` form a DAG; `spec.finally` tasks run after it, whatever its
//! outcome, and form a second DAG among themselves. Edges between the two
//! would let a normal task wait for something that only starts after it
//! finished, so they are refused.

use std::collections::BTreeSet;

use super::FieldErrors;
use super::common::invalid;
use super::names;
use crate::dag::{Dag, Section};
use crate::objects::WorkflowTask;
use crate::objects::workflow::result_refs;

/// Checks task names and every `dependsOn`, in both sections.
pub(super) fn validate_graph(
    tasks: &[WorkflowTask],
    finally: &[WorkflowTask],
    errs: &mut FieldErrors,
) {
    let sections = [(Section::Tasks, tasks), (Section::Finally, finally)];
    let dag = Dag::new(tasks, finally);
    // The section and position of a task index.
    let at_of = |i: usize| {
        let section = dag.section(i);
        (section, i - dag.indices(section).start)
    };

    for (section, list) in sections {
        let offset = dag.indices(section).start;
        for (i, task) in list.iter().enumerate() {
            let at = format!("{}[{i}].name", section.path());
            // A badly named task is still indexed, so its dependents are not
            // also told that it does not exist.
            if let Err(why) = names::validate_task_name(&task.name) {
                errs.push(at.clone(), invalid(&task.name, &why));
            }
            // First declaration wins, so later duplicates point back to it.
            if let Some(first) = dag.index_of(&task.name).filter(|&f| f != offset + i) {
                let (first_section, first) = at_of(first);
                errs.push(
                    at,
                    format!(
                        "duplicate task name {:?} (first at {}[{first}])",
                        task.name,
                        first_section.path()
                    ),
                );
            }
        }
    }

    for (section, list) in sections {
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
                match (section, dag.index_of(dep).map(at_of)) {
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
                    // A dependency in the same section: an edge of the Dag.
                    (_, Some(_)) => {}
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
                    match (section, dag.index_of(dep).map(at_of)) {
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
                        (_, Some(_)) => {}
                    }
                }
            }
        }
        for cycle in dag.cycles(section) {
            let names: Vec<&str> = cycle.iter().map(|&n| dag.name(n)).collect();
            errs.push(
                section.path(),
                format!("dependency cycle: {}", names.join(" -> ")),
            );
        }
    }
}
