//! The load generator: one UDP socket on 127.0.0.1 per participant, sending a tone in
//! 20-ms PCMU packets at 50 packets/s and receiving whatever comes back (the mix, or
//! its own packets from the echo).
//!
//! Cheap on purpose, since it shares the process and the machine with what it
//! measures: one sender task per group of clients (one timer for the group, packets
//! built in one buffer, the tone precomputed), one receive task per client. Arrival
//! times are the kernel's (SO_TIMESTAMPNS), so the generator's own scheduling delay
//! does not count as the bridge's jitter.

use hdrhistogram::Histogram;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt::ReceiveTimestampns, ControlMessageOwned, MsgFlags,
};
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tsps::media::g711::Codec;
use tsps::media::mixer::FRAME;
use tsps::media::rtp::{RtpHeader, RtpPacket};

/// One packet every 20 ms (160 samples at 8 kHz).
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);
pub const PACKETS_PER_SECOND: f64 = 50.0;
/// Nanoseconds of media per RTP timestamp unit (8 kHz).
const NS_PER_SAMPLE: i64 = 125_000;
/// Tones by position in the conference: multiples of 50 Hz, so that every 20-ms frame
/// holds whole periods and one precomputed payload serves every packet.
const TONES_HZ: [f64; 6] = [400.0, 1000.0, 1800.0, 2600.0, 600.0, 1400.0];

/// What one client saw, cumulative; read by the run at the window's edges.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    /// Sends the socket refused (buffer full): the packet is not counted as sent.
    pub send_errors: AtomicU64,
    pub received: AtomicU64,
    /// Sequence numbers skipped in what arrived (lost after the target sent them).
    pub gaps: AtomicU64,
    /// PCMU packets that are all silence (no other participant's audio in the mix).
    pub silent: AtomicU64,
    /// Over the measurement window: the largest minus the smallest of (arrival time −
    /// the packet's RTP timestamp), in ns: how much a playout buffer must absorb.
    pub spread_ns: AtomicI64,
}

/// Shared by every client of a run: whether the measurement window is open, and the
/// inter-arrival jitter recorded in it.
pub struct Window {
    pub measuring: AtomicBool,
    /// |inter-arrival − 20 ms| in µs, every client's packets together.
    pub jitter_us: Mutex<Histogram<u64>>,
}

impl Window {
    pub fn new() -> Self {
        Self {
            measuring: AtomicBool::new(false),
            // 1 µs to 60 s, 3 significant digits.
            jitter_us: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            ),
        }
    }
}

pub struct Client {
    pub socket: Arc<UdpSocket>,
    pub counters: Arc<Counters>,
    /// One 20-ms frame of this client's tone, in PCMU.
    payload: Arc<[u8]>,
}

impl Client {
    pub fn port(&self) -> u16 {
        self.socket.local_addr().map_or(0, |a| a.port())
    }
}

/// `count` clients, `per_conference` to a conference (each with its own tone).
/// Must run inside the generator's runtime: the sockets register with its reactor.
pub fn bind(count: usize, per_conference: usize) -> io::Result<Vec<Client>> {
    let payloads: Vec<Arc<[u8]>> = TONES_HZ
        .iter()
        .map(|hz| {
            let mut payload = Vec::with_capacity(FRAME);
            Codec::Pcmu.encode(&tone(*hz, 6000.0), &mut payload);
            Arc::from(payload)
        })
        .collect();
    (0..count)
        .map(|i| {
            let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            socket.set_nonblocking(true)?;
            setsockopt(&socket, ReceiveTimestampns, &true)?;
            Ok(Client {
                socket: Arc::new(UdpSocket::from_std(socket)?),
                counters: Arc::default(),
                payload: payloads[(i % per_conference.max(1)) % payloads.len()].clone(),
            })
        })
        .collect()
}

