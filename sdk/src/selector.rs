//! Label selectors (`app=web,tier!=db,env in (a,b),gpu,!spot`) and field
//! selectors (`spec.agentName=a1,status.phase!=Failed`), as in Kubernetes.

use std::collections::BTreeMap;

use crate::objects::{LabelSelector, SelectorOperator};

/// A selector string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} selector {input:?}: {reason}")]
pub struct SelectorError {
    what: &'static str,
    input: String,
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(Vec<LabelRequirement>);

impl Labels {
    /// Parses `app=web,tier!=db,env in (a,b),!canary`; the error names the bad term.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let err = |reason: &str| SelectorError {
            what: "label",
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let mut reqs = Vec::new();
        for term in split_top_level(input) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let req = if let Some(key) = term.strip_prefix('!') {
                LabelRequirement::DoesNotExist(checked_key(key.trim()).map_err(|r| err(&r))?)
            } else if let Some((key, values)) = split_set(term, " notin ") {
                LabelRequirement::NotIn(
                    checked_key(&key).map_err(|r| err(&r))?,
                    checked_values(values).map_err(|r| err(&r))?,
                )
            } else if let Some((key, values)) = split_set(term, " in ") {
                LabelRequirement::In(
                    checked_key(&key).map_err(|r| err(&r))?,
                    checked_values(values).map_err(|r| err(&r))?,
                )
            } else if let Some((key, value)) = term.split_once("!=") {
                LabelRequirement::NotEquals(
                    checked_key(key.trim()).map_err(|r| err(&r))?,
                    checked_value(value.trim()).map_err(|r| err(&r))?,
                )
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                LabelRequirement::Equals(
                    checked_key(key.trim()).map_err(|r| err(&r))?,
                    checked_value(value.trim()).map_err(|r| err(&r))?,
                )
            } else if term.contains(['(', ')', ' ']) {
                return Err(err(&format!("cannot read term {term:?}")));
            } else {
                LabelRequirement::Exists(checked_key(term).map_err(|r| err(&r))?)
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// The selector an object's `agentSelector` describes.
    pub fn from_selector(selector: &LabelSelector) -> Self {
        let mut reqs: Vec<LabelRequirement> = selector
            .match_labels
            .iter()
            .map(|(k, v)| LabelRequirement::Equals(k.clone(), v.clone()))
            .collect();
        for e in &selector.match_expressions {
            reqs.push(match e.operator {
                SelectorOperator::In => LabelRequirement::In(e.key.clone(), e.values.clone()),
                SelectorOperator::NotIn => LabelRequirement::NotIn(e.key.clone(), e.values.clone()),
                SelectorOperator::Exists => LabelRequirement::Exists(e.key.clone()),
                SelectorOperator::DoesNotExist => LabelRequirement::DoesNotExist(e.key.clone()),
            });
        }
        Self(reqs)
    }

    /// True for the empty selector, which matches everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|req| match req {
            LabelRequirement::Equals(k, v) => labels.get(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => labels.get(k) != Some(v),
            LabelRequirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            LabelRequirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            LabelRequirement::Exists(k) => labels.contains_key(k),
            LabelRequirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

impl std::fmt::Display for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let terms: Vec<String> = self
            .0
            .iter()
            .map(|req| match req {
                // `k==v` when v holds a `=`: parsing splits at the first
                // `==` (else the first `=`), which must be the one after k.
                LabelRequirement::Equals(k, v) if v.contains('=') => format!("{k}=={v}"),
                LabelRequirement::Equals(k, v) => format!("{k}={v}"),
                LabelRequirement::NotEquals(k, v) => format!("{k}!={v}"),
                LabelRequirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                LabelRequirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                LabelRequirement::Exists(k) => k.clone(),
                LabelRequirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&terms.join(","))
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(input: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
}

fn split_set(term: &str, op: &str) -> Option<(String, Vec<String>)> {
    let (key, rest) = term.split_once(op)?;
    let rest = rest.trim();
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    let values = inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    Some((key.trim().to_string(), values))
}

/// A label key, strictly as labels may be named (`a=b=c` or `a b=c` is a
/// typo to report, not a selector that silently matches nothing).
fn checked_key(key: &str) -> Result<String, String> {
    crate::validation::names::validate_label_key(key)
        .map(|()| key.to_string())
        .map_err(|e| format!("invalid key {key:?}: {e}"))
}

/// A label value, strictly as labels may hold (empty is allowed).
fn checked_value(value: &str) -> Result<String, String> {
    crate::validation::names::validate_label_value(value)
        .map(|()| value.to_string())
        .map_err(|e| format!("invalid value {value:?}: {e}"))
}

fn checked_values(values: Vec<String>) -> Result<Vec<String>, String> {
    values.into_iter().map(|v| checked_value(&v)).collect()
}

/// A parsed field selector over an object's JSON; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, bool, String)>);

impl Fields {
    /// Parses `path=value` and `path!=value` terms separated by commas
    /// (`spec.agentName=a1`).
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for term in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, true, v)
            } else {
                return Err(SelectorError {
                    what: "field",
                    input: input.to_string(),
                    reason: format!("term {term:?} needs = or !="),
                });
            };
            reqs.push((path.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    /// True for the empty selector, which matches everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value `field` must equal for every match, if the selector pins one
    /// (lets a server index by e.g. `spec.agentName`).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(p, eq, _)| *eq && p == field)
            .map(|(_, _, v)| v.as_str())
    }

    /// Matches against an object's JSON; a missing field reads as "".
    pub fn matches(&self, object: &serde_json::Value) -> bool {
        self.matches_by(|path| std::borrow::Cow::Owned(field_text(object, path)))
    }

    /// Matches with `text` reading each field path (as [`field_text`]
    /// would), for objects held in another form than their JSON tree.
    pub fn matches_by<'a>(&self, mut text: impl FnMut(&str) -> std::borrow::Cow<'a, str>) -> bool {
        self.0
            .iter()
            .all(|(path, equal, value)| (text(path) == value.as_str()) == *equal)
    }
}

/// The text of a dotted field path in JSON: strings as-is, other scalars as
/// JSON, missing or null as "".
pub fn field_text(object: &serde_json::Value, path: &str) -> String {
    let mut node = object;
    for part in path.split('.') {
        match node.get(part) {
            Some(next) => node = next,
            None => return String::new(),
        }
    }
    match node {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_terms_match_as_in_kubernetes() {
        let l = labels(&[("app", "web"), ("env", "prod"), ("gpu", "true")]);
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("env in (prod, staging)", true),
            ("env notin (prod)", false),
            ("gpu", true),
            ("!gpu", false),
            ("!spot,app=web,env in (prod)", true),
            ("missing notin (x)", true),
            ("missing in (x)", false),
        ] {
            assert_eq!(Labels::parse(sel).expect(sel).matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn bad_label_selectors_name_the_input() {
        for bad in [
            "a b",
            "=x",
            "(x)",
            "a=b=c",
            "a==b=c",
            "a!=b=c",
            "a in (b=c)",
            "a=b c",
        ] {
            let e = Labels::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn field_selector_reads_nested_json() {
        let obj = serde_json::json!({"spec": {"agentName": "a1"}, "status": {"phase": "Running"}});
        let sel = Fields::parse("spec.agentName=a1,status.phase!=Failed").expect("parse");
        assert!(sel.matches(&obj));
        assert_eq!(sel.required_value("spec.agentName"), Some("a1"));
        assert!(
            !Fields::parse("spec.agentName=a2")
                .expect("parse")
                .matches(&obj)
        );
        assert!(Fields::parse("spec.agentName").is_err());
    }
}
