//! Where objects live in the store: `/sloth/<plural>/<namespace>/<name>`,
//! or `/sloth/<plural>/<name>` for cluster-scoped kinds.

use sloth_sdk::kinds::KindInfo;

const ROOT: &str = "/sloth/";

/// The key of one object.
pub fn object_key(kind: &KindInfo, namespace: &str, name: &str) -> String {
    if kind.namespaced {
        format!("{ROOT}{}/{namespace}/{name}", kind.plural)
    } else {
        format!("{ROOT}{}/{name}", kind.plural)
    }
}

/// The prefix of every object of a kind in `namespace` (all namespaces when
/// empty). The trailing slash keeps `ns` from matching `ns2`.
pub fn kind_prefix(kind: &KindInfo, namespace: &str) -> String {
    if kind.namespaced && !namespace.is_empty() {
        format!("{ROOT}{}/{namespace}/", kind.plural)
    } else {
        format!("{ROOT}{}/", kind.plural)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sloth_sdk::kinds::lookup;

    #[test]
    fn namespaces_do_not_share_prefixes() {
        let tr = lookup("taskrun").expect("kind");
        let key = object_key(tr, "ns2", "a");
        assert!(key.starts_with(&kind_prefix(tr, "ns2")));
        assert!(!key.starts_with(&kind_prefix(tr, "ns")));
        assert!(key.starts_with(&kind_prefix(tr, "")));
        let agent = lookup("agent").expect("kind");
        assert_eq!(object_key(agent, "", "a1"), "/sloth/agents/a1");
    }
}