/// One frame of a sine at `hz`.
fn tone(hz: f64, amplitude: f64) -> Vec<i16> {
    (0..FRAME)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (amplitude * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

/// Starts the traffic: client `i` sends to `targets[i]`. Groups of `per_sender` clients
/// share a sender task; the groups' ticks are spread over the 20 ms.
pub fn start(
    clients: &[Client],
    targets: &[SocketAddr],
    per_sender: usize,
    window: &Arc<Window>,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let per_sender = per_sender.max(1);
    let groups = clients.len().div_ceil(per_sender).max(1);
    let now = tokio::time::Instant::now();
    for (g, chunk) in clients.chunks(per_sender).enumerate() {
        let outgoing: Vec<Outgoing> = chunk
            .iter()
            .zip(&targets[g * per_sender..])
            .map(|(c, target)| Outgoing {
                socket: c.socket.clone(),
                target: *target,
                counters: c.counters.clone(),
                payload: c.payload.clone(),
                sequence: rand::random(),
                timestamp: rand::random(),
                ssrc: rand::random(),
                first: true,
            })
            .collect();
        let offset = PACKET_INTERVAL * g as u32 / groups as u32;
        tasks.spawn(send(outgoing, now + offset, cancel.clone()));
    }
    for c in clients {
        tasks.spawn(receive(
            c.socket.clone(),
            c.counters.clone(),
            window.clone(),
            cancel.clone(),
        ));
    }
}

/// A client's outgoing stream.
struct Outgoing {
    socket: Arc<UdpSocket>,
    target: SocketAddr,
    counters: Arc<Counters>,
    payload: Arc<[u8]>,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    first: bool,
}

async fn send(mut clients: Vec<Outgoing>, start: tokio::time::Instant, cancel: CancellationToken) {
    // tokio's default MissedTickBehavior is Burst: after a stall of the generator the
    // missed packets go out at once, so the offered rate stays 50/s per client.
    let mut interval = tokio::time::interval_at(start, PACKET_INTERVAL);
    let mut buf = Vec::with_capacity(256);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        for c in &mut clients {
            let header = RtpHeader {
                marker: std::mem::take(&mut c.first),
                payload_type: Codec::Pcmu.payload_type(),
                sequence: c.sequence,
                timestamp: c.timestamp,
                ssrc: c.ssrc,
                csrcs: Vec::new(),
            };
            buf.clear();
            RtpPacket::write(&header, &c.payload, &mut buf);
            c.sequence = c.sequence.wrapping_add(1);
            c.timestamp = c.timestamp.wrapping_add(FRAME as u32);
            match c.socket.try_send_to(&buf, c.target) {
                Ok(_) => c.counters.sent.fetch_add(1, Relaxed),
                Err(_) => c.counters.send_errors.fetch_add(1, Relaxed),
            };
        }
    }
}

/// Receives one client's packets: counts, sequence gaps, silence, jitter, spread.
async fn receive(
    socket: Arc<UdpSocket>,
    counters: Arc<Counters>,
    window: Arc<Window>,
    cancel: CancellationToken,
) {
    let fd = socket.as_raw_fd();
    let mut buf = [0u8; 2048];
    let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut track = Track::default();
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            r = socket.async_io(Interest::READABLE, || recv_stamped(fd, &mut buf, &mut control)) => r,
        };
        let Ok((n, stamp_ns)) = received else {
            tokio::task::yield_now().await;
            continue;
        };
        counters.received.fetch_add(1, Relaxed);
        let Ok(packet) = RtpPacket::parse(&buf[..n]) else {
            continue;
        };
        let header = &packet.header;
        if header.payload_type == Codec::Pcmu.payload_type()
            && packet.payload.iter().all(|b| *b == 0xFF || *b == 0x7F)
        {
            counters.silent.fetch_add(1, Relaxed);
        }
        let measuring = window.measuring.load(Relaxed);
        let seen = track.packet(header.sequence, header.timestamp, stamp_ns, measuring);
        if seen.gap > 0 {
            counters.gaps.fetch_add(seen.gap, Relaxed);
        }
        if let Some(jitter_ns) = seen.jitter_ns {
            let mut h = window.jitter_us.lock().unwrap_or_else(|e| e.into_inner());
            h.saturating_record(jitter_ns / 1000);
        }
        if let Some(spread) = seen.spread_ns {
            counters.spread_ns.store(spread, Relaxed);
        }
    }
}

/// One datagram and its kernel receive time (ns, CLOCK_REALTIME; only differences are
/// used). WouldBlock when nothing is queued, as tokio's `async_io` expects.
fn recv_stamped(fd: RawFd, buf: &mut [u8], control: &mut [u8]) -> io::Result<(usize, i64)> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    let stamp = msg.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(t) => Some(Duration::from(t).as_nanos() as i64),
            _ => None,
        })
    });
    let stamp = stamp.ok_or_else(|| io::Error::other("no SO_TIMESTAMPNS on a packet"))?;
    Ok((msg.bytes, stamp))
}

