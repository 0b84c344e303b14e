//! The TaskRuns of each Workflow, kept from the TaskRun watch: a reconcile
//! reads its own workflow's TaskRuns instead of filtering every TaskRun the
//! controller has seen (with many workflows, or one of thousands of tasks
//! next to others' finished runs, that filter was the reconcile's cost).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use sloth_sdk::objects::{TaskRun, Workflow};
use sloth_sdk::runtime::ObjectRef;
use sloth_sdk::watcher::Event;
use sloth_sdk::well_known::WORKFLOW_LABEL;

/// TaskRun name -> TaskRun, for one workflow.
type Runs = HashMap<String, Arc<TaskRun>>;

#[derive(Default)]
struct Inner {
    /// Per workflow (namespace and name, from the TaskRun's label).
    by_workflow: HashMap<ObjectRef, Runs>,
    /// Per TaskRun, the workflow it is filed under, so that a TaskRun whose
    /// label changes moves instead of staying in its old workflow's list.
    filed_under: HashMap<ObjectRef, ObjectRef>,
}

/// A cheap-to-clone handle on the index; every clone sees the same content.
#[derive(Clone, Default)]
pub struct TaskRunIndex {
    inner: Arc<RwLock<Inner>>,
}

/// The workflow a TaskRun says it belongs to (by its label).
fn workflow_of(tr: &TaskRun) -> Option<ObjectRef> {
    tr.metadata
        .labels
        .get(WORKFLOW_LABEL)
        .map(|wf| ObjectRef::new(tr.namespace(), wf.as_str()))
}

impl Inner {
    fn remove(&mut self, taskrun: &ObjectRef) {
        if let Some(wf) = self.filed_under.remove(taskrun)
            && let Some(runs) = self.by_workflow.get_mut(&wf)
        {
            runs.remove(&taskrun.name);
            if runs.is_empty() {
                self.by_workflow.remove(&wf);
            }
        }
    }

    fn insert(&mut self, tr: &TaskRun) {
        let key = ObjectRef::from_obj(tr);
        self.remove(&key);
        if let Some(wf) = workflow_of(tr) {
            self.by_workflow
                .entry(wf.clone())
                .or_default()
                .insert(key.name.clone(), Arc::new(tr.clone()));
            self.filed_under.insert(key, wf);
        }
    }
}

impl TaskRunIndex {
    /// Applies one watch event: a `Restarted` list replaces everything,
    /// `Applied` files (or refiles) the TaskRun, `Deleted` removes it.
    pub fn apply(&self, event: &Event<TaskRun>) {
        // Every write is a whole insert or remove, so a lock poisoned by a
        // panic elsewhere still guards a consistent map.
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Restarted(list) => {
                *inner = Inner::default();
                for tr in list {
                    inner.insert(tr);
                }
            }
            Event::Applied(tr) => inner.insert(tr),
            Event::Deleted(tr) => inner.remove(&ObjectRef::from_obj(tr)),
        }
    }

    /// The TaskRuns `wf` owns: labelled with its name and owned by its uid
    /// (not a namesake's left over from a deleted Workflow of the same name).
    pub fn owned(&self, wf: &Workflow) -> Vec<Arc<TaskRun>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .by_workflow
            .get(&ObjectRef::from_obj(wf))
            .map(|runs| {
                runs.values()
                    .filter(|tr| owned_by(tr, wf))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether `tr` is one of `wf`'s TaskRuns (and not a namesake's left over
/// from a deleted Workflow of the same name).
pub fn owned_by(tr: &TaskRun, wf: &Workflow) -> bool {
    tr.namespace() == wf.namespace()
        && tr.metadata.labels.get(WORKFLOW_LABEL).map(String::as_str) == Some(wf.name())
        && tr
            .metadata
            .owner_references
            .iter()
            .any(|o| o.kind == "Workflow" && o.uid == wf.metadata.uid)
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
