//! Authorization by role:
//!
//! - `admin`: everything.
//! - `operator`: everything except writing Locks of `sloth-system` (the
//!   controllers' leader election and agents' heartbeats).
//! - `viewer`: get, list, watch and logs.
//! - `agent` (user `agent:NAME`): its own Agent (get, create, update,
//!   status) and its own heartbeat Lock `sloth-system/agent-NAME`; Locks
//!   outside `sloth-system` (Lua's `lock` module); list and watch of the
//!   TaskRuns bound to it (field selector `spec.agentName=NAME`), get and
//!   status updates of a TaskRun bound to it; get of a Secret an
//!   unfinished TaskRun bound to it references (never list or watch of
//!   Secrets). Nothing else: it cannot
//!   create TaskRuns or Workflows or touch another agent's objects.
//!   StateEntries: read anywhere; written only for a TaskRun bound to it,
//!   in that TaskRun's namespace (judged on `spec.updatedBy` by
//!   `crate::registry::state_writes`).
//!   Blobs (kind `Blob`): upload for a TaskRun bound to it, download of
//!   the blobs such a TaskRun reads (`crate::artifacts::rpc`).
//!
//! Blobs: viewers may list artifacts (they are in TaskRun status) but not
//! download or upload them; operators and admins may do both.

use sloth_sdk::lease::heartbeat_lock_name;
use sloth_sdk::selector::Fields;
use sloth_sdk::well_known::SYSTEM_NAMESPACE;

use super::{Role, User};

/// What a call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    UpdateStatus,
    Delete,
    Logs,
    /// Reading a blob's bytes (workspaces, artifacts): not a viewer's read.
    Download,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::UpdateStatus => "update status of",
            Self::Delete => "delete",
            Self::Logs => "read logs of",
            Self::Download => "download",
        }
    }

    /// The verb as the audit log and metrics name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::UpdateStatus => "updatestatus",
            Self::Logs => "logs",
            other => other.as_str(),
        }
    }

    /// Changes stored data (and is written to the audit log).
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::UpdateStatus | Self::Delete
        )
    }

    fn is_read(self) -> bool {
        matches!(self, Self::Get | Self::List | Self::Watch | Self::Logs)
    }
}

/// One call, as authorization sees it.
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    pub verb: Verb,
    /// The canonical kind (`TaskRun`), or what the caller sent if unknown.
    pub kind: &'a str,
    pub namespace: &'a str,
    /// Empty for list and watch.
    pub name: &'a str,
    /// Of list and watch.
    pub field_selector: &'a str,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed if the stored TaskRun is bound to this agent: the caller
    /// looks it up (spec.agentName never changes once set).
    AllowIfBoundTo(String),
    /// Allowed if an unfinished TaskRun bound to this agent references
    /// the Secret: the caller looks it up ([`crate::access::secret_access`]).
    AllowIfSecretUsedBy(String),
    Deny(String),
}

/// Decides whether `user` may make the call.
pub fn authorize(user: &User, call: &Attributes<'_>) -> Decision {
    match user.role {
        Role::Admin => Decision::Allow,
        Role::Viewer if call.verb.is_read() => Decision::Allow,
        Role::Viewer => Decision::Deny(denial(user, call)),
        Role::Operator
            if call.kind == "Lock"
                && call.namespace == SYSTEM_NAMESPACE
                && !call.verb.is_read() =>
        {
            Decision::Deny(format!(
                "{}; the Locks of {SYSTEM_NAMESPACE} belong to the controllers and agents",
                denial(user, call)
            ))
        }
        Role::Operator => Decision::Allow,
        Role::Agent => match user.agent_name() {
            Some(agent) => authorize_agent(agent, user, call),
            None => Decision::Deny(format!(
                "{}: a user of role agent is named agent:NAME",
                denial(user, call)
            )),
        },
    }
}

fn authorize_agent(agent: &str, user: &User, call: &Attributes<'_>) -> Decision {
    use Verb::*;
    let allowed = match (call.kind, call.verb) {
        ("Agent", Get | Create | Update | UpdateStatus) => call.name == agent,
        ("Lock", Get | Create | Update | Delete) if call.namespace == SYSTEM_NAMESPACE => {
            call.name == heartbeat_lock_name(agent)
        }
        ("Lock", Get | Create | Update | Delete) => !call.namespace.is_empty(),
        ("TaskRun", List | Watch) => Fields::parse(call.field_selector)
            .ok()
            .is_some_and(|f| f.required_value("spec.agentName") == Some(agent)),
        ("TaskRun", Get | UpdateStatus) => return Decision::AllowIfBoundTo(agent.to_string()),
        ("StateEntry", Get | List | Watch) => true,
        ("StateEntry", Create | Update | Delete) => !call.namespace.is_empty(),
        ("Secret", Get) => return Decision::AllowIfSecretUsedBy(agent.to_string()),
        // Blobs: uploads for, and downloads referenced by, a TaskRun bound
        // to it (the blob calls name the TaskRun and check both).
        ("Blob", Create | Download) => return Decision::AllowIfBoundTo(agent.to_string()),
        _ => false,
    };
    if allowed {
        Decision::Allow
    } else {
        Decision::Deny(format!(
            "{}; an agent may only use its own Agent, its own Lock and the TaskRuns bound to it",
            denial(user, call)
        ))
    }
}