/// The receive side's arithmetic for one client, sans-IO.
#[derive(Debug, Default)]
struct Track {
    last_sequence: Option<u16>,
    last_arrival_ns: Option<i64>,
    last_timestamp: u32,
    /// The RTP timestamp unwrapped into a 64-bit count of samples.
    media_samples: i64,
    /// Smallest and largest (arrival − media time) in the window.
    lag_range: Option<(i64, i64)>,
}

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    gap: u64,
    jitter_ns: Option<u64>,
    spread_ns: Option<i64>,
}

impl Track {
    fn packet(&mut self, sequence: u16, timestamp: u32, arrival_ns: i64, measuring: bool) -> Seen {
        let gap = match self.last_sequence {
            // A reordered or repeated packet gives a huge difference: not a gap.
            Some(last) => match sequence.wrapping_sub(last).wrapping_sub(1) {
                d if d < 1000 => u64::from(d),
                _ => 0,
            },
            None => 0,
        };
        self.last_sequence = Some(sequence);
        if self.last_arrival_ns.is_some() {
            self.media_samples += i64::from(timestamp.wrapping_sub(self.last_timestamp) as i32);
        }
        self.last_timestamp = timestamp;
        let interval = PACKET_INTERVAL.as_nanos() as i64;
        let jitter_ns = self
            .last_arrival_ns
            .filter(|_| measuring)
            .map(|last| (arrival_ns - last - interval).unsigned_abs());
        self.last_arrival_ns = Some(arrival_ns);
        let spread_ns = if measuring {
            let lag = arrival_ns - self.media_samples * NS_PER_SAMPLE;
            let (lo, hi) = self.lag_range.unwrap_or((lag, lag));
            let range = (lo.min(lag), hi.max(lag));
            self.lag_range = Some(range);
            Some(range.1 - range.0)
        } else {
            self.lag_range = None;
            None
        };
        Seen {
            gap,
            jitter_ns,
            spread_ns,
        }
    }
}

/// One counter of every client, in order.
pub fn read(clients: &[Client], counter: impl Fn(&Counters) -> &AtomicU64) -> Vec<u64> {
    clients
        .iter()
        .map(|c| counter(&c.counters).load(Relaxed))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn gaps_jitter_and_spread() {
        let mut t = Track::default();
        let seen = t.packet(65534, 4_294_967_000, 0, true);
        assert_eq!(
            seen,
            Seen {
                gap: 0,
                jitter_ns: None,
                spread_ns: Some(0)
            }
        );
        // On time, across the sequence and timestamp wrap.
        let seen = t.packet(65535, 4_294_967_000u32.wrapping_add(160), 20 * MS, true);
        assert_eq!(
            (seen.gap, seen.jitter_ns, seen.spread_ns),
            (0, Some(0), Some(0))
        );
        // Two packets lost, the next one 3 ms late.
        let seen = t.packet(2, 4_294_967_000u32.wrapping_add(640), 83 * MS, true);
        assert_eq!(seen.gap, 2);
        assert_eq!(seen.jitter_ns, Some(43 * MS as u64));
        assert_eq!(seen.spread_ns, Some(3 * MS));
        // 2 ms early against the media clock: the spread is now 5 ms.
        let seen = t.packet(3, 4_294_967_000u32.wrapping_add(800), 98 * MS, true);
        assert_eq!(seen.jitter_ns, Some(5 * MS as u64));
        assert_eq!(seen.spread_ns, Some(5 * MS));
        // A repeated packet is no gap.
        assert_eq!(
            t.packet(3, 4_294_967_000u32.wrapping_add(800), 99 * MS, true)
                .gap,
            0
        );
        // Outside the window nothing is recorded, and the spread starts over after it.
        let seen = t.packet(4, 4_294_967_000u32.wrapping_add(960), 118 * MS, false);
        assert_eq!((seen.jitter_ns, seen.spread_ns), (None, None));
        let seen = t.packet(5, 4_294_967_000u32.wrapping_add(1120), 150 * MS, true);
        assert_eq!(seen.spread_ns, Some(0));
        assert_eq!(seen.jitter_ns, Some(12 * MS as u64));
    }

    #[test]
    fn tones_fill_whole_frames() {
        for hz in TONES_HZ {
            let frame = tone(hz, 6000.0);
            let next: Vec<i16> = (FRAME..2 * FRAME)
                .map(|i| {
                    let t = i as f64 / 8000.0;
                    (6000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
                })
                .collect();
            let close = frame
                .iter()
                .zip(&next)
                .all(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() <= 1);
            assert!(close, "{hz} Hz does not repeat every frame");
        }
    }
}
