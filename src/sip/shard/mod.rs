//! A SIP shard: one actor per worker Arbiter that owns every transaction and dialog
//! whose Call-ID hashes to it (the Call-IDs tsps creates carry their shard number).
//! It is the UAS core and UAC core of the B2BUA: it authenticates, runs the registrar,
//! creates one call actor per call and maps each leg's dialog to [`LegEvent`]s and
//! [`LegCommand`]s back to SIP. Call logic lives in the call actor, not here.

use super::auth::{Attempt, Authenticator, Decision};
use super::build::{self, RequestSpec};
use super::digest;
use super::headers as h;
use super::message::{call_id_hint, View};
use super::overload::{self, Admission, OverloadSettings, OverloadStats, QueueDepth, QueueSample};
use super::ports::{DirectorySource, Intake};
use super::transaction::{Kind, State};
use super::{Peer, Proto};
use actix::prelude::*;
use bytes::Bytes;
use rsipstack::sip::{Method, Request, Response, SipMessage};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use tsps_actors::call::{CallSetup, CallStart};
use tsps_actors::model::Device;
use tsps_actors::ports::{Body, Dial, DialTarget, LegCommand, LegEvent, LegEventKind, PartyInfo};
use tsps_actors::tenant::CallOrigin;
use tsps_actors::user::{ContactUpdate, Register, RegisterError, RegisterUpdate};
use tsps_actors::{CallId, LegId, TrunkId};

mod auth;
mod b2bua;
mod notifier;
mod registrar;
mod transactions;

use b2bua::{contact_peer, CallInfo, DialogKey, Leg};
use transactions::{kept_bytes, Input, Layer, Owner, TxKey};

/// Settings the shards share, fixed at start.
pub struct SipSettings {
    pub public_host: String,
    pub udp_port: Option<u16>,
    pub tcp_port: Option<u16>,
    pub min_expires: u32,
    pub max_expires: u32,
    pub shards: usize,
    /// Subscription limits (SUBSCRIBE/NOTIFY).
    pub presence: super::presence::PresenceSettings,
    /// When a shard refuses new INVITEs and REGISTERs (503).
    pub overload: OverloadSettings,
}

/// What every shard shares (immutable or internally synchronised).
pub struct SipContext {
    pub settings: SipSettings,
    pub directory: Arc<dyn DirectorySource>,
    /// The actors (users, presence, calls), through the SIP layer's port.
    pub actors: Arc<dyn super::ports::Actors>,
    /// Digest authentication: nonces, their counts, the brute-force guard.
    pub auth: Authenticator,
    /// The sockets: sending, and this shard's intake.
    pub transports: Arc<dyn Intake>,
    /// Every shard, by index (set once at start).
    pub shards: std::sync::OnceLock<Vec<Addr<Shard>>>,
    /// Personal mode: the upstream tenant's registrar (None on a platform).
    pub upstream: Option<Upstream>,
    /// The notifier's counters (subscriptions, NOTIFY and MESSAGE outcomes), for the
    /// metrics.
    pub presence_stats: Arc<super::presence::PresenceStats>,
    /// Overload control's counters, for the metrics.
    pub overload_stats: Arc<OverloadStats>,
    /// Messages waiting in each shard's mailbox (by shard index).
    pub queues: Arc<[QueueDepth]>,
    /// Wall time for digest nonces and the brute-force guard: the platform's clock, so
    /// that tests move it (`testing.clock_api`) instead of waiting for a nonce to age.
    pub clock: Arc<dyn tsps_actors::ports::Clock>,
}

