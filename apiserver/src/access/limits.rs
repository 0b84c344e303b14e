//! Per-client limits: how many watches one client may hold open, so one
//! client cannot pin the server's memory with watches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Open watches per client.
#[derive(Debug)]
pub struct WatchLimit {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open watch; closing it (dropping this) frees the slot.
#[derive(Debug)]
pub struct WatchSlot {
    client: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl WatchLimit {
    /// `max` watches per client; 0: no limit.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A slot for one more watch of `client`, unless it holds `max`.
    pub fn acquire(&self, client: &str) -> Result<WatchSlot, usize> {
        let mut open = match self.open.lock() {
            Ok(open) => open,
            Err(poisoned) => poisoned.into_inner(),
        };
        let count = open.entry(client.to_string()).or_default();
        if self.max > 0 && *count >= self.max {
            return Err(self.max);
        }
        *count += 1;
        Ok(WatchSlot {
            client: client.to_string(),
            open: self.open.clone(),
        })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = match self.open.lock() {
            Ok(open) => open,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_max_watches_and_closing_frees_a_slot() {
        let limit = WatchLimit::new(2);
        let a1 = limit.acquire("a").expect("first");
        let _a2 = limit.acquire("a").expect("second");
        assert_eq!(limit.acquire("a").expect_err("third"), 2);
        let _b = limit
            .acquire("b")
            .expect("another client has its own count");
        drop(a1);
        let _a3 = limit.acquire("a").expect("a slot was freed");
    }
}
