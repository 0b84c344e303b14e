//! One page of a list, bounded by count and by bytes, and the continue
//! token that resumes the list after it.
//!
//! The byte bound is what keeps every answer under the gRPC message limit
//! (4 MiB) whatever `limit` a client asks for, including an old client's
//! 0 ("everything"): such a client gets a continue token instead of an
//! error. A page always holds at least one object (an object is at most
//! 1 MiB), so a list always progresses.

use crate::error::ApiError;

/// Most bytes of objects one page carries: well under the 4 MiB message
/// limit, leaving room for the envelopes and one more object.
pub const MAX_PAGE_BYTES: usize = 3 * 1024 * 1024;

/// What an object costs in a page beyond its JSON (its envelope: kind,
/// namespace, name, resourceVersion, framing), rounded up.
const ENVELOPE_BYTES: usize = 256;

/// Most keys read from the store in one round trip.
const MAX_READ: usize = 500;

/// Keys read first, before the size of this kind's objects is known.
const FIRST_READ: usize = 64;

/// Collects a page from objects offered in key order.
#[derive(Debug)]
pub struct PageBuilder<T> {
    /// Most items; 0 for no bound but bytes.
    limit: usize,
    max_bytes: usize,
    bytes: usize,
    items: Vec<T>,
    /// The last key consumed (taken, or skipped by the selectors): the
    /// next page starts after it.
    last_key: Option<String>,
    /// Bytes and keys offered so far, matching or not: how big the next
    /// store read should be.
    scanned_bytes: usize,
    scanned_keys: usize,
    /// An object was refused: it belongs to the next page.
    overflowed: bool,
}

impl<T> PageBuilder<T> {
    /// A page of at most `limit` items (0: no count bound) and about
    /// `max_bytes`, resuming after `after` (None: from the start).
    pub fn new(limit: usize, max_bytes: usize, after: Option<String>) -> Self {
        Self {
            limit,
            max_bytes,
            bytes: 0,
            items: Vec::new(),
            last_key: after,
            scanned_bytes: 0,
            scanned_keys: 0,
            overflowed: false,
        }
    }

    /// True when no further object fits.
    pub fn is_full(&self) -> bool {
        self.overflowed || (self.limit > 0 && self.items.len() >= self.limit)
    }

    /// The key the next read starts after.
    pub fn last_key(&self) -> Option<&str> {
        self.last_key.as_deref()
    }

    /// Offers the next key in order, with its item and JSON size when it
    /// matches the selectors (None when it does not). Returns false, taking
    /// nothing, when the page is full: the key then starts the next page.
    pub fn offer(&mut self, key: &str, size: usize, item: Option<T>) -> bool {
        if self.is_full() {
            return false;
        }
        if let Some(item) = item {
            let cost = size.saturating_add(ENVELOPE_BYTES);
            if !self.items.is_empty() && self.bytes.saturating_add(cost) > self.max_bytes {
                self.overflowed = true;
                return false;
            }
            self.bytes += cost;
            self.items.push(item);
        }
        self.scanned_bytes = self.scanned_bytes.saturating_add(size);
        self.scanned_keys += 1;
        self.last_key = Some(key.to_string());
        true
    }

    /// How many keys the next store read should ask for: enough to fill
    /// the page as far as the objects seen so far predict, so that a page
    /// of big objects does not read hundreds it cannot carry.
    pub fn next_read(&self) -> usize {
        let by_count = if self.limit > 0 {
            self.limit.saturating_sub(self.items.len())
        } else {
            MAX_READ
        };
        let by_bytes = match self.scanned_bytes.checked_div(self.scanned_keys) {
            None => FIRST_READ,
            Some(average) => {
                let left = self.max_bytes.saturating_sub(self.bytes);
                left / average.saturating_add(ENVELOPE_BYTES) + 1
            }
        };
        by_count.min(by_bytes).clamp(1, MAX_READ)
    }

    /// The items and the continue token: `<revision>:<last key>` when
    /// `more` keys may remain after the last one consumed, else empty.
    pub fn finish(self, revision: i64, more: bool) -> (Vec<T>, String) {
        let token = match (&self.last_key, more) {
            (Some(key), true) => continue_token(revision, key),
            _ => String::new(),
        };
        (self.items, token)
    }
}

/// A continue token: later pages read at the first page's revision, so the
/// whole list is one consistent snapshot.
pub fn continue_token(revision: i64, last_key: &str) -> String {
    format!("{revision}:{last_key}")
}

