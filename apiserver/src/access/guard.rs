//! The gate every API call passes: authenticate the caller, authorize the
//! call by role, and write the audit log.

use std::net::SocketAddr;
use std::time::Instant;

use serde_json::Value;
use sloth_sdk::tls::PeerInfo;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::access::audit::{self, AuditLog, Record};
use crate::access::auth::policy::{self, Attributes, Decision};
use crate::access::auth::throttle::{AuthThrottle, REPORT_WINDOW};
use crate::access::auth::{Authenticator, User};
use crate::access::limits::{WatchLimit, WatchSlot};

/// Authentication, authorization, audit and per-client limits.
#[derive(Debug)]
pub struct Guard {
    authenticator: Authenticator,
    audit: Option<AuditLog>,
    watches: WatchLimit,
    /// Failed authentications per source address.
    throttle: AuthThrottle,
}

/// Why an HTTP request is not authenticated.
#[derive(Debug)]
pub enum HttpRefusal {
    /// HTTP 401.
    Unauthenticated(String),
    /// HTTP 429: too many failed authentications from its address.
    Throttled(String),
}

/// A caller whose call may go ahead.
#[derive(Debug)]
pub struct Admitted {
    pub user: User,
    source: Option<SocketAddr>,
    /// The call is allowed only on a TaskRun bound to this agent.
    pub bound_to: Option<String>,
    /// The call (a get of a Secret) is allowed only while an unfinished
    /// TaskRun bound to this agent references the Secret.
    pub secret_for: Option<String>,
}

impl Guard {
    /// See [`Authenticator::agent_logs_keys`].
    pub fn agent_logs_keys(&self, agent: &str) -> Vec<Vec<u8>> {
        self.authenticator.agent_logs_keys(agent)
    }

    pub fn new(authenticator: Authenticator, audit: Option<AuditLog>, watches: WatchLimit) -> Self {
        Self {
            authenticator,
            audit,
            watches,
            throttle: AuthThrottle::default(),
        }
    }

    /// Everyone may do anything: no credentials are configured.
    pub fn open() -> Self {
        Self::new(Authenticator::open(), None, WatchLimit::new(0))
    }

    /// True when calls are authorized or audited, so their object's names
    /// matter.
    pub fn inspects_calls(&self) -> bool {
        self.authenticator.enabled() || self.audit.is_some()
    }

    /// Authenticates and authorizes `call`; a refusal is audited.
    pub fn admit(
        &self,
        metadata: &MetadataMap,
        peer: Option<&PeerInfo>,
        call: &Attributes<'_>,
    ) -> Result<Admitted, Status> {
        let source = peer.map(|p| p.remote_addr);
        if let Err(message) = self.throttled(metadata, source, call) {
            return Err(Status::resource_exhausted(message));
        }
        let user = match self.authenticator.authenticate(metadata, peer) {
            Ok(user) => user,
            Err(e) => {
                self.failed(source);
                self.record(None, source, call, "unauthenticated", &e.0);
                return Err(Status::unauthenticated(e.0));
            }
        };
        match policy::authorize(&user, call) {
            Decision::Allow => Ok(Admitted {
                user,
                source,
                bound_to: None,
                secret_for: None,
            }),
            Decision::AllowIfBoundTo(agent) => Ok(Admitted {
                user,
                source,
                bound_to: Some(agent),
                secret_for: None,
            }),
            Decision::AllowIfSecretUsedBy(agent) => Ok(Admitted {
                user,
                source,
                bound_to: None,
                secret_for: Some(agent),
            }),
            Decision::Deny(message) => {
                self.record(Some(&user), source, call, "forbidden", &message);
                Err(Status::permission_denied(message))
            }
        }
    }

    /// Authenticates an HTTP request (any role may read /metrics).
    pub fn authenticate_http(
        &self,
        headers: axum::http::HeaderMap,
        peer: &PeerInfo,
    ) -> Result<User, HttpRefusal> {
        let metadata = MetadataMap::from_headers(headers);
        let source = Some(peer.remote_addr);
        let call = Attributes {
            verb: policy::Verb::Get,
            kind: "metrics",
            namespace: "",
            name: "",
            field_selector: "",
        };
        self.throttled(&metadata, source, &call)
            .map_err(HttpRefusal::Throttled)?;
        self.authenticator
            .authenticate(&metadata, Some(peer))
            .map_err(|e| {
                self.failed(source);
                HttpRefusal::Unauthenticated(e.0)
            })
    }