/// `taskruns "x" is forbidden: user "u" (role viewer) cannot create
/// taskruns in namespace "default"`, as kubectl users know it.
pub fn denial(user: &User, call: &Attributes<'_>) -> String {
    let plural = sloth_sdk::kinds::lookup(call.kind).map_or(call.kind, |k| k.plural);
    let object = if call.name.is_empty() {
        plural.to_string()
    } else {
        format!("{plural} {:?}", call.name)
    };
    let place = if call.namespace.is_empty() {
        String::new()
    } else {
        format!(" in namespace {:?}", call.namespace)
    };
    format!(
        "{object} is forbidden: user {:?} (role {}) cannot {} {plural}{place}",
        user.name,
        user.role.as_str(),
        call.verb.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: Role) -> User {
        User {
            name: name.into(),
            role,
        }
    }

    fn call<'a>(verb: Verb, kind: &'a str, namespace: &'a str, name: &'a str) -> Attributes<'a> {
        Attributes {
            verb,
            kind,
            namespace,
            name,
            field_selector: "",
        }
    }

    #[test]
    fn viewer_reads_but_never_writes() {
        let viewer = user("vera", Role::Viewer);
        for verb in [Verb::Get, Verb::List, Verb::Watch, Verb::Logs] {
            assert_eq!(
                authorize(&viewer, &call(verb, "TaskRun", "default", "x")),
                Decision::Allow
            );
        }
        for verb in [Verb::Create, Verb::Update, Verb::UpdateStatus, Verb::Delete] {
            let Decision::Deny(message) =
                authorize(&viewer, &call(verb, "Workflow", "default", "wf"))
            else {
                panic!("{verb:?} allowed to a viewer");
            };
            assert!(message.contains("forbidden"), "{message}");
            assert!(message.contains("\"vera\""), "{message}");
            assert!(message.contains("workflows"), "{message}");
            assert!(message.contains(verb.as_str()), "{message}");
        }
    }

    #[test]
    fn operator_may_do_all_but_write_system_locks() {
        let op = user("olga", Role::Operator);
        assert_eq!(
            authorize(&op, &call(Verb::Create, "TaskRun", "default", "x")),
            Decision::Allow
        );
        assert_eq!(
            authorize(&op, &call(Verb::Delete, "Lock", "default", "l")),
            Decision::Allow
        );
        assert_eq!(
            authorize(&op, &call(Verb::Get, "Lock", "sloth-system", "agent-a")),
            Decision::Allow
        );
        for verb in [Verb::Create, Verb::Update, Verb::Delete] {
            assert!(matches!(
                authorize(
                    &op,
                    &call(verb, "Lock", "sloth-system", "sloth-controllers")
                ),
                Decision::Deny(_)
            ));
        }
    }

    #[test]
    fn an_agent_uses_only_its_own_objects() {
        let agent = user("agent:build-1", Role::Agent);
        let allow = |c: Attributes<'_>| authorize(&agent, &c) == Decision::Allow;
        assert!(allow(call(Verb::Update, "Agent", "", "build-1")));
        assert!(allow(call(Verb::UpdateStatus, "Agent", "", "build-1")));
        assert!(
            !allow(call(Verb::Update, "Agent", "", "build-2")),
            "cordon another agent"
        );
        assert!(!allow(call(Verb::Delete, "Agent", "", "build-1")));
        assert!(allow(call(
            Verb::Update,
            "Lock",
            "sloth-system",
            "agent-build-1"
        )));
        assert!(!allow(call(
            Verb::Update,
            "Lock",
            "sloth-system",
            "agent-build-2"
        )));
        assert!(!allow(call(
            Verb::Update,
            "Lock",
            "sloth-system",
            "sloth-controllers"
        )));
        assert!(
            allow(call(Verb::Create, "Lock", "default", "deploy")),
            "Lua locks"
        );
        assert!(!allow(call(Verb::Create, "TaskRun", "default", "x")));
        assert!(!allow(call(Verb::Update, "TaskRun", "default", "x")));
        assert!(!allow(call(Verb::Create, "Workflow", "default", "wf")));
        assert!(!allow(call(Verb::Logs, "TaskRun", "default", "x")));
        assert_eq!(
            authorize(&agent, &call(Verb::Get, "Secret", "default", "db")),
            Decision::AllowIfSecretUsedBy("build-1".into())
        );
        for verb in [
            Verb::List,
            Verb::Watch,
            Verb::Create,
            Verb::Update,
            Verb::Delete,
        ] {
            assert!(!allow(call(verb, "Secret", "default", "db")), "{verb:?}");
        }
        assert_eq!(
            authorize(&agent, &call(Verb::UpdateStatus, "TaskRun", "default", "x")),
            Decision::AllowIfBoundTo("build-1".into())
        );
        let watch = |selector: &'static str| Attributes {
            field_selector: selector,
            ..call(Verb::Watch, "TaskRun", "", "")
        };
        assert!(allow(watch("spec.agentName=build-1")));
        assert!(allow(watch(
            "spec.agentName==build-1,metadata.namespace=default"
        )));
        assert!(!allow(watch("")));
        assert!(!allow(watch("spec.agentName=build-2")));
        assert!(!allow(watch("spec.agentName!=build-1")));
        // State: read anywhere, written in a namespace (content judged later).
        assert!(allow(call(Verb::List, "StateEntry", "", "")));
        assert!(allow(call(Verb::Update, "StateEntry", "default", "k-1")));
        assert!(!allow(call(
            Verb::UpdateStatus,
            "StateEntry",
            "default",
            "k-1"
        )));
    }

    #[test]
    fn an_agent_role_without_an_agent_name_may_do_nothing() {
        let odd = user("build-1", Role::Agent);
        assert!(matches!(
            authorize(&odd, &call(Verb::Get, "Agent", "", "build-1")),
            Decision::Deny(_)
        ));
    }
}