impl SipContext {
    /// Milliseconds since the Unix epoch on the platform's clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now().timestamp_millis()).unwrap_or(0)
    }

    fn port(&self, proto: Proto) -> u16 {
        match proto {
            Proto::Udp => self.settings.udp_port.or(self.settings.tcp_port),
            Proto::Tcp => self.settings.tcp_port.or(self.settings.udp_port),
        }
        .unwrap_or(5060)
    }

    fn via(&self, proto: Proto, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {}:{};branch={branch};rport",
            proto.via_name(),
            self.settings.public_host,
            self.port(proto)
        )
    }

    fn contact(&self, proto: Proto) -> String {
        let t = match proto {
            Proto::Udp => "",
            Proto::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:tsps@{}:{}{t}>",
            self.settings.public_host,
            self.port(proto)
        )
    }

    fn is_own_sent_by(&self, sent_by: &str) -> bool {
        let host = h::uri_host(sent_by);
        let port = h::uri_port(sent_by).unwrap_or(5060);
        host == self.settings.public_host
            && (Some(port) == self.settings.udp_port || Some(port) == self.settings.tcp_port)
    }
}

/// Personal mode (src/personal): the registrar of the upstream tenant, where this tsps
/// is a device of its user. An INVITE from that address is the upstream's call for the
/// user, whatever its Request-URI (the registered contact, or the URI of a tenant
/// policy `external`), and enters through the `upstream` trunk.
pub struct Upstream {
    pub addr: std::net::SocketAddr,
    pub trunk: TrunkId,
    /// The personal user's extension: the dialled string of the upstream's calls.
    pub extension: String,
}

/// Which shard owns a Call-ID: ours carry `tsps<N>.`, others are hashed (FNV-1a).
pub fn shard_of(call_id: &str, shards: usize) -> usize {
    if let Some(rest) = call_id.strip_prefix("tsps") {
        if let Some((n, _)) = rest.split_once('.') {
            if let Ok(n) = n.parse::<usize>() {
                return n % shards;
            }
        }
    }
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in call_id.as_bytes() {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    (hash % shards as u64) as usize
}

/// A datagram read by a shard from its own UDP socket.
struct Datagram {
    bytes: Bytes,
    from: std::net::SocketAddr,
    /// How full the socket's receive buffer was at the last sample (percent).
    socket_fill_pct: u32,
}

/// A parsed message for a shard.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound {
    pub msg: SipMessage,
    pub peer: Peer,
    /// When it was queued for the shard (its age when taken measures the queue).
    pub queued: Instant,
}

/// Queues `msg` for shard `i`, counting it in the shard's queue depth.
fn enqueue(shards: &[Addr<Shard>], queues: &[QueueDepth], i: usize, msg: SipMessage, peer: Peer) {
    queues[i].push();
    let queued = Instant::now();
    if let Err(e) = shards[i].try_send(Inbound { msg, peer, queued }) {
        queues[i].pop();
        // Overload: drop; UDP peers retransmit, and the shed load is visible in logs.
        warn!(shard = i, %peer, error = %e, "shard mailbox full; message dropped");
    }
}

/// Routes inbound messages to shards by Call-ID.
pub struct ShardPool {
    pub shards: Vec<Addr<Shard>>,
    /// The shards' queue depths (`SipContext::queues`).
    pub queues: Arc<[QueueDepth]>,
}

impl ShardPool {
    /// Hands a message received by the transports to the shard that owns its Call-ID.
    pub fn route(&self, msg: SipMessage, peer: Peer) {
        let call_id = match &msg {
            SipMessage::Request(r) => h::first(&r.headers, "Call-ID"),
            SipMessage::Response(r) => h::first(&r.headers, "Call-ID"),
        }
        .unwrap_or("");
        let i = shard_of(call_id, self.shards.len());
        enqueue(&self.shards, &self.queues, i, msg, peer);
    }
}

pub struct Shard {
    idx: usize,
    ctx: Arc<SipContext>,
    /// The transaction layer (sans-IO): every transaction of this shard.
    txs: Layer<Owner>,
    legs: HashMap<LegId, Leg>,
    dialogs: HashMap<DialogKey, LegId>,
    calls: HashMap<CallId, CallInfo>,
    me: Option<Recipient<LegCommand>>,
    /// Subscriptions whose dialogs this shard owns (see `subscribe.rs`).
    subscriptions: super::presence::ShardSubscriptions,
}

/// Tick of the shard's timer queue; SIP timers start at T1 = 500 ms.
const TICK: Duration = Duration::from_millis(10);

