//! `slothctl get -w`: the current list, then one line (a table row, a YAML
//! document after `---`, a JSON object, or a name) per change until
//! interrupted. Built on the SDK watcher, so it resumes from the last
//! resourceVersion when the server goes away and comes back, and relists
//! (printing only what changed) when that version has been compacted.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use futures_util::StreamExt;
use sloth_sdk::kinds::KindInfo;
use sloth_sdk::watcher::{Event, ListSemantic, watcher_with};
use sloth_sdk::{DynamicObject, Error as SdkError, WatchParams};

use super::Context;
use crate::cli::GetArgs;
use crate::error::{self, CliError};
use crate::printer::columns::{self, Options};
use crate::printer::table::Layout;
use crate::printer::{Format, Output, emit, output};

const ADDED: &str = "ADDED";
const MODIFIED: &str = "MODIFIED";
const DELETED: &str = "DELETED";

pub(crate) async fn run(
    ctx: &Context,
    kind: &'static KindInfo,
    namespace: &str,
    names: &[String],
    args: &GetArgs,
    options: Options,
) -> anyhow::Result<()> {
    let mut field_selector = args.field_selector.clone();
    if let [name] = names {
        if !field_selector.is_empty() {
            field_selector.push(',');
        }
        field_selector.push_str(&format!("metadata.name={name}"));
    }
    let params = WatchParams {
        label_selector: args.selector.clone(),
        field_selector,
        allow_bookmarks: true,
    };
    let mut stream = watcher_with(
        ctx.client.clone(),
        kind.kind,
        namespace,
        params,
        ListSemantic::MostRecent,
    );
    let mut printer = Printer::new(kind, args.output.clone(), options, !args.no_headers);
    let wanted = |o: &DynamicObject| names.is_empty() || names.contains(&o.metadata.name);
    let mut known: HashMap<String, DynamicObject> = HashMap::new();
    let mut started = false;
    let mut interrupted = false;
    while let Some(item) = stream.next().await {
        let changes: Vec<(&str, DynamicObject)> = match item {
            Ok(Event::Restarted(items)) => {
                let items: Vec<_> = items.into_iter().filter(|o| wanted(o)).collect();
                interrupted = false;
                if !started {
                    started = true;
                    let missing: Vec<_> = names
                        .iter()
                        .filter(|n| !items.iter().any(|o| &&o.metadata.name == n))
                        .collect();
                    if !missing.is_empty() {
                        for name in missing {
                            eprintln!(
                                "Error from server (NotFound): {} {name:?} not found",
                                kind.plural
                            );
                        }
                        return Err(CliError::reported(error::FAILED).into());
                    }
                    known = items.iter().map(|o| (o.key(), o.clone())).collect();
                    items.into_iter().map(|o| (ADDED, o)).collect()
                } else {
                    relisted(&mut known, items)
                }
            }
            Ok(Event::Applied(object)) => {
                interrupted = false;
                if !wanted(&object) {
                    continue;
                }
                let event = match known.insert(object.key(), object.clone()) {
                    Some(_) => MODIFIED,
                    None => ADDED,
                };
                vec![(event, object)]
            }
            Ok(Event::Deleted(object)) => {
                interrupted = false;
                if !wanted(&object) {
                    continue;
                }
                known.remove(&object.key());
                vec![(DELETED, object)]
            }
            Err(e) => {
                if !started {
                    return Err(ctx.error(e).into());
                }
                if !interrupted && !matches!(e, SdkError::Expired(_)) {
                    eprintln!("warning: watch interrupted, resuming: {e}");
                    interrupted = true;
                }
                continue;
            }
        };
        printer.print(&changes)?;
    }
    Ok(())
}

/// What changed between the objects known and a fresh list; updates `known`.
fn relisted(
    known: &mut HashMap<String, DynamicObject>,
    items: Vec<DynamicObject>,
) -> Vec<(&'static str, DynamicObject)> {
    let mut changes = Vec::new();
    let mut seen = HashSet::new();
    for object in items {
        let key = object.key();
        seen.insert(key.clone());
        match known.get(&key) {
            Some(old) if old.metadata.resource_version == object.metadata.resource_version => {}
            Some(_) => changes.push((MODIFIED, object.clone())),
            None => changes.push((ADDED, object.clone())),
        }
        known.insert(key, object);
    }
    let mut gone: Vec<_> = known
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    gone.sort();
    for key in gone {
        if let Some(old) = known.remove(&key) {
            changes.push((DELETED, old));
        }
    }
    changes
}

