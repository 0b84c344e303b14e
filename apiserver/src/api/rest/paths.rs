//! The resource paths of the REST API, parsed into what they name.
//!
//! `/apis/sloth.dev/v1/namespaces/{ns}/{plural}[/{name}[/status|/log]]`,
//! `/apis/sloth.dev/v1/{plural}[/{name}[/status]]` (cluster-scoped kinds, and
//! namespaced kinds across every namespace) and
//! `/apis/sloth.dev/v1/selfsubjectrulesreview`. Plurals come from the kind
//! registry ([`sloth_sdk::kinds::KINDS`]), so a new kind is served at once.

use sloth_sdk::kinds::{KINDS, KindInfo};

/// The prefix every resource path starts with.
pub(super) const PREFIX: &str = "/apis/sloth.dev/v1";

/// What a path names.
#[derive(Debug)]
pub(super) enum Target {
    /// A collection: `namespace` is empty for a cluster-scoped kind and for
    /// a namespaced kind across every namespace.
    Collection {
        kind: &'static KindInfo,
        namespace: String,
    },
    Object(ObjectPath),
    /// The status subresource of an object.
    Status(ObjectPath),
    /// The output of a TaskRun.
    Log(ObjectPath),
    RulesReview,
}

/// One object.
#[derive(Debug)]
pub(super) struct ObjectPath {
    pub kind: &'static KindInfo,
    pub namespace: String,
    pub name: String,
}

/// Why a path names nothing (HTTP 404).
#[derive(Debug, thiserror::Error)]
pub(super) enum PathError {
    #[error("the server could not find the requested resource {0:?}")]
    Unknown(String),
    #[error("the server has no resource {plural:?} (known: {known})")]
    UnknownPlural { plural: String, known: String },
    #[error("{plural} are cluster-scoped: use {PREFIX}/{plural}")]
    ClusterScoped { plural: String },
    #[error("{plural} are namespaced: use {PREFIX}/namespaces/NAMESPACE/{plural}/NAME")]
    Namespaced { plural: String },
    #[error("only taskruns have a log subresource")]
    NoLog,
}

/// The kind served under `plural`.
pub(super) fn kind_of_plural(plural: &str) -> Result<&'static KindInfo, PathError> {
    KINDS
        .iter()
        .find(|k| k.plural == plural)
        .ok_or_else(|| PathError::UnknownPlural {
            plural: plural.to_string(),
            known: KINDS
                .iter()
                .map(|k| k.plural)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Parses `rest`, the path after [`PREFIX`] and its slash.
pub(super) fn parse(rest: &str) -> Result<Target, PathError> {
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let unknown = || PathError::Unknown(format!("{PREFIX}/{rest}"));
    if segments.iter().any(|s| s.is_empty()) {
        return Err(unknown());
    }
    let (namespace, tail) = match segments.as_slice() {
        ["selfsubjectrulesreview"] => return Ok(Target::RulesReview),
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (ns.to_string(), tail),
        tail => (String::new(), tail),
    };
    let Some((plural, tail)) = tail.split_first() else {
        return Err(unknown());
    };
    let kind = kind_of_plural(plural)?;
    let scoped = !namespace.is_empty();
    if scoped && !kind.namespaced {
        return Err(PathError::ClusterScoped {
            plural: plural.to_string(),
        });
    }
    let object = |name: &str| -> Result<ObjectPath, PathError> {
        if kind.namespaced && !scoped {
            return Err(PathError::Namespaced {
                plural: plural.to_string(),
            });
        }
        Ok(ObjectPath {
            kind,
            namespace: namespace.clone(),
            name: name.to_string(),
        })
    };
    match tail {
        [] => Ok(Target::Collection {
            kind,
            namespace: namespace.clone(),
        }),
        [name] => Ok(Target::Object(object(name)?)),
        [name, "status"] => Ok(Target::Status(object(name)?)),
        [name, "log"] if kind.kind == "TaskRun" => Ok(Target::Log(object(name)?)),
        [_, "log"] => Err(PathError::NoLog),
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(target: Target) -> ObjectPath {
        match target {
            Target::Object(o) | Target::Status(o) | Target::Log(o) => o,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn namespaced_paths_name_collections_objects_and_subresources() {
        let Ok(Target::Collection { kind, namespace }) = parse("namespaces/ci/taskruns") else {
            panic!("collection");
        };
        assert_eq!((kind.kind, namespace.as_str()), ("TaskRun", "ci"));
        let o = object(parse("namespaces/ci/workflows/build").expect("object"));
        assert_eq!(
            (o.kind.kind, o.namespace.as_str(), o.name.as_str()),
            ("Workflow", "ci", "build")
        );
        assert!(matches!(
            parse("namespaces/ci/taskruns/t/status"),
            Ok(Target::Status(_))
        ));
        assert!(matches!(
            parse("namespaces/ci/taskruns/t/log"),
            Ok(Target::Log(_))
        ));
        assert!(matches!(
            parse("namespaces/ci/workflows/w/log"),
            Err(PathError::NoLog)
        ));
    }

    #[test]
    fn cluster_paths_list_everywhere_but_name_only_cluster_scoped_objects() {
        let Ok(Target::Collection { kind, namespace }) = parse("taskruns") else {
            panic!("all namespaces");
        };
        assert_eq!((kind.kind, namespace.as_str()), ("TaskRun", ""));
        let o = object(parse("agents/a1/status").expect("agent status"));
        assert_eq!((o.kind.kind, o.name.as_str()), ("Agent", "a1"));
        assert!(matches!(
            parse("taskruns/t"),
            Err(PathError::Namespaced { .. })
        ));
        assert!(matches!(
            parse("namespaces/ci/agents/a1"),
            Err(PathError::ClusterScoped { .. })
        ));
    }

    #[test]
    fn every_registered_kind_is_served_and_nonsense_is_not() {
        for kind in KINDS {
            assert!(parse(kind.plural).is_ok(), "{}", kind.plural);
        }
        assert!(matches!(
            parse("selfsubjectrulesreview"),
            Ok(Target::RulesReview)
        ));
        assert!(matches!(
            parse("ponies"),
            Err(PathError::UnknownPlural { .. })
        ));
        assert!(matches!(
            parse("namespaces/ci"),
            Err(PathError::UnknownPlural { .. })
        ));
        assert!(matches!(parse(""), Err(PathError::Unknown(_))));
        assert!(matches!(
            parse("namespaces//taskruns"),
            Err(PathError::Unknown(_))
        ));
        assert!(matches!(
            parse("namespaces/ci/taskruns/t/x"),
            Err(PathError::Unknown(_))
        ));
    }
}