impl Shard {
    pub fn new(idx: usize, ctx: Arc<SipContext>) -> Self {
        Self {
            idx,
            ctx,
            txs: Layer::default(),
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            calls: HashMap::new(),
            me: None,
            subscriptions: Default::default(),
        }
    }
}

impl Shard {
    fn inbound(
        &mut self,
        msg: SipMessage,
        peer: Peer,
        queue: QueueSample,
        ctx: &mut Context<Self>,
    ) {
        self.ctx.overload_stats.observe(queue);
        match msg {
            SipMessage::Request(r) => self.on_request(r, peer, queue, ctx),
            SipMessage::Response(r) => self.on_response(r),
        }
    }

    fn on_request(
        &mut self,
        req: Request,
        peer: Peer,
        queue: QueueSample,
        ctx: &mut Context<Self>,
    ) {
        let req = Arc::new(req);
        let v = View::new(&req.headers);
        let Some(via) = v.via else {
            return;
        };
        let Some(branch) = v.branch else {
            self.respond_stateless(&req, peer, 400);
            return;
        };
        let method = req.method;
        let key_method = if method == Method::Ack {
            Method::Invite
        } else {
            method
        };
        let key = TxKey::server(branch, key_method);

        if self.txs.get(&key).is_some() {
            // A retransmission, or the ACK of a non-2xx final: the layer absorbs it.
            self.tx(Input::Request {
                key,
                ack: method == Method::Ack,
            });
            return;
        }
        if method == Method::Ack {
            self.on_dialog_ack(&req, &v);
            return;
        }
        // Overload control, before any work: a new INVITE or REGISTER on a shard whose
        // queue is too deep or too old gets 503 (src/sip/overload.rs).
        let settings = &self.ctx.settings.overload;
        if let Admission::Refuse { retry_after } =
            overload::admit(settings, queue, method, v.to_tag.is_some())
        {
            self.ctx.overload_stats.refused(method);
            let retry_after = retry_after.to_string();
            self.respond_stateless_with(&req, peer, 503, &[("Retry-After", &retry_after)]);
            return;
        }
        if let Some(mf) = v.max_forwards {
            if mf == 0 {
                self.respond_stateless(&req, peer, 483);
                return;
            }
        }
        if h::via_sent_by(via).is_some_and(|s| self.ctx.is_own_sent_by(s))
            && key.branch.starts_with("z9hG4bK-tsps-")
        {
            self.respond_stateless(&req, peer, 482);
            return;
        }
        if method == Method::Cancel {
            self.on_cancel(req.clone(), peer, key);
            return;
        }
        if v.has_credentials && self.ctx.auth.ignores(peer.addr.ip(), self.ctx.now_ms()) {
            // A source blocked for guessing passwords gets no answer (src/sip/auth/guard.rs).
            return;
        }
        self.add_server(key.clone(), peer, req.clone());

        if method == Method::Subscribe {
            self.on_subscribe(&req, peer, key, ctx);
            return;
        }
        if v.to_tag.is_some() {
            self.on_in_dialog(&req, &v, peer, key);
            return;
        }
        match method {
            Method::Register => self.on_register(&req, &v, peer, key, ctx),
            Method::Invite => self.on_invite(&req, &v, peer, key),
            Method::Options => {
                let tag = build::token();
                self.respond(
                    &key,
                    200,
                    Some(&tag),
                    &[
                        ("Allow", build::ALLOW),
                        ("Accept", "application/sdp"),
                        ("Allow-Events", super::presence::ALLOW_EVENTS),
                    ],
                    None,
                );
            }
            Method::Bye => self.respond(&key, 481, None, &[], None),
            _ => {
                let tag = build::token();
                self.respond(&key, 405, Some(&tag), &[("Allow", build::ALLOW)], None);
            }
        }
    }
}