/// Prints watch output; table columns keep (and grow) their widths.
struct Printer {
    kind: &'static KindInfo,
    output: Output,
    options: Options,
    headers: bool,
    /// Set once the first table row is printed (with the header).
    layout: Option<Layout>,
    documents: usize,
}

impl Printer {
    fn new(kind: &'static KindInfo, output: Output, options: Options, headers: bool) -> Self {
        Self {
            kind,
            output,
            options,
            headers,
            layout: None,
            documents: 0,
        }
    }

    /// The table's header: the kind's columns, or custom ones.
    fn header(&self) -> Vec<String> {
        match &self.output {
            Output::CustomColumns(columns) => {
                let mut header = columns.headers();
                if self.options.event {
                    header.insert(0, "EVENT".to_string());
                }
                header
            }
            _ => columns::headers(self.kind, self.options),
        }
    }

    /// One table row, matching [`Self::header`].
    fn cells(
        &self,
        event: &str,
        object: &DynamicObject,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<String>, CliError> {
        Ok(match &self.output {
            Output::CustomColumns(columns) => {
                let mut row = columns.row(&output::to_value(object)?);
                if self.options.event {
                    row.insert(0, event.to_string());
                }
                row
            }
            _ => columns::row(self.kind, object, self.options, event, now),
        })
    }

    fn print(&mut self, changes: &[(&str, DynamicObject)]) -> anyhow::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let format = match &self.output {
            Output::Plain(format) => *format,
            Output::JsonPath(template) => {
                for (_, object) in changes {
                    emit(&template.render(&output::to_value(object)?))?;
                }
                return Ok(());
            }
            Output::CustomColumns(_) => Format::Table,
        };
        match format {
            Format::Table | Format::Wide => {
                let now = Utc::now();
                let rows = changes
                    .iter()
                    .map(|(event, o)| self.cells(event, o, now))
                    .collect::<Result<Vec<_>, CliError>>()?;
                let layout = match &mut self.layout {
                    Some(layout) => layout,
                    None => {
                        let header = self.header();
                        let mut layout = Layout::new(&header, &rows);
                        if self.options.event {
                            // Room for the longest event name from the start.
                            layout.fit(&[MODIFIED.to_string()]);
                        }
                        if self.headers {
                            emit(&format!("{}\n", layout.line(&header)))?;
                        }
                        self.layout.insert(layout)
                    }
                };
                for row in rows {
                    layout.fit(&row);
                    emit(&format!("{}\n", layout.line(&row)))?;
                }
            }
            Format::Yaml | Format::Json => {
                for (event, object) in changes {
                    let value = if self.options.event {
                        output::event(event, object)?
                    } else {
                        output::to_value(object)?
                    };
                    let text = if format == Format::Json {
                        output::json_line(&value)?
                    } else if self.documents == 0 {
                        output::yaml(&value)?
                    } else {
                        format!("---\n{}", output::yaml(&value)?)
                    };
                    self.documents += 1;
                    emit(&text)?;
                }
            }
            Format::Name => {
                for (event, object) in changes {
                    let name = output::name(self.kind, object);
                    let line = if self.options.event {
                        format!("{event}   {name}\n")
                    } else {
                        format!("{name}\n")
                    };
                    emit(&line)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taskrun(name: &str, rv: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "kind": "TaskRun",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
            "spec": {}
        }))
        .expect("object")
    }

    #[test]
    fn a_relist_reports_only_what_changed() {
        let mut known: HashMap<_, _> = [taskrun("a", "1"), taskrun("b", "2"), taskrun("c", "3")]
            .into_iter()
            .map(|o| (o.key(), o))
            .collect();
        let changes = relisted(
            &mut known,
            vec![taskrun("a", "1"), taskrun("b", "5"), taskrun("d", "6")],
        );
        let summary: Vec<_> = changes
            .iter()
            .map(|(e, o)| (*e, o.metadata.name.as_str()))
            .collect();
        assert_eq!(summary, [(MODIFIED, "b"), (ADDED, "d"), (DELETED, "c")]);
        assert_eq!(known.len(), 3);
    }
}
