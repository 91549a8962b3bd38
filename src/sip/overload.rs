//! Overload control at a shard (issue 12): when the shard's queue is too deep or its
//! oldest message too old, a new INVITE or REGISTER is refused with 503 and
//! Retry-After before any work is spent on it (no transaction, no digest, no actor),
//! while retransmissions of transactions already accepted, ACKs and requests inside
//! dialogs go on as before (they finish work already paid for). Sans-IO: the shard
//! measures its queue and asks [`admit`]; [`OverloadStats`] counts for the metrics.
//!
//! What is measured: the messages handed to a shard (by the TCP transport, or
//! forwarded by the shard whose UDP socket read them) wait in its mailbox; each
//! carries the time it was queued, and the shard counts how many are queued. Datagrams
//! a shard reads from its own socket are handled as they are read (their wait in the
//! kernel's socket buffer is not seen as a time: instead the reading shard samples how
//! full its socket's receive buffer is (every few datagrams, `SO_MEMINFO`), and a
//! buffer more than half full counts as overload too: that is where the excess waits
//! when the shard reads and works on the same thread, and where the kernel drops it
//! once full (load-tests' overload phase, docs/benchmarks.md).

use rsipstack::sip::Method;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// When a shard counts as overloaded (from the `sip` config section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverloadSettings {
    /// A message that waited longer than this in the shard's queue.
    pub max_queue_age: Duration,
    /// More messages than this waiting in the shard's queue.
    pub max_queue_depth: usize,
    /// Seconds in the 503's Retry-After.
    pub retry_after_secs: u32,
    /// A UDP socket whose receive buffer is fuller than this (percent).
    pub max_socket_fill_pct: u32,
}

impl Default for OverloadSettings {
    fn default() -> Self {
        Self {
            // Well under T1 (500 ms): a request that waited this long will be
            // retransmitted before its answer could arrive.
            max_queue_age: Duration::from_millis(200),
            max_queue_depth: 8192,
            retry_after_secs: 2,
            // Half full: the other half absorbs the burst while the 503s go out.
            max_socket_fill_pct: 50,
        }
    }
}

/// The shard's queue as seen when it takes one message from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSample {
    /// Messages still waiting behind this one.
    pub depth: usize,
    /// How long this message waited.
    pub age: Duration,
    /// How full the receive buffer of the UDP socket it was read from was, in percent
    /// (the last sample; 0 for TCP and when unknown).
    pub socket_fill_pct: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// 503 Service Unavailable with Retry-After: this many seconds.
    Refuse {
        retry_after: u32,
    },
}

/// Whether a request that matched no transaction may start work. Only new INVITEs
/// (no To tag) and REGISTERs are refused: everything else belongs to work already
/// accepted (a dialog's BYE, re-INVITE, ACK; a CANCEL; a SUBSCRIBE refresh).
pub fn admit(
    settings: &OverloadSettings,
    queue: QueueSample,
    method: Method,
    in_dialog: bool,
) -> Admission {
    let new_work = match method {
        Method::Invite => !in_dialog,
        Method::Register => true,
        _ => false,
    };
    if new_work && overloaded(settings, queue) {
        Admission::Refuse {
            retry_after: settings.retry_after_secs,
        }
    } else {
        Admission::Admit
    }
}

pub fn overloaded(settings: &OverloadSettings, queue: QueueSample) -> bool {
    queue.age > settings.max_queue_age
        || queue.depth > settings.max_queue_depth
        || queue.socket_fill_pct > settings.max_socket_fill_pct
}

/// Counters of overload control, shared by the shards (for the metrics).
#[derive(Debug, Default)]
pub struct OverloadStats {
    refused_invite: AtomicU64,
    refused_register: AtomicU64,
    /// The deepest queue and the oldest wait seen since the last scrape.
    max_depth: AtomicUsize,
    max_age_us: AtomicU64,
}

impl OverloadStats {
    pub fn refused(&self, method: Method) {
        match method {
            Method::Invite => self.refused_invite.fetch_add(1, Relaxed),
            _ => self.refused_register.fetch_add(1, Relaxed),
        };
    }

