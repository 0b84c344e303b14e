use sloth_sdk::meta::OwnerReference;
use sloth_sdk::objects::{TaskRunSpec, WorkflowSpec};

use super::*;

fn workflow(name: &str, uid: &str) -> Workflow {
    let mut wf = Workflow::new(name, WorkflowSpec::default());
    wf.metadata.namespace = "default".into();
    wf.metadata.uid = uid.into();
    wf
}

fn run(name: &str, wf: &Workflow) -> TaskRun {
    let mut tr = TaskRun::new(name, TaskRunSpec::default());
    tr.metadata.namespace = wf.namespace().into();
    tr.metadata
        .labels
        .insert(WORKFLOW_LABEL.into(), wf.name().into());
    tr.metadata.owner_references = vec![OwnerReference {
        kind: "Workflow".into(),
        name: wf.name().into(),
        uid: wf.metadata.uid.clone(),
        ..OwnerReference::default()
    }];
    tr
}

fn names(index: &TaskRunIndex, wf: &Workflow) -> Vec<String> {
    let mut names: Vec<String> = index
        .owned(wf)
        .iter()
        .map(|tr| tr.name().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn each_workflow_sees_only_its_own_taskruns() {
    let (a, b) = (workflow("a", "uid-a"), workflow("b", "uid-b"));
    let index = TaskRunIndex::default();
    index.apply(&Event::Restarted(vec![run("a-x-1", &a), run("b-x-1", &b)]));
    index.apply(&Event::Applied(run("a-y-1", &a)));
    assert_eq!(names(&index, &a), ["a-x-1", "a-y-1"]);
    assert_eq!(names(&index, &b), ["b-x-1"]);
}

#[test]
fn a_namesakes_leftovers_are_not_owned() {
    let old = workflow("a", "uid-old");
    let new = workflow("a", "uid-new");
    let index = TaskRunIndex::default();
    index.apply(&Event::Applied(run("a-x-1", &old)));
    assert!(index.owned(&new).is_empty());
    assert_eq!(names(&index, &old), ["a-x-1"]);
}

#[test]
fn deletes_relists_and_label_changes_keep_the_index_exact() {
    let (a, b) = (workflow("a", "uid-a"), workflow("b", "uid-b"));
    let index = TaskRunIndex::default();
    index.apply(&Event::Applied(run("r1", &a)));
    index.apply(&Event::Applied(run("r2", &a)));
    index.apply(&Event::Deleted(run("r1", &a)));
    assert_eq!(names(&index, &a), ["r2"]);

    // Relabelled to another workflow: it moves.
    index.apply(&Event::Applied(run("r2", &b)));
    assert!(index.owned(&a).is_empty());
    assert_eq!(names(&index, &b), ["r2"]);

    // Label removed: no workflow's any more.
    let mut unlabelled = run("r2", &b);
    unlabelled.metadata.labels.clear();
    index.apply(&Event::Applied(unlabelled));
    assert!(index.owned(&b).is_empty());

    // A relist replaces everything.
    index.apply(&Event::Applied(run("r3", &a)));
    index.apply(&Event::Restarted(vec![run("r4", &b)]));
    assert!(index.owned(&a).is_empty());
    assert_eq!(names(&index, &b), ["r4"]);
}
