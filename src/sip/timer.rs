//! A timer queue for one shard: deadlines in tokio time, popped by a periodic tick.
//! Entries are never cancelled; stale ones are recognised by their owner and ignored.

use std::collections::BTreeMap;
use tokio::time::Instant;

pub struct TimerQueue<T> {
    entries: BTreeMap<(Instant, u64), T>,
    seq: u64,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<T> TimerQueue<T> {
    pub fn schedule(&mut self, at: Instant, item: T) {
        self.seq += 1;
        self.entries.insert((at, self.seq), item);
    }

    /// Removes and returns every entry due at `now`, earliest first.
    pub fn expired(&mut self, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        while let Some(entry) = self.entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            out.push(entry.remove());
        }
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        q.schedule(t0 + Duration::from_millis(20), "b");
        q.schedule(t0 + Duration::from_millis(10), "a");
        q.schedule(t0 + Duration::from_millis(30), "c");
        assert!(q.expired(t0).is_empty());
        assert_eq!(q.expired(t0 + Duration::from_millis(20)), vec!["a", "b"]);
        assert_eq!(q.len(), 1);
    }
}