fn body_of(body: &[u8]) -> Option<Body> {
    (!body.is_empty()).then(|| Arc::from(body))
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Ack => "ACK",
        Method::Bye => "BYE",
        Method::Cancel => "CANCEL",
        Method::Info => "INFO",
        Method::Invite => "INVITE",
        Method::Message => "MESSAGE",
        Method::Notify => "NOTIFY",
        Method::Options => "OPTIONS",
        Method::PRack => "PRACK",
        Method::Publish => "PUBLISH",
        Method::Refer => "REFER",
        Method::Register => "REGISTER",
        Method::Subscribe => "SUBSCRIBE",
        Method::Update => "UPDATE",
    }
}

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounded: a burst beyond this is shed at the socket (see ShardPool::dispatch).
        ctx.set_mailbox_capacity(65_536);
        self.me = Some(ctx.address().recipient());
        ctx.run_interval(TICK, |act, _| act.on_tick());
        // This shard's own UDP socket, read on this thread: a message for one of our
        // Call-IDs is handled without crossing threads.
        if let Some(sock) = self.ctx.transports.take_udp_socket(self.idx) {
            match tokio::net::UdpSocket::from_std(sock) {
                Ok(sock) => {
                    ctx.add_stream(datagrams(sock));
                }
                Err(e) => warn!(shard = self.idx, error = %e, "cannot register the udp socket"),
            }
        }
    }
}

/// Reads datagrams forever (errors such as ICMP port unreachable are skipped), with
/// how full the socket's receive buffer is, sampled every `FILL_SAMPLE_EVERY` reads
/// (one system call per sample, not per datagram).
fn datagrams(sock: tokio::net::UdpSocket) -> impl futures::Stream<Item = Datagram> {
    const FILL_SAMPLE_EVERY: u32 = 16;
    let state = (sock, vec![0u8; 65_536], 0u32, 0u32);
    futures::stream::unfold(state, |(sock, mut buf, mut reads, mut fill)| async move {
        loop {
            match sock.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    if reads % FILL_SAMPLE_EVERY == 0 {
                        fill = socket_fill_pct(&sock);
                    }
                    reads = reads.wrapping_add(1);
                    let d = Datagram {
                        bytes: Bytes::copy_from_slice(&buf[..n]),
                        from,
                        socket_fill_pct: fill,
                    };
                    return Some((d, (sock, buf, reads, fill)));
                }
                Err(e) => debug!(error = %e, "udp recv error"),
            }
        }
    })
}

/// The share of the socket's receive buffer in use, in percent (Linux `SO_MEMINFO`:
/// the kernel's own accounting, per-datagram overhead included); 0 where unknown.
fn socket_fill_pct(sock: &tokio::net::UdpSocket) -> u32 {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SK_MEMINFO_RMEM_ALLOC = 0, SK_MEMINFO_RCVBUF = 1 (linux/sock_diag.h).
        let mut info = [0u32; 9];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: `info` is a writable buffer of `len` bytes and outlives the call.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 && info[1] > 0 {
            return (u64::from(info[0]) * 100 / u64::from(info[1])) as u32;
        }
    }
    let _ = sock;
    0
}

/// A datagram one shard read from its socket for a Call-ID another shard owns, handed
/// over before it is parsed: one source's datagrams all arrive on one socket (the
/// kernel hashes a source to one of the SO_REUSEPORT sockets), and parsing them is
/// spread over the shards by Call-ID this way.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RawDatagram {
    pub bytes: Bytes,
    pub peer: Peer,
    pub queued: Instant,
    /// How full the reading shard's socket buffer was (percent).
    pub socket_fill_pct: u32,
}

impl Shard {
    /// Parses received bytes and routes the message: here if this shard owns its
    /// Call-ID, else to the owner (the Call-ID hint was wrong, or there was none).
    fn received(&mut self, bytes: &[u8], peer: Peer, queue: QueueSample, ctx: &mut Context<Self>) {
        let Some(msg) = self.ctx.transports.accept_bytes(bytes, peer) else {
            return;
        };
        let call_id = match &msg {
            SipMessage::Request(r) => h::first(&r.headers, "Call-ID"),
            SipMessage::Response(r) => h::first(&r.headers, "Call-ID"),
        }
        .unwrap_or("");
        let owner = shard_of(call_id, self.ctx.settings.shards);
        if owner == self.idx {
            self.inbound(msg, peer, queue, ctx);
        } else if let Some(shards) = self.ctx.shards.get() {
            enqueue(shards, &self.ctx.queues, owner, msg, peer);
        }
    }
}

