//! Connection limits of a listener (SIP over TCP, HTTP): open connections in all and
//! per source address, counted by permits that give their place back when dropped,
//! and the backoff of an accept loop that fails (out of descriptors). Protocol-free:
//! both listeners use it (docs/security.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_total: usize,
    pub max_per_source: usize,
}

impl Limits {
    /// `max_total` from the configuration, or (0) from the process's descriptor limit:
    /// a quarter of what is left after 512 for everything else (database, sockets of
    /// the SIP shards and conference bridges, files), between 64 and 100,000.
    pub fn sized(max_total: usize, max_per_source: usize, nofile: u64) -> Self {
        let max_total = if max_total > 0 {
            max_total
        } else {
            (nofile.saturating_sub(512) / 4).clamp(64, 100_000) as usize
        };
        // One address never takes more than a quarter of the places: the others stay
        // reachable while it floods.
        Self {
            max_total,
            max_per_source: max_per_source.min((max_total / 4).max(1)),
        }
    }
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    PerSource,
    Total,
}

/// Counters of one listener, for the metrics.
#[derive(Debug, Default)]
pub struct ConnStats {
    pub open: AtomicI64,
    pub refused_per_source: AtomicU64,
    pub refused_total: AtomicU64,
    /// Closed for saying nothing for too long.
    pub closed_idle: AtomicU64,
    /// Closed for sending a message (or request head) too slowly.
    pub closed_slow: AtomicU64,
    pub accept_errors: AtomicU64,
}

#[derive(Debug)]
pub struct ConnectionLimiter {
    limits: Limits,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    stats: Arc<ConnStats>,
}

/// One open connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<ConnectionLimiter>,
    source: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = self
            .limiter
            .per_source
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
        self.limiter.stats.open.fetch_sub(1, Relaxed);
    }
}

impl ConnectionLimiter {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            per_source: Mutex::new(HashMap::new()),
            stats: Arc::default(),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn stats(&self) -> &Arc<ConnStats> {
        &self.stats
    }

    /// A place for a connection from `source`, or why there is none (counted).
    pub fn acquire(self: &Arc<Self>, source: IpAddr) -> Result<Permit, Refused> {
        let mut map = self.per_source.lock().unwrap_or_else(|e| e.into_inner());
        let open = self.stats.open.load(Relaxed).max(0) as usize;
        let refused = if open >= self.limits.max_total {
            Some(Refused::Total)
        } else if map.get(&source).copied().unwrap_or(0) >= self.limits.max_per_source {
            Some(Refused::PerSource)
        } else {
            None
        };
        if let Some(why) = refused {
            match why {
                Refused::Total => &self.stats.refused_total,
                Refused::PerSource => &self.stats.refused_per_source,
            }
            .fetch_add(1, Relaxed);
            return Err(why);
        }
        *map.entry(source).or_insert(0) += 1;
        self.stats.open.fetch_add(1, Relaxed);
        Ok(Permit {
            limiter: self.clone(),
            source,
        })
    }
}

/// The wait after a failed `accept`: 10 ms doubling to 1 s, back to the start after a
/// success. A loop that retried at once spun a core (and the log) while the process
/// was out of descriptors.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    pub fn failed(&mut self) -> Duration {
        let wait = Duration::from_millis(10u64 << self.failures.min(7)).min(Duration::from_secs(1));
        self.failures += 1;
        wait
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

/// Whether an `accept` error concerns only the connection being accepted (the peer
/// gave up): accept again at once.
pub fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Raises this process's soft limit of open files to its hard limit where the system
/// allows it; returns the soft limit in force.
pub fn raise_nofile() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_and_total_places_are_given_back() {
        let l = ConnectionLimiter::new(Limits {
            max_total: 3,
            max_per_source: 2,
        });
        let a1 = l.acquire(ip("192.0.2.1")).unwrap();
        let _a2 = l.acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(l.acquire(ip("192.0.2.1")).unwrap_err(), Refused::PerSource);
        let _b1 = l.acquire(ip("192.0.2.2")).unwrap();
        assert_eq!(l.acquire(ip("192.0.2.3")).unwrap_err(), Refused::Total);
        drop(a1);
        assert!(l.acquire(ip("192.0.2.3")).is_ok());
        assert_eq!(l.stats().refused_per_source.load(Relaxed), 1);
        assert_eq!(l.stats().refused_total.load(Relaxed), 1);
    }

    #[test]
    fn sized_from_the_descriptor_limit() {
        assert_eq!(Limits::sized(0, 256, 1024).max_total, 128);
        assert_eq!(Limits::sized(0, 256, 1024).max_per_source, 32);
        assert_eq!(Limits::sized(0, 256, 600).max_total, 64);
        assert_eq!(Limits::sized(0, 256, 1 << 20).max_total, 100_000);
        assert_eq!(Limits::sized(0, 256, 1 << 20).max_per_source, 256);
        assert_eq!(Limits::sized(500, 256, 1024).max_total, 500);
        assert_eq!(Limits::sized(10, 256, 1024).max_per_source, 2);
    }

    #[test]
    fn accept_backoff_grows_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(10));
    }
}