/// The revision and last key of a continue token (None, None for none).
pub fn parse_continue(token: &str) -> Result<(Option<i64>, Option<String>), ApiError> {
    if token.is_empty() {
        return Ok((None, None));
    }
    let bad = || ApiError::BadRequest(format!("invalid continue token {token:?}"));
    let (revision, key) = token.split_once(':').ok_or_else(bad)?;
    let revision = revision.parse().map_err(|_| bad())?;
    Ok((Some(revision), Some(key.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer_all(page: &mut PageBuilder<usize>, sizes: &[usize]) -> usize {
        let mut taken = 0;
        for (i, size) in sizes.iter().enumerate() {
            if !page.offer(&format!("k{i:03}"), *size, Some(i)) {
                break;
            }
            taken += 1;
        }
        taken
    }

    #[test]
    fn a_page_stops_before_the_object_that_would_pass_the_byte_bound() {
        let mut page = PageBuilder::new(0, 1000, None);
        // 3 x (300 + envelope) = 1668 > 1000: the second does not fit.
        let taken = offer_all(&mut page, &[300, 300, 300]);
        assert_eq!(taken, 1);
        assert!(page.is_full());
        let (items, token) = page.finish(7, true);
        assert_eq!(items, [0]);
        assert_eq!(token, "7:k000");
    }

    #[test]
    fn a_page_holds_at_least_one_object_however_big() {
        let mut page = PageBuilder::new(0, 1000, None);
        assert_eq!(offer_all(&mut page, &[5000, 10]), 1);
        let (items, _) = page.finish(1, true);
        assert_eq!(items, [0]);
    }

    #[test]
    fn limit_zero_is_bounded_by_bytes_alone() {
        let mut page = PageBuilder::new(0, MAX_PAGE_BYTES, None);
        // 80 objects of 60 KB: about 4.8 MB in all, more than a message holds.
        let sizes = vec![60_000; 80];
        let taken = offer_all(&mut page, &sizes);
        assert!(taken > 1 && taken < 80, "{taken}");
        assert!(taken * (60_000 + ENVELOPE_BYTES) <= MAX_PAGE_BYTES);
    }

    #[test]
    fn a_page_stops_at_its_count_and_skipped_keys_move_the_token() {
        let mut page: PageBuilder<usize> = PageBuilder::new(2, MAX_PAGE_BYTES, None);
        assert!(page.offer("a", 10, Some(1)));
        assert!(page.offer("b", 10, None)); // filtered out, but consumed
        assert!(page.offer("c", 10, Some(3)));
        assert!(page.is_full());
        assert!(!page.offer("d", 10, Some(4)));
        assert_eq!(page.last_key(), Some("c"));
        let (items, token) = page.finish(3, true);
        assert_eq!(items, [1, 3]);
        assert_eq!(token, "3:c");
    }

    #[test]
    fn no_token_when_nothing_remains() {
        let mut page = PageBuilder::new(0, MAX_PAGE_BYTES, Some("a".into()));
        assert!(page.offer("b", 10, Some(())));
        let (items, token) = page.finish(3, false);
        assert_eq!(items.len(), 1);
        assert!(token.is_empty());
    }

    #[test]
    fn reads_shrink_for_big_objects() {
        let mut page: PageBuilder<()> = PageBuilder::new(0, MAX_PAGE_BYTES, None);
        assert_eq!(page.next_read(), FIRST_READ);
        page.offer("a", 1024 * 1024, Some(()));
        assert!(page.next_read() <= 3, "{}", page.next_read());
        let small: PageBuilder<()> = PageBuilder::new(5, MAX_PAGE_BYTES, None);
        assert_eq!(small.next_read(), 5);
    }

    #[test]
    fn continue_tokens_round_trip_and_bad_ones_are_refused() {
        let token = continue_token(42, "/sloth/taskruns/default/a:b");
        assert_eq!(
            parse_continue(&token).expect("parse"),
            (Some(42), Some("/sloth/taskruns/default/a:b".to_string()))
        );
        assert_eq!(parse_continue("").expect("empty"), (None, None));
        assert!(parse_continue("nope").is_err());
        assert!(parse_continue("x:key").is_err());
    }
}

/// Pages of `Resources::list` over the embedded store.
#[cfg(test)]
mod list_tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};
    use tempfile::TempDir;

    use super::MAX_PAGE_BYTES;
    use crate::registry::resources::{Resources, Selectors};
    use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};

    /// The gRPC message limit the server enforces.
    const MESSAGE_LIMIT: usize = 4 * 1024 * 1024;

    async fn resources() -> (Resources, TempDir) {
        let dir = TempDir::new().expect("temporary directory");
        let store = EmbeddedStore::open(&dir.path().join("sloth.redb"), EmbeddedOptions::default())
            .await
            .expect("open the store");
        (Resources::new(store), dir)
    }

    fn taskrun(name: &str, team: &str, padding: usize) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "sloth.dev/v1",
            "kind": "TaskRun",
            "metadata": {"name": name, "namespace": "default", "labels": {"team": team}},
            "spec": {"run": {"shell": "x".repeat(padding)}},
        }))
        .expect("json")
    }

    fn json_bytes(items: &[crate::registry::resources::Stored]) -> usize {
        items
            .iter()
            .map(|s| serde_json::to_vec(&s.value).expect("json").len())
            .sum()
    }

    fn name(value: &Value) -> String {
        value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every page of a list, as a client following tokens reads them.
    async fn all_pages(
        resources: &Resources,
        selectors: &Selectors,
        limit: usize,
        max_bytes: usize,
        between: impl AsyncFn(usize),
    ) -> Vec<crate::registry::resources::Listed> {
        let mut token = String::new();
        let mut pages = Vec::new();
        for page in 0..1000 {
            let listed = resources
                .list_bounded("TaskRun", "default", selectors, limit, max_bytes, &token)
                .await
                .expect("list");
            token = listed.continue_token.clone();
            pages.push(listed);
            if token.is_empty() {
                return pages;
            }
            between(page).await;
        }
        panic!("the list never ended");
    }

    #[tokio::test]
    async fn an_unlimited_list_of_big_objects_comes_in_pages_under_the_message_limit() {
        let (resources, _dir) = resources().await;
        // 80 TaskRuns of 60 KB: 4.8 MB, more than one message can carry.
        for i in 0..80 {
            resources
                .create("TaskRun", &taskrun(&format!("t{i:02}"), "a", 60_000))
                .await
                .expect("create");
        }
        let pages = all_pages(
            &resources,
            &Selectors::default(),
            0,
            MAX_PAGE_BYTES,
            async |_| {},
        )
        .await;
        assert!(pages.len() >= 2, "{} pages", pages.len());
        let mut names = Vec::new();
        for page in &pages {
            assert!(json_bytes(&page.items) < MESSAGE_LIMIT - 64 * 1024);
            assert_eq!(page.revision, pages[0].revision);
            names.extend(page.items.iter().map(|s| name(&s.value)));
        }
        let want: Vec<String> = (0..80).map(|i| format!("t{i:02}")).collect();
        assert_eq!(names, want);
    }

    #[tokio::test]
    async fn byte_bounded_pages_are_one_snapshot_and_honour_count_and_selectors() {
        let (resources, _dir) = resources().await;
        for i in 0..30 {
            let team = if i % 3 == 0 { "red" } else { "blue" };
            resources
                .create("TaskRun", &taskrun(&format!("t{i:02}"), team, 2_000))
                .await
                .expect("create");
        }
        // About four objects fit in 10 KB; writes between pages are not seen.
        let pages = all_pages(&resources, &Selectors::default(), 0, 10_000, async |page| {
            resources
                .create("TaskRun", &taskrun(&format!("t{page:02}-late"), "red", 10))
                .await
                .expect("create between pages");
        })
        .await;
        let names: Vec<String> = pages
            .iter()
            .flat_map(|p| p.items.iter().map(|s| name(&s.value)))
            .collect();
        let want: Vec<String> = (0..30).map(|i| format!("t{i:02}")).collect();
        assert_eq!(names, want);
        assert!(
            pages
                .iter()
                .all(|p| p.items.len() <= 4 && !p.items.is_empty())
        );

        // A count below the byte bound, with a selector: 10 red ones in
        // pages of 3, none twice, tokens moving past the blue ones.
        let red = Selectors::parse("team=red", "").expect("selector");
        let pages = all_pages(&resources, &red, 3, MAX_PAGE_BYTES, async |_| {}).await;
        let names: BTreeSet<String> = pages
            .iter()
            .flat_map(|p| p.items.iter().map(|s| name(&s.value)))
            .filter(|n| !n.ends_with("-late"))
            .collect();
        assert_eq!(names.len(), 10);
        assert!(pages.iter().all(|p| p.items.len() <= 3));
    }
}
