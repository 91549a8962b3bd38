//! Sockets: UDP and TCP listeners that turn bytes into parsed messages for the SIP
//! shards, and a [`Transports`] handle the shards use to send. Parsing and the
//! stateless rejection of malformed input (400/501/513) happen here, before any shard
//! sees the message.
//!
//! TCP connections are limited ([`limit`]: in all and per source address) and timed:
//! one that says nothing for `idle_timeout` is closed unless a phone registered over
//! it (then it lasts as long as the registration: [`Transports::keep_alive`]), and a
//! message must arrive whole within `message_timeout` of its first byte. RFC 5626
//! keep-alives (CRLFCRLF) count as traffic and are answered with CRLF.

pub mod limit;
mod ports;

use crate::sip::message::{self, Frame, MessageError};
use crate::sip::{Peer, Proto};
use bytes::{Bytes, BytesMut};
use rsipstack::sip::SipMessage;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use limit::{AcceptBackoff, ConnectionLimiter, Permit};

/// Receives every well-formed message (implemented by the shard pool).
pub trait Dispatch: Send + Sync + 'static {
    fn dispatch(&self, msg: SipMessage, peer: Peer);
}

/// Per-connection write queue depth; a peer that does not read is disconnected.
const TCP_WRITE_QUEUE: usize = 1024;
/// Socket buffers sized for bursts (SIPp's own 64 KB default drops on loopback).
const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// Limits of SIP over TCP.
#[derive(Clone, Copy, Debug)]
pub struct TcpSettings {
    pub limits: limit::Limits,
    /// Close a connection that has carried nothing for this long (unless kept alive).
    pub idle_timeout: Duration,
    /// A message must be complete this long after its first byte arrived.
    pub message_timeout: Duration,
}

impl Default for TcpSettings {
    fn default() -> Self {
        Self {
            limits: limit::Limits {
                max_total: 10_000,
                max_per_source: 256,
            },
            idle_timeout: Duration::from_secs(120),
            message_timeout: Duration::from_secs(10),
        }
    }
}

/// One TCP connection as the senders see it.
struct Conn {
    tx: mpsc::Sender<Bytes>,
    times: Arc<ConnTimes>,
}

/// When a connection last carried traffic, and until when a registration keeps it,
/// in milliseconds since the transports started.
#[derive(Default)]
struct ConnTimes {
    active_ms: AtomicU64,
    keep_until_ms: AtomicU64,
}

pub struct Transports {
    /// For sending from any thread (a duplicate of the first receive socket).
    udp_send: Option<std::net::UdpSocket>,
    /// One SO_REUSEPORT socket per shard, taken by each shard on its own thread.
    udp_shard_sockets: Mutex<Vec<Option<std::net::UdpSocket>>>,
    udp_local: Option<SocketAddr>,
    tcp_listener: Mutex<Option<TcpListener>>,
    tcp_local: Option<SocketAddr>,
    tcp_conns: Mutex<HashMap<SocketAddr, Conn>>,
    tcp: TcpSettings,
    tcp_limiter: Arc<ConnectionLimiter>,
    /// The zero of [`ConnTimes`].
    epoch: Instant,
    max_message: usize,
    dispatch: OnceLock<Arc<dyn Dispatch>>,
    rt: tokio::runtime::Handle,
    cancel: CancellationToken,
}