    pub fn observe(&self, queue: QueueSample) {
        self.max_depth.fetch_max(queue.depth, Relaxed);
        self.max_age_us
            .fetch_max(queue.age.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// (refused INVITEs, refused REGISTERs).
    pub fn refused_totals(&self) -> (u64, u64) {
        (
            self.refused_invite.load(Relaxed),
            self.refused_register.load(Relaxed),
        )
    }

    /// The deepest queue and the oldest wait since the last call, then resets them.
    pub fn take_peaks(&self) -> (usize, Duration) {
        (
            self.max_depth.swap(0, Relaxed),
            Duration::from_micros(self.max_age_us.swap(0, Relaxed)),
        )
    }
}

/// The number of messages waiting in each shard's mailbox.
#[derive(Debug, Default)]
pub struct QueueDepth(AtomicUsize);

impl QueueDepth {
    /// A message was queued for the shard.
    pub fn push(&self) {
        self.0.fetch_add(1, Relaxed);
    }
    /// A message was taken (or could not be queued); returns how many still wait.
    pub fn pop(&self) -> usize {
        self.0.fetch_sub(1, Relaxed).saturating_sub(1)
    }
    pub fn get(&self) -> usize {
        self.0.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(depth: usize, age_ms: u64) -> QueueSample {
        QueueSample {
            depth,
            age: Duration::from_millis(age_ms),
            socket_fill_pct: 0,
        }
    }

    fn filled(pct: u32) -> QueueSample {
        QueueSample {
            socket_fill_pct: pct,
            ..q(0, 0)
        }
    }

    #[test]
    fn new_invites_and_registers_are_refused_over_the_thresholds() {
        let s = OverloadSettings::default();
        let refuse = Admission::Refuse { retry_after: 2 };
        #[rustfmt::skip]
        let table: &[(&str, QueueSample, Method, bool, Admission)] = &[
            ("idle shard: a new INVITE is admitted", q(0, 0), Method::Invite, false, Admission::Admit),
            ("queue age over 200 ms: a new INVITE gets 503", q(10, 250), Method::Invite, false, refuse),
            ("queue age over 200 ms: a REGISTER gets 503", q(10, 250), Method::Register, false, refuse),
            ("queue deeper than 8192: a new INVITE gets 503", q(9000, 1), Method::Invite, false, refuse),
            ("at the thresholds: admitted", q(8192, 200), Method::Invite, false, Admission::Admit),
            ("socket buffer 80% full: a new INVITE gets 503", filled(80), Method::Invite, false, refuse),
            ("socket buffer 80% full: a REGISTER gets 503", filled(80), Method::Register, false, refuse),
            ("socket buffer half full: admitted", filled(50), Method::Invite, false, Admission::Admit),
            ("socket buffer 80% full: a BYE goes on", filled(80), Method::Bye, true, Admission::Admit),
            ("overloaded: a re-INVITE in a dialog goes on", q(10, 900), Method::Invite, true, Admission::Admit),
            ("overloaded: a BYE goes on", q(10, 900), Method::Bye, true, Admission::Admit),
            ("overloaded: a CANCEL goes on", q(10, 900), Method::Cancel, false, Admission::Admit),
            ("overloaded: an OPTIONS goes on", q(10, 900), Method::Options, false, Admission::Admit),
        ];
        for (name, queue, method, in_dialog, expect) in table {
            assert_eq!(admit(&s, *queue, *method, *in_dialog), *expect, "{name}");
        }
    }

    #[test]
    fn stats_count_refusals_and_peaks() {
        let stats = OverloadStats::default();
        stats.refused(Method::Invite);
        stats.refused(Method::Register);
        stats.refused(Method::Invite);
        assert_eq!(stats.refused_totals(), (2, 1));
        stats.observe(q(3, 10));
        stats.observe(q(7, 5));
        assert_eq!(stats.take_peaks(), (7, Duration::from_millis(10)));
        assert_eq!(stats.take_peaks(), (0, Duration::ZERO));
        let depth = QueueDepth::default();
        depth.push();
        depth.push();
        assert_eq!(depth.pop(), 1);
        assert_eq!(depth.get(), 1);
    }
}