    /// Refuses a call from an address that failed to authenticate too
    /// often lately, before its credentials are looked at; audited once
    /// per window.
    fn throttled(
        &self,
        metadata: &MetadataMap,
        source: Option<SocketAddr>,
        call: &Attributes<'_>,
    ) -> Result<(), String> {
        let Some(source) = source.filter(|_| self.authenticator.enabled()) else {
            return Ok(());
        };
        if self.authenticator.is_internal(metadata) {
            return Ok(());
        }
        let Err(throttled) = self.throttle.check(source.ip(), Instant::now()) else {
            return Ok(());
        };
        let message = format!(
            "too many failed authentications from {}: try again in {:.1}s",
            source.ip(),
            throttled.retry_after.as_secs_f64()
        );
        if let Some(unreported) = throttled.report {
            let reason = format!(
                "{message} (calls from this address are refused and audited once per {}s; \
                 {unreported} more were refused in the previous window)",
                REPORT_WINDOW.as_secs()
            );
            self.record(None, Some(source), call, "ResourceExhausted", &reason);
        }
        Err(message)
    }

    fn failed(&self, source: Option<SocketAddr>) {
        if let Some(source) = source {
            self.throttle.failed(source.ip(), Instant::now());
        }
    }

    /// For calls admitted with `bound_to`: refuses (and audits) unless the
    /// stored TaskRun `stored` is bound to that agent.
    pub fn check_bound(
        &self,
        admitted: &Admitted,
        call: &Attributes<'_>,
        stored: &Value,
    ) -> Result<(), Status> {
        let Some(agent) = &admitted.bound_to else {
            return Ok(());
        };
        let bound = stored
            .pointer("/spec/agentName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if bound == agent {
            return Ok(());
        }
        let reason = if bound.is_empty() {
            "it is bound to no agent".to_string()
        } else {
            format!("it is bound to agent {bound:?}")
        };
        Err(self.refuse(admitted, call, &reason))
    }

    /// Refuses an admitted call for `reason` (audited here, once), worded
    /// as kubectl users know it: `<denial>: <reason>`.
    pub fn refuse(&self, admitted: &Admitted, call: &Attributes<'_>, reason: &str) -> Status {
        let message = format!("{}: {reason}", policy::denial(&admitted.user, call));
        self.record(
            Some(&admitted.user),
            admitted.source,
            call,
            "forbidden",
            &message,
        );
        Status::permission_denied(message)
    }

    /// Audits the outcome of an admitted mutating call.
    pub fn completed(
        &self,
        admitted: &Admitted,
        call: &Attributes<'_>,
        outcome: Result<(), &Status>,
    ) {
        if !call.verb.is_mutating() {
            return;
        }
        let (result, reason) = match outcome {
            Ok(()) => ("ok".to_string(), String::new()),
            Err(status) => (format!("{:?}", status.code()), status.message().to_string()),
        };
        self.record(
            Some(&admitted.user),
            admitted.source,
            call,
            &result,
            &reason,
        );
    }

    /// A slot for one more watch of this caller (by user when callers
    /// authenticate, else by connection).
    pub fn watch_slot(
        &self,
        admitted: &Admitted,
        call: &Attributes<'_>,
    ) -> Result<WatchSlot, Status> {
        let client = if self.authenticator.enabled() {
            format!("user {}", admitted.user.name)
        } else {
            admitted
                .source
                .map_or_else(|| "unknown".to_string(), |a| format!("connection {a}"))
        };
        self.watches.acquire(&client).map_err(|max| {
            let message = format!(
                "too many open watches: {client} already holds {max} (--max-watches-per-client)"
            );
            self.record(
                Some(&admitted.user),
                admitted.source,
                call,
                "ResourceExhausted",
                &message,
            );
            Status::resource_exhausted(message)
        })
    }

    fn record(
        &self,
        user: Option<&User>,
        source: Option<SocketAddr>,
        call: &Attributes<'_>,
        result: &str,
        reason: &str,
    ) {
        let Some(log) = &self.audit else {
            return;
        };
        log.write(&Record {
            time: audit::now(),
            user: user.map_or("", |u| u.name.as_str()),
            role: user.map_or("", |u| u.role.as_str()),
            verb: call.verb.name(),
            kind: call.kind,
            namespace: call.namespace,
            name: call.name,
            result,
            reason,
            source_address: source,
        });
    }
}
