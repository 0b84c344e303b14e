//! Which etcd versions may be asked for progress notifications.
//!
//! Before 3.4.31 and 3.5.13, etcd answers a progress request out of band
//! (etcd-io/etcd#15220, #17557): the answer carries the store's current
//! revision and can overtake events it still owes the watch, and whoever
//! trusts it skips those events for good. Kubernetes requires the same
//! versions before it relies on progress requests. Progress notifications
//! etcd sends on its own (`WithProgressNotify`) travel with the events and
//! are safe in every version.

/// Whether etcd `version` ("3.5.17") answers progress requests in order.
/// Unknown or unparsable versions are not trusted.
pub(crate) fn requests_are_ordered(version: &str) -> bool {
    let mut parts = version
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor)), Some(Some(patch))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, m) => m >= 6,
        (m, _) => m > 3,
    }
}

#[cfg(test)]
mod tests {
    use super::requests_are_ordered;

    #[test]
    fn only_versions_with_the_fix_are_asked_for_progress() {
        for old in [
            "3.4.23", "3.4.30", "3.5.0", "3.5.12", "3.3.27", "2.3.8", "", "3.x", "3.5",
        ] {
            assert!(!requests_are_ordered(old), "{old}");
        }
        for fixed in [
            "3.4.31",
            "3.4.37",
            "3.5.13",
            "3.5.21",
            "3.6.0",
            "3.6.5-rc.0",
            "4.0.0",
        ] {
            assert!(requests_are_ordered(fixed), "{fixed}");
        }
    }
}