impl StreamHandler<Datagram> for Shard {
    fn handle(&mut self, d: Datagram, ctx: &mut Self::Context) {
        let peer = Peer::udp(d.from);
        let hinted = call_id_hint(&d.bytes).map(|c| shard_of(c, self.ctx.settings.shards));
        if let (Some(owner), Some(shards)) = (hinted, self.ctx.shards.get()) {
            if owner != self.idx {
                let queues = &self.ctx.queues;
                queues[owner].push();
                let raw = RawDatagram {
                    bytes: d.bytes,
                    peer,
                    queued: Instant::now(),
                    socket_fill_pct: d.socket_fill_pct,
                };
                if let Err(e) = shards[owner].try_send(raw) {
                    queues[owner].pop();
                    warn!(shard = owner, %peer, error = %e, "shard mailbox full; message dropped");
                }
                return;
            }
        }
        // Read just now: its wait was in the socket buffer, seen as how full it is.
        let queue = QueueSample {
            depth: self.ctx.queues[self.idx].get(),
            age: Duration::ZERO,
            socket_fill_pct: d.socket_fill_pct,
        };
        self.received(&d.bytes, peer, queue, ctx);
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // The socket stream never ends by itself; if it does, keep serving TCP.
        warn!(shard = self.idx, "udp receive stream ended");
    }
}

impl Handler<RawDatagram> for Shard {
    type Result = ();

    fn handle(&mut self, raw: RawDatagram, ctx: &mut Self::Context) {
        let queue = QueueSample {
            depth: self.ctx.queues[self.idx].pop(),
            age: Instant::now().saturating_duration_since(raw.queued),
            socket_fill_pct: raw.socket_fill_pct,
        };
        self.received(&raw.bytes, raw.peer, queue, ctx);
    }
}

impl Handler<Inbound> for Shard {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Self::Context) {
        let queue = QueueSample {
            depth: self.ctx.queues[self.idx].pop(),
            age: Instant::now().saturating_duration_since(msg.queued),
            socket_fill_pct: 0,
        };
        self.inbound(msg.msg, msg.peer, queue, ctx);
    }
}

/// A call that tsps places itself (click-to-dial): its call actor runs on this shard's
/// Arbiter, and the shard dials its legs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PlaceCall {
    pub call: CallId,
    pub tenant: tsps_actors::TenantId,
    /// The user the call is for, and what they dial.
    pub origin: CallOrigin,
    /// The user as the destination sees them.
    pub caller: PartyInfo,
    pub dialled: String,
    pub device: tsps_actors::DeviceId,
    /// How the device is reached (its contacts, or an external phone's number); it is
    /// rung first.
    pub reach: tsps_actors::call::DeviceReach,
}

impl Handler<PlaceCall> for Shard {
    type Result = ();

    fn handle(&mut self, msg: PlaceCall, _: &mut Self::Context) {
        let Some(me) = self.me.clone() else { return };
        let setup = CallSetup {
            call: msg.call,
            tenant: msg.tenant,
            start: CallStart::ClickToDial {
                device: msg.device,
                reach: msg.reach,
            },
            origin: msg.origin,
            caller: msg.caller,
            dialled: msg.dialled,
            sip: me,
        };
        self.ctx.actors.start_call(setup);
        debug!(call = %msg.call, "click-to-dial call started");
    }
}

impl SipContext {
    /// Where calls that tsps places itself start: one entry per shard (empty until the
    /// shards have started).
    pub fn dialers(&self) -> Vec<Recipient<PlaceCall>> {
        self.shards
            .get()
            .map(|s| s.iter().map(|a| a.clone().recipient()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_our_call_ids_is_their_prefix() {
        assert_eq!(shard_of("tsps1.abcdef", 2), 1);
        assert_eq!(shard_of("tsps3.abcdef", 2), 1);
        let a = shard_of("random-call-id@host", 4);
        assert_eq!(a, shard_of("random-call-id@host", 4));
        assert!(a < 4);
    }
}
