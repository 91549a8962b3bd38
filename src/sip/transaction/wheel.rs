//! The transaction layer's timers: a wheel of 10 ms slots over 64 s (RFC 3261's
//! longest transaction timer is 64×T1 = 32 s). An entry is 24 bytes in its slot's
//! vector, where a B-tree keyed by deadline spent about 90 (key, value and half-full
//! nodes); entries are never cancelled, and a slot keeps an entry due a whole turn
//! later until its deadline. Deadlines are milliseconds since the wheel's epoch (the
//! first `now` it saw), so time is an input like everywhere in the layer.

use tokio::time::Instant;

/// Width of a slot.
const SLOT_MS: u64 = 10;
/// Slots in one turn (64 s).
const SLOTS: usize = 6400;

pub struct Wheel<T> {
    slots: Vec<Vec<(u64, T)>>,
    epoch: Option<Instant>,
    /// Everything due at or before this (ms since epoch) has been popped.
    done_ms: u64,
    len: usize,
}

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            epoch: None,
            done_ms: 0,
            len: 0,
        }
    }
}

impl<T> Wheel<T> {
    /// Sets the epoch on the first call (the owner passes every `now` it gets, before
    /// scheduling anything relative to it).
    pub fn start(&mut self, now: Instant) {
        self.epoch.get_or_insert(now);
    }

    fn ms(&mut self, at: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(at);
        at.saturating_duration_since(epoch).as_millis() as u64
    }

    pub fn schedule(&mut self, at: Instant, item: T) {
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, Vec::new);
        }
        let ms = self.ms(at);
        self.slots[slot(ms)].push((ms, item));
        self.len += 1;
    }

    /// Removes and returns every entry due at `now`, in slot order (earliest first,
    /// to the slot's width).
    pub fn expired(&mut self, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        if self.len == 0 {
            if self.epoch.is_some() {
                self.done_ms = self.done_ms.max(self.ms(now));
            }
            return out;
        }
        let now_ms = self.ms(now);
        let first = self.done_ms / SLOT_MS;
        let last = now_ms / SLOT_MS;
        // A gap longer than a turn visits each slot once.
        let last = last.min(first + SLOTS as u64 - 1);
        for tick in first..=last {
            let bucket = &mut self.slots[tick as usize % SLOTS];
            let mut i = 0;
            while i < bucket.len() {
                if bucket[i].0 <= now_ms {
                    out.push(bucket.remove(i).1);
                } else {
                    i += 1;
                }
            }
        }
        self.len -= out.len();
        self.done_ms = self.done_ms.max(now_ms);
        out
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn slot(ms: u64) -> usize {
    (ms / SLOT_MS) as usize % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_what_is_due_in_order() {
        let t0 = Instant::now();
        let mut w = Wheel::default();
        w.start(t0);
        let at = |ms| t0 + Duration::from_millis(ms);
        w.schedule(at(0), "now");
        w.schedule(at(500), "a");
        w.schedule(at(1500), "b");
        w.schedule(at(32_000), "long");
        // A whole turn later, in the same slot as "a".
        w.schedule(at(64_500), "next turn");
        assert_eq!(w.expired(at(0)), vec!["now"]);
        assert_eq!(w.expired(at(499)), Vec::<&str>::new());
        assert_eq!(w.expired(at(2000)), vec!["a", "b"]);
        assert_eq!(w.len(), 2);
        // A jump of more than a turn still finds each entry once.
        assert_eq!(w.expired(at(40_000)), vec!["long"]);
        assert_eq!(w.expired(at(64_499)), Vec::<&str>::new());
        assert_eq!(w.expired(at(64_500)), vec!["next turn"]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_long_gap_visits_every_slot() {
        let t0 = Instant::now();
        let mut w = Wheel::default();
        w.schedule(t0, 0);
        w.expired(t0);
        for i in 1..=100u64 {
            w.schedule(t0 + Duration::from_millis(i * 300), i);
        }
        let got = w.expired(t0 + Duration::from_secs(200));
        assert_eq!(got, (1..=100).collect::<Vec<_>>());
    }
}