impl Transports {
    /// Binds the sockets (call from within a tokio runtime; it becomes the I/O runtime
    /// for TCP). With port 0 for both UDP and TCP on one IP, the port UDP gets is used
    /// for TCP too (retried with another port if TCP has it taken).
    pub async fn bind(
        udp: Option<SocketAddr>,
        tcp: Option<SocketAddr>,
        max_message: usize,
        cancel: CancellationToken,
        udp_sockets: usize,
        tcp_settings: TcpSettings,
    ) -> io::Result<Arc<Self>> {
        let shared_ephemeral =
            matches!((udp, tcp), (Some(u), Some(t)) if u.port() == 0 && t.port() == 0);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::bind_once(
                udp,
                tcp,
                max_message,
                cancel.clone(),
                udp_sockets,
                tcp_settings,
            )
            .await
            {
                Err(e)
                    if shared_ephemeral && e.kind() == io::ErrorKind::AddrInUse && attempt < 10 => {
                }
                other => return other,
            }
        }
    }

    /// One attempt of [`Transports::bind`]. UDP gets `udp_sockets` SO_REUSEPORT sockets
    /// on the same address, one per shard: the kernel spreads flows over them, and each
    /// shard receives on its own thread (docs/decisions/0002-actix-with-tokio.md).
    async fn bind_once(
        udp: Option<SocketAddr>,
        tcp: Option<SocketAddr>,
        max_message: usize,
        cancel: CancellationToken,
        udp_sockets: usize,
        tcp_settings: TcpSettings,
    ) -> io::Result<Arc<Self>> {
        let mut sockets = Vec::new();
        let mut udp_local = None;
        if let Some(mut addr) = udp {
            for _ in 0..udp_sockets.max(1) {
                let sock = bind_udp(addr)?;
                // With port 0 the first bind picks the port; the others share it.
                addr = sock.local_addr()?;
                udp_local = Some(addr);
                sockets.push(Some(sock));
            }
        }
        let udp_send = match sockets.first() {
            Some(Some(s)) => Some(s.try_clone()?),
            _ => None,
        };
        // UDP and TCP on the same IP with port 0: TCP takes the port UDP was given, so
        // that phones find both on one port.
        let tcp = match (tcp, udp_local) {
            (Some(t), Some(u)) if t.port() == 0 && t.ip() == u.ip() => Some(u),
            (t, _) => t,
        };
        let listener = match tcp {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let tcp_local = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        Ok(Arc::new(Self {
            udp_send,
            udp_shard_sockets: Mutex::new(sockets),
            udp_local,
            tcp_listener: Mutex::new(listener),
            tcp_local,
            tcp_conns: Mutex::new(HashMap::new()),
            tcp: tcp_settings,
            tcp_limiter: ConnectionLimiter::new(tcp_settings.limits),
            epoch: Instant::now(),
            max_message,
            dispatch: OnceLock::new(),
            rt: tokio::runtime::Handle::current(),
            cancel,
        }))
    }

    /// The UDP socket for shard `i` (once). Register it on the shard's own runtime.
    pub fn take_udp_socket(&self, i: usize) -> Option<std::net::UdpSocket> {
        self.udp_shard_sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(i)
            .and_then(Option::take)
    }

    pub fn udp_local(&self) -> Option<SocketAddr> {
        self.udp_local
    }
    pub fn tcp_local(&self) -> Option<SocketAddr> {
        self.tcp_local
    }

    /// Starts the receive loops; messages go to `dispatch`.
    pub fn start(self: &Arc<Self>, dispatch: Arc<dyn Dispatch>) {
        if self.dispatch.set(dispatch).is_err() {
            warn!("transports already started");
            return;
        }
        let listener = self
            .tcp_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(listener) = listener {
            let me = self.clone();
            self.rt.spawn(async move { me.accept_loop(listener).await });
        }
    }

    /// Whether a TCP connection to or from `addr` is open.
    pub fn is_connected(&self, addr: SocketAddr) -> bool {
        self.tcp_sender(addr).is_some_and(|s| !s.is_closed())
    }

    /// The write queue of the TCP connection with `addr`, if there is one.
    fn tcp_sender(&self, addr: SocketAddr) -> Option<mpsc::Sender<Bytes>> {
        self.tcp_conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)
            .map(|c| c.tx.clone())
    }

    /// Keeps the TCP connection with `addr` open for `for_at_least` even without
    /// traffic: a phone registered over it is reachable only through it.
    pub fn keep_alive(&self, addr: SocketAddr, for_at_least: Duration) {
        let until = self.ms_since_epoch(Instant::now() + for_at_least);
        if let Some(c) = self
            .tcp_conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)
        {
            c.times.keep_until_ms.fetch_max(until, Relaxed);
        }
    }

    /// The SIP TCP listener's connection counters, for the metrics.
    pub fn tcp_stats(&self) -> Arc<limit::ConnStats> {
        self.tcp_limiter.stats().clone()
    }

    fn ms_since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Sends without waiting (callable from any thread, including actor threads).
    pub fn send(self: &Arc<Self>, peer: Peer, data: Bytes) {
        match peer.proto {
            Proto::Udp => {
                let Some(sock) = &self.udp_send else {
                    warn!(%peer, "no udp transport configured");
                    return;
                };
                // Non-blocking: a full socket buffer drops the datagram, which the
                // transaction layer retransmits.
                if let Err(e) = sock.send_to(&data, peer.addr) {
                    debug!(%peer, error = %e, "udp send failed");
                }
            }
            Proto::Tcp => match self.tcp_sender(peer.addr) {
                Some(tx) => {
                    if tx.try_send(data).is_err() {
                        warn!(%peer, "tcp write queue full or closed; dropping message");
                    }
                }
                None => {
                    let me = self.clone();
                    self.rt.spawn(async move {
                        match TcpStream::connect(peer.addr).await {
                            Ok(stream) => {
                                // tsps's own connections take no place of the limits.
                                let tx = me.clone().serve_connection(stream, peer.addr, None);
                                let _ = tx.try_send(data);
                            }
                            Err(e) => warn!(%peer, error = %e, "tcp connect failed"),
                        }
                    });
                }
            },
        }
    }

    /// Parses one datagram or stream frame. Malformed input is answered (400, 501,
    /// 513) or dropped here; keep-alives are ignored.
    pub fn accept_bytes(&self, bytes: &[u8], peer: Peer) -> Option<SipMessage> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return None; // keep-alive (RFC 5626 CRLF ping)
        }
        match message::parse(bytes, self.max_message) {
            Ok(msg) => Some(msg),
            Err(err) => {
                self.reject(bytes, &err, peer);
                None
            }
        }
    }

    fn handle_bytes(self: &Arc<Self>, bytes: &[u8], peer: Peer) {
        if let Some(msg) = self.accept_bytes(bytes, peer) {
            if let Some(d) = self.dispatch.get() {
                d.dispatch(msg, peer);
            }
        }
    }

    fn reject(&self, bytes: &[u8], err: &MessageError, peer: Peer) {
        debug!(%peer, error = %err, "rejecting malformed message");
        if let Some(resp) = message::error_response_for(bytes, err) {
            match peer.proto {
                Proto::Udp => {
                    if let Some(sock) = &self.udp_send {
                        let _ = sock.send_to(&resp, peer.addr);
                    }
                }
                Proto::Tcp => {
                    if let Some(tx) = self.tcp_sender(peer.addr) {
                        let _ = tx.try_send(Bytes::from(resp));
                    }
                }
            }
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let mut backoff = AcceptBackoff::default();
        loop {
            let (stream, from) = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) if limit::is_connection_error(&e) => continue,
                    Err(e) => {
                        // Out of descriptors, most likely: wait for some to free up.
                        self.tcp_limiter.stats().accept_errors.fetch_add(1, Relaxed);
                        let wait = backoff.failed();
                        warn!(error = %e, wait_ms = wait.as_millis() as u64, "sip tcp accept failed");
                        tokio::select! {
                            _ = self.cancel.cancelled() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                        continue;
                    }
                },
            };
            backoff.succeeded();
            match self.tcp_limiter.acquire(from.ip()) {
                Ok(permit) => {
                    self.clone().serve_connection(stream, from, Some(permit));
                }
                Err(why) => {
                    debug!(%from, ?why, "sip tcp connection refused: over the limit");
                    drop(stream);
                }
            }
        }
    }

    /// Registers the connection for sending and spawns its reader and writer.
    fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        from: SocketAddr,
        permit: Option<Permit>,
    ) -> mpsc::Sender<Bytes> {
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(TCP_WRITE_QUEUE);
        let times = Arc::new(ConnTimes::default());
        times
            .active_ms
            .store(self.ms_since_epoch(Instant::now()), Relaxed);
        self.tcp_conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                from,
                Conn {
                    tx: tx.clone(),
                    times: times.clone(),
                },
            );
        let cancel = self.cancel.clone();
        {
            let (me, times) = (self.clone(), times.clone());
            self.rt.spawn(async move {
                while let Some(data) = rx.recv().await {
                    if wr.write_all(&data).await.is_err() {
                        break;
                    }
                    times
                        .active_ms
                        .store(me.ms_since_epoch(Instant::now()), Relaxed);
                }
            });
        }
        let me = self.clone();
        let mine = tx.clone();
        self.rt.spawn(async move {
            // Held as long as the reader: the connection's place in the limits.
            let _permit = permit;
            let peer = Peer::tcp(from);
            let mut buf = BytesMut::with_capacity(8192);
            // When the first byte of a message not yet complete arrived.
            let mut partial_since: Option<Instant> = None;
            'conn: loop {
                let deadline = me.deadline(&times, partial_since);
                let n = tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = rd.read_buf(&mut buf) => r.unwrap_or(0),
                    _ = tokio::time::sleep_until(deadline) => {
                        if Instant::now() < me.deadline(&times, partial_since) {
                            // Traffic (or a registration) moved the deadline: wait on.
                            continue;
                        }
                        let (counter, why) = if partial_since.is_some() {
                            (&me.tcp_limiter.stats().closed_slow, "message too slow")
                        } else {
                            (&me.tcp_limiter.stats().closed_idle, "idle")
                        };
                        counter.fetch_add(1, Relaxed);
                        debug!(%peer, why, "sip tcp connection closed");
                        break;
                    }
                };
                if n == 0 {
                    break;
                }
                let now = Instant::now();
                times.active_ms.store(me.ms_since_epoch(now), Relaxed);
                loop {
                    let skip = message::leading_crlf(&buf);
                    if skip >= 4 && skip == buf.len() {
                        // RFC 5626 §4.4.1: a CRLFCRLF ping gets a CRLF pong.
                        buf.clear();
                        let _ = mine.try_send(Bytes::from_static(b"\r\n"));
                        break;
                    }
                    match message::frame(&buf, me.max_message) {
                        Frame::Complete { start, len } => {
                            let msg = buf.split_to(start + len);
                            me.handle_bytes(&msg[start..], peer);
                        }
                        Frame::Incomplete => break,
                        Frame::Invalid(err) => {
                            // The stream cannot be re-synchronised: answer if we can, then close.
                            me.reject(&buf, &err, peer);
                            break 'conn;
                        }
                    }
                }
                partial_since = if buf.iter().all(|b| b.is_ascii_whitespace()) {
                    None
                } else {
                    partial_since.or(Some(now))
                };
            }
            let mut conns = me.tcp_conns.lock().unwrap_or_else(|e| e.into_inner());
            // A newer connection from the same address may have replaced this one.
            if conns.get(&from).is_some_and(|c| c.tx.same_channel(&mine)) {
                conns.remove(&from);
            }
        });
        tx
    }

    /// When the connection is closed unless something happens: the end of the time
    /// for a message begun, else its idle end (or the end of the registration that
    /// keeps it).
    fn deadline(&self, times: &ConnTimes, partial_since: Option<Instant>) -> Instant {
        if let Some(p) = partial_since {
            return p + self.tcp.message_timeout;
        }
        let at = |ms: u64| self.epoch + Duration::from_millis(ms);
        let idle = at(times.active_ms.load(Relaxed)) + self.tcp.idle_timeout;
        let kept = at(times.keep_until_ms.load(Relaxed));
        idle.max(kept)
    }
}

fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
