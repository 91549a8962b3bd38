//! tsps's own media engine: conference bridges. A bridge terminates RTP from each
//! participant on a port of its own, mixes (each participant hears the sum of the
//! others, never itself) and sends the mix back, in PCMU or PCMA (docs/media.md).
//!
//! The call logic reaches it through the `Media`/`Bridge` port of `tsps-actors`
//! ([`MediaEngine`] implements it). Sans-IO parts: [`g711`], [`rtp`], [`sdp`], [`mixer`];
//! `bridge` holds the sockets and tasks, which run on the I/O runtime (never on the
//! call actors' Arbiters), so the port's methods only bind sockets and take short locks.

mod bridge;
pub mod g711;
pub mod mixer;
pub mod rtp;
pub mod sdp;

use std::io;
use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;
use tsps_actors::ids::{CallId, TenantId};
use tsps_actors::ports::{Bridge, Media, MediaError};

/// The engine's settings, resolved from the `[media]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSettings {
    /// The address written in SDP (where participants send their audio).
    pub address: IpAddr,
    /// The address the RTP sockets are bound to.
    pub bind: IpAddr,
    /// RTP ports, inclusive; only even ones are used (RFC 3550 §11).
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
}

/// Counters read by the metrics at scrape time (no tenant labels).
#[derive(Debug, Default)]
pub struct MediaStats {
    pub bridges: AtomicI64,
    pub participants: AtomicI64,
    /// Every datagram received on a bridge port.
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    /// Received and not mixed for a fault (malformed, unknown payload type, the FIFO
    /// over 200 ms), or not sent (the socket refused it).
    pub packets_dropped: AtomicU64,
}

/// The conference bridges of this node.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<Engine>,
}

struct Engine {
    settings: MediaSettings,
    /// The I/O runtime: sockets are registered with it and the tasks run on it.
    runtime: tokio::runtime::Handle,
    stats: Arc<MediaStats>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    ports: PortAllocator,
}

impl MediaEngine {
    /// `runtime` must be the I/O runtime (not an Arbiter's): every bridge task runs there.
    pub fn new(settings: MediaSettings, runtime: tokio::runtime::Handle) -> Self {
        let ports = PortAllocator::new(settings.rtp_port_min, settings.rtp_port_max);
        Self {
            inner: Arc::new(Engine {
                settings,
                runtime,
                stats: Arc::default(),
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
                ports,
            }),
        }
    }

    pub fn settings(&self) -> &MediaSettings {
        &self.inner.settings
    }

    pub fn stats(&self) -> Arc<MediaStats> {
        self.inner.stats.clone()
    }

    /// Tasks still running (a mixer per bridge, a receiver per participant).
    pub fn tasks(&self) -> usize {
        self.inner.tracker.len()
    }

    /// Stops every bridge and waits for their tasks (server shutdown).
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

impl Media for MediaEngine {
    fn open_bridge(&self, tenant: TenantId, call: CallId) -> Result<Box<dyn Bridge>, MediaError> {
        if self.inner.cancel.is_cancelled() {
            return Err(MediaError::Unavailable);
        }
        Ok(Box::new(bridge::ConferenceBridge::open(
            self.inner.clone(),
            tenant,
            call,
        )))
    }
}

/// Hands out even RTP ports from the configured range, round robin from a random start,
/// skipping ports in use (other tsps processes on the same host, other programs).
struct PortAllocator {
    first: u16,
    count: u32,
    next: AtomicU32,
}

impl PortAllocator {
    fn new(min: u16, max: u16) -> Self {
        let first = u32::from(min) + u32::from(min) % 2;
        let count = (u32::from(max) + 2).saturating_sub(first) / 2;
        let first = first.min(u32::from(u16::MAX)) as u16;
        Self {
            first,
            count,
            next: AtomicU32::new(if count == 0 {
                0
            } else {
                rand::random::<u32>() % count
            }),
        }
    }

    /// A socket bound to `(ip, port)` for the next free even port of the range.
    fn bind(&self, ip: IpAddr) -> Result<UdpSocket, MediaError> {
        for _ in 0..self.count {
            let i = self.next.fetch_add(1, Relaxed) % self.count;
            let port = self.first + (2 * i) as u16;
            match UdpSocket::bind((ip, port)) {
                Ok(s) => return Ok(s),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => {
                    // Not a busy port but an address that cannot be bound (media.bind).
                    warn!(%ip, port, error = %e, "cannot bind an RTP socket");
                    return Err(MediaError::NoPort);
                }
            }
        }
        Err(MediaError::NoPort)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn ports_are_even_and_busy_ones_are_skipped() {
        let a = PortAllocator::new(20001, 20004);
        assert_eq!((a.first, a.count), (20002, 2));
        assert_eq!(PortAllocator::new(20001, 20001).count, 0);
        assert_eq!(PortAllocator::new(65535, 65535).count, 0);
        assert_eq!(PortAllocator::new(65534, 65535).count, 1);
        assert_eq!(
            PortAllocator::new(1, 0).bind(LOCAL).unwrap_err(),
            MediaError::NoPort
        );

        // A range of two ports: take one, and the allocator finds the other, then none.
        let probe = UdpSocket::bind((LOCAL, 0)).unwrap();
        let base = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        let a = PortAllocator::new(base, base + 2);
        let Ok(held) = UdpSocket::bind((LOCAL, base)) else {
            return; // Someone else took it meanwhile: nothing to test on this port.
        };
        let mut got = Vec::new();
        while let Ok(s) = a.bind(LOCAL) {
            let port = s.local_addr().unwrap().port();
            assert_eq!(port % 2, 0);
            assert_ne!(port, base);
            got.push(s);
            assert!(got.len() < 2, "more sockets than free ports");
        }
        drop(held);
    }
}
