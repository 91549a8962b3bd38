//! A SIP shard: one actor per worker Arbiter that owns every transaction and dialog
//! whose Call-ID hashes to it (the Call-IDs tsps creates carry their shard number).
//! It is the UAS core and UAC core of the B2BUA: it authenticates, runs the registrar,
//! creates one call actor per call and maps each leg's dialog to [`LegEvent`]s and
//! [`LegCommand`]s back to SIP. Call logic lives in the call actor, not here.

use super::auth::{Attempt, Authenticator, Decision};
use super::build::{self, RequestSpec};
use super::digest;
use super::headers as h;
use super::timer::TimerQueue;
use super::transaction::{Action, Actions, Kind, State, Timer, Transaction};
use super::{Peer, Proto};
use crate::store::SharedDirectory;
use crate::transport::{Dispatch, Transports};
use actix::prelude::*;
use bytes::Bytes;
use rsipstack::sip::{Method, Request, Response, SipMessage};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use tsps_actors::call::{CallActor, CallSetup, CallStart};
use tsps_actors::model::Device;
use tsps_actors::platform::Platform;
use tsps_actors::ports::{Body, Dial, DialTarget, LegCommand, LegEvent, LegEventKind, PartyInfo};
use tsps_actors::tenant::CallOrigin;
use tsps_actors::user::{ContactUpdate, Register, RegisterError, RegisterUpdate};
use tsps_actors::{CallId, LegId, TrunkId};

mod subscribe;

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
}

/// What every shard shares (immutable or internally synchronised).
pub struct SipContext {
    pub settings: SipSettings,
    pub directory: SharedDirectory,
    pub platform: Arc<Platform>,
    /// Digest authentication: nonces, their counts, the brute-force guard.
    pub auth: Authenticator,
    pub transports: Arc<Transports>,
    /// Every shard, by index (set once at start).
    pub shards: std::sync::OnceLock<Vec<Addr<Shard>>>,
    /// Personal mode: the upstream tenant's registrar (None on a platform).
    pub upstream: Option<Upstream>,
    /// The notifier's counters (subscriptions, NOTIFY and MESSAGE outcomes), for the
    /// metrics.
    pub presence_stats: Arc<super::presence::PresenceStats>,
}

impl SipContext {
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

impl Shard {
    /// The upstream trunk and the user's extension when `peer` is the upstream.
    fn upstream_call(&self, peer: Peer) -> Option<(TrunkId, String)> {
        let up = self.ctx.upstream.as_ref().filter(|u| u.addr == peer.addr)?;
        Some((up.trunk, up.extension.clone()))
    }

    /// 302 Moved Temporarily on the incoming leg's INVITE (RFC 3261 §8.3, §21.3.3).
    fn redirect_incoming(&mut self, leg_id: LegId, contact: &str) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let Some(key) = leg.invite_tx.clone().filter(|_| leg.uas && !leg.answered) else {
            return;
        };
        let tag = leg.local_tag.clone();
        let contact = format!("<{contact}>");
        self.respond(&key, 302, Some(&tag), &[("Contact", &contact)], None);
        self.drop_leg(leg_id);
    }
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
}

/// A parsed message for a shard.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound {
    pub msg: SipMessage,
    pub peer: Peer,
}

/// Routes inbound messages to shards by Call-ID.
pub struct ShardPool {
    pub shards: Vec<Addr<Shard>>,
}

impl Dispatch for ShardPool {
    fn dispatch(&self, msg: SipMessage, peer: Peer) {
        let call_id = match &msg {
            SipMessage::Request(r) => h::first(&r.headers, "Call-ID"),
            SipMessage::Response(r) => h::first(&r.headers, "Call-ID"),
        }
        .unwrap_or("");
        let i = shard_of(call_id, self.shards.len());
        if let Err(e) = self.shards[i].try_send(Inbound { msg, peer }) {
            // Overload: drop; UDP peers retransmit, and the shed load is visible in logs.
            warn!(shard = i, %peer, error = %e, "shard mailbox full; message dropped");
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TxKey {
    branch: String,
    method: Method,
    server: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Initial,
    ReInvite,
    Bye,
    Cancel,
    /// NOTIFY `Event: talk` in a ringing leg's early dialog (remote answer).
    Talk,
}

struct TxEntry {
    tx: Transaction,
    peer: Peer,
    gen: u64,
    owner: Option<(LegId, Purpose)>,
    /// Server transactions: the request, to build responses from.
    request: Option<Arc<Request>>,
}

struct TimerRef {
    key: TxKey,
    gen: u64,
    timer: Timer,
}

/// The SIP side of one leg: a dialog (early or confirmed) and its pending transactions.
struct Leg {
    call: CallId,
    events: Recipient<LegEvent>,
    /// True for the incoming leg (tsps is the UAS of its initial INVITE).
    uas: bool,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    /// Our From (UAC) or To (UAS) value, without tag.
    local_party: String,
    remote_party: String,
    local_cseq: u32,
    remote_cseq: u32,
    remote_target: String,
    route_set: Vec<String>,
    peer: Peer,
    confirmed: bool,
    /// The initial INVITE transaction.
    invite_tx: Option<TxKey>,
    /// A 2xx we sent waits for its ACK on this server transaction.
    awaiting_ack: Option<TxKey>,
    /// A re-INVITE received on this leg, waiting for the other side's answer.
    reinvite_in: Option<TxKey>,
    /// CSeq of the INVITE whose 2xx we must ACK (outgoing initial or re-INVITE).
    ack_cseq: Option<u32>,
    /// Via of our last re-INVITE on this leg (the ACK for its non-2xx answer reuses it).
    reinvite_via: String,
    last_ack: Option<Bytes>,
    answered: bool,
    // Outgoing initial INVITE only:
    request_uri: String,
    invite_via: String,
    invite_body: Option<Body>,
    provisional_seen: bool,
    cancel_pending: bool,
    trunk: Option<TrunkId>,
    auth_tried: bool,
    max_forwards: u32,
}

impl Leg {
    fn header_from(&self) -> String {
        if self.uas {
            self.remote_value()
        } else {
            format!("{};tag={}", self.local_party, self.local_tag)
        }
    }
    fn header_to(&self) -> String {
        if self.uas {
            format!("{};tag={}", self.local_party, self.local_tag)
        } else {
            self.remote_value()
        }
    }
    fn remote_value(&self) -> String {
        match &self.remote_tag {
            Some(t) => format!("{};tag={t}", self.remote_party),
            None => self.remote_party.clone(),
        }
    }
    /// Our side's From value for requests we send in this dialog.
    fn local_value(&self) -> String {
        format!("{};tag={}", self.local_party, self.local_tag)
    }
}

struct CallInfo {
    max_forwards: u32,
}

pub struct Shard {
    idx: usize,
    ctx: Arc<SipContext>,
    txs: HashMap<TxKey, TxEntry>,
    legs: HashMap<LegId, Leg>,
    dialogs: HashMap<(String, String), LegId>,
    calls: HashMap<CallId, CallInfo>,
    timers: TimerQueue<TimerRef>,
    gen: u64,
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
            txs: HashMap::new(),
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            calls: HashMap::new(),
            timers: TimerQueue::default(),
            gen: 0,
            me: None,
            subscriptions: Default::default(),
        }
    }

    // ----- transaction plumbing -------------------------------------------------

    fn add_tx(
        &mut self,
        key: TxKey,
        tx: Transaction,
        peer: Peer,
        owner: Option<(LegId, Purpose)>,
        request: Option<Arc<Request>>,
    ) -> u64 {
        self.gen += 1;
        let gen = self.gen;
        self.txs.insert(
            key,
            TxEntry {
                tx,
                peer,
                gen,
                owner,
                request,
            },
        );
        gen
    }

    /// Executes transmissions and timers; returns what the owner must handle.
    fn run(&mut self, key: &TxKey, actions: Actions) -> Vec<Action> {
        let Some(entry) = self.txs.get(key) else {
            return Vec::new();
        };
        let (peer, gen) = (entry.peer, entry.gen);
        let now = Instant::now();
        let mut rest = Vec::new();
        for a in actions {
            match a {
                Action::Transmit(b) => self.ctx.transports.send(peer, b),
                Action::Schedule(timer, d) => self.timers.schedule(
                    now + d,
                    TimerRef {
                        key: key.clone(),
                        gen,
                        timer,
                    },
                ),
                Action::Terminated => {
                    self.txs.remove(key);
                }
                other => rest.push(other),
            }
        }
        rest
    }

    fn start_client(
        &mut self,
        key: TxKey,
        kind: Kind,
        bytes: Vec<u8>,
        peer: Peer,
        owner: Option<(LegId, Purpose)>,
    ) {
        let (tx, actions) = Transaction::client(kind, Bytes::from(bytes), peer.proto.is_reliable());
        self.add_tx(key.clone(), tx, peer, owner, None);
        self.run(&key, actions);
    }

    /// Sends a response on a server transaction.
    fn respond(
        &mut self,
        key: &TxKey,
        code: u16,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) {
        let Some(entry) = self.txs.get_mut(key) else {
            return;
        };
        let Some(req) = entry.request.clone() else {
            return;
        };
        let bytes = build::response(&req, Some(entry.peer.addr), code, to_tag, extra, body);
        let actions = entry.tx.respond(code, Bytes::from(bytes));
        if code >= 200 {
            // The transaction lingers for its timers (up to 64*T1) but only ever resends
            // the response bytes it keeps: the parsed request can go now.
            entry.request = None;
        }
        let rest = self.run(key, actions);
        debug_assert!(rest.is_empty());
    }

    /// A response sent without a transaction (483, 482 and other refusals).
    fn respond_stateless(&self, req: &Request, peer: Peer, code: u16) {
        let tag = build::token();
        let bytes = build::response(req, Some(peer.addr), code, Some(&tag), &[], None);
        self.ctx.transports.send(peer, Bytes::from(bytes));
    }

    fn on_tick(&mut self) {
        self.subscriptions_tick();
        for t in self.timers.expired(Instant::now()) {
            let Some(entry) = self.txs.get_mut(&t.key) else {
                continue;
            };
            if entry.gen != t.gen {
                continue;
            }
            let owner = entry.owner;
            let actions = entry.tx.on_timer(t.timer);
            for event in self.run(&t.key, actions) {
                match event {
                    Action::Timeout if owner.is_none() => self.on_uac_timeout(&t.key),
                    Action::Timeout => self.on_client_timeout(owner),
                    Action::AckTimeout => {
                        if let Some((leg, Purpose::Initial)) = owner {
                            info!(%leg, "no ACK for our 2xx: ending the leg");
                            self.notify(leg, LegEventKind::Hangup);
                            self.send_bye(leg);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn notify(&self, leg: LegId, kind: LegEventKind) {
        if let Some(l) = self.legs.get(&leg) {
            l.events.do_send(LegEvent { leg, kind });
        }
    }

    fn drop_leg(&mut self, leg: LegId) {
        if let Some(l) = self.legs.remove(&leg) {
            self.dialogs.remove(&(l.call_id, l.local_tag));
            if l.uas {
                self.calls.remove(&l.call);
            }
        }
    }

    fn inbound(&mut self, msg: SipMessage, peer: Peer, ctx: &mut Context<Self>) {
        match msg {
            SipMessage::Request(r) => self.on_request(r, peer, ctx),
            SipMessage::Response(r) => self.on_response(r),
        }
    }

    // ----- inbound requests ------------------------------------------------------

    fn on_request(&mut self, req: Request, peer: Peer, ctx: &mut Context<Self>) {
        let Some(via) = h::first(&req.headers, "Via") else {
            return;
        };
        let Some(branch) = h::via_branch(via).map(str::to_string) else {
            self.respond_stateless(&req, peer, 400);
            return;
        };
        let method = req.method;
        let key_method = if method == Method::Ack {
            Method::Invite
        } else {
            method
        };
        let key = TxKey {
            branch,
            method: key_method,
            server: true,
        };

        if let Some(entry) = self.txs.get_mut(&key) {
            let actions = if method == Method::Ack {
                entry.tx.on_ack()
            } else {
                entry.tx.on_retransmission()
            };
            self.run(&key, actions);
            return;
        }
        if method == Method::Ack {
            self.on_dialog_ack(&req);
            return;
        }
        if let Some(mf) =
            h::first(&req.headers, "Max-Forwards").and_then(|v| v.trim().parse::<u32>().ok())
        {
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
            self.on_cancel(req, peer, key);
            return;
        }
        if (h::first(&req.headers, "Authorization").is_some()
            || h::first(&req.headers, "Proxy-Authorization").is_some())
            && self.ctx.auth.ignores(peer.addr.ip(), unix_now_ms())
        {
            // A source blocked for guessing passwords gets no answer (src/sip/auth/guard.rs).
            return;
        }
        let kind = if method == Method::Invite {
            Kind::InviteServer
        } else {
            Kind::NonInviteServer
        };
        let req = Arc::new(req);
        self.add_tx(
            key.clone(),
            Transaction::server(kind, peer.proto.is_reliable()),
            peer,
            None,
            Some(req.clone()),
        );

        if method == Method::Subscribe {
            self.on_subscribe(&req, peer, key, ctx);
            return;
        }
        let to_tag = h::first(&req.headers, "To").and_then(|t| h::param(t, "tag"));
        if to_tag.is_some() {
            self.on_in_dialog(&req, peer, key);
            return;
        }
        match method {
            Method::Register => self.on_register(&req, peer, key, ctx),
            Method::Invite => self.on_invite(&req, peer, key),
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

    fn on_cancel(&mut self, req: Request, peer: Peer, key: TxKey) {
        let invite_key = TxKey {
            method: Method::Invite,
            ..key.clone()
        };
        let req = Arc::new(req);
        self.add_tx(
            key.clone(),
            Transaction::server(Kind::NonInviteServer, peer.proto.is_reliable()),
            peer,
            None,
            Some(req),
        );
        let Some(invite) = self.txs.get(&invite_key) else {
            self.respond(&key, 481, None, &[], None);
            return;
        };
        let (state, owner) = (invite.tx.state, invite.owner);
        self.respond(&key, 200, None, &[], None);
        if state == State::Proceeding {
            let tag = owner
                .and_then(|(leg, _)| self.legs.get(&leg))
                .map(|l| l.local_tag.clone());
            self.respond(&invite_key, 487, tag.as_deref(), &[], None);
            if let Some((leg, Purpose::Initial)) = owner {
                self.notify(leg, LegEventKind::Cancelled);
                self.drop_leg(leg);
            }
        }
    }

    fn on_dialog_ack(&mut self, req: &Request) {
        let Some(leg_id) = self.dialog_of(req) else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        // Only the first ACK for a 2xx is relayed; retransmitted ones are absorbed.
        let Some(tx_key) = leg.awaiting_ack.take() else {
            return;
        };
        if let Some(entry) = self.txs.get_mut(&tx_key) {
            let actions = entry.tx.on_ack();
            self.run(&tx_key, actions);
        }
        let body = body_of(&req.body);
        self.notify(leg_id, LegEventKind::Acked { body });
    }

    fn dialog_of(&self, req: &Request) -> Option<LegId> {
        let call_id = h::first(&req.headers, "Call-ID")?;
        let to_tag = h::param(h::first(&req.headers, "To")?, "tag")?;
        self.dialogs
            .get(&(call_id.to_string(), to_tag.to_string()))
            .copied()
    }

    fn on_in_dialog(&mut self, req: &Request, _peer: Peer, key: TxKey) {
        let Some(leg_id) = self.dialog_of(req) else {
            self.respond(&key, 481, None, &[], None);
            return;
        };
        let cseq = h::first(&req.headers, "CSeq")
            .and_then(h::cseq)
            .map(|c| c.0)
            .unwrap_or(0);
        let leg = self
            .legs
            .get_mut(&leg_id)
            .expect("dialog index points at a live leg");
        if cseq <= leg.remote_cseq && leg.remote_cseq != 0 {
            self.respond(&key, 500, None, &[("Retry-After", "1")], None);
            return;
        }
        leg.remote_cseq = cseq;
        match req.method {
            Method::Bye => {
                self.respond(&key, 200, None, &[], None);
                self.notify(leg_id, LegEventKind::Hangup);
                self.drop_leg(leg_id);
            }
            Method::Invite => {
                if leg.reinvite_in.is_some() || leg.awaiting_ack.is_some() {
                    self.respond(&key, 491, None, &[], None);
                    return;
                }
                if let Some(c) = h::first(&req.headers, "Contact") {
                    leg.remote_target = h::uri(c).to_string();
                }
                leg.reinvite_in = Some(key.clone());
                if let Some(e) = self.txs.get_mut(&key) {
                    e.owner = Some((leg_id, Purpose::ReInvite));
                }
                self.respond(&key, 100, None, &[], None);
                self.notify(
                    leg_id,
                    LegEventKind::ReOffer {
                        body: body_of(&req.body),
                    },
                );
            }
            Method::Options => self.respond(&key, 200, None, &[("Allow", build::ALLOW)], None),
            _ => self.respond(&key, 501, None, &[], None),
        }
    }

    /// Digest authentication of a request from a device of `tenant` (None: nobody hosts
    /// `realm`, which is challenged all the same). Sends the challenge or refusal itself
    /// (src/sip/auth decides) and returns None unless the device proved itself.
    fn authenticate(
        &mut self,
        req: &Request,
        peer: Peer,
        key: &TxKey,
        realm: &str,
        tenant: Option<tsps_actors::TenantId>,
        proxy: bool,
    ) -> Option<Device> {
        let header = if proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        let request_uri = req.uri.to_string();
        // Whose phone this claims to be, for the algorithms to offer it.
        let party = if req.method == Method::Register {
            "To"
        } else {
            "From"
        };
        let claimed = h::first(&req.headers, party).and_then(|v| h::uri_user(h::uri(v)));
        let attempt = Attempt {
            method: method_name(req.method),
            request_uri: &request_uri,
            credentials: h::each(&req.headers, header),
            source: peer.addr.ip(),
            realm,
            tenant,
            claimed,
        };
        let now = unix_now_ms();
        let dir = self.ctx.directory.get();
        match self.ctx.auth.decide(&attempt, &dir, now) {
            Decision::Accept(device) => Some(device),
            Decision::Challenge { stale, offer } => {
                self.challenge(key, realm, proxy, stale, &offer, now);
                None
            }
            Decision::Refuse(code) => {
                self.refuse(key, code);
                None
            }
            Decision::Ignore => {
                // Nothing is sent; the transaction goes with its retransmissions.
                self.txs.remove(key);
                None
            }
        }
    }

    fn challenge(
        &mut self,
        key: &TxKey,
        realm: &str,
        proxy: bool,
        stale: bool,
        offer: &[super::digest::Algorithm],
        now_ms: u64,
    ) {
        let (code, name) = if proxy {
            (407, "Proxy-Authenticate")
        } else {
            (401, "WWW-Authenticate")
        };
        let values = self.ctx.auth.challenges(realm, now_ms, stale, offer);
        let extra: Vec<(&str, &str)> = values.iter().map(|v| (name, v.as_str())).collect();
        let tag = build::token();
        self.respond(key, code, Some(&tag), &extra, None);
    }

    fn refuse(&mut self, key: &TxKey, code: u16) {
        let tag = build::token();
        self.respond(key, code, Some(&tag), &[], None);
    }

    // ----- registrar ---------------------------------------------------------------

    fn on_register(&mut self, req: &Request, peer: Peer, key: TxKey, ctx: &mut Context<Self>) {
        let to = h::first(&req.headers, "To").unwrap_or("");
        let aor = h::uri(to);
        let domain = h::uri_host(aor).to_ascii_lowercase();
        let dir = self.ctx.directory.get();
        // A domain nobody hosts is challenged like a hosted one (no answer can pass): an
        // outsider cannot tell which domains are hosted here.
        let Some(tenant) = dir.tenant_by_domain(&domain).cloned() else {
            self.authenticate(req, peer, &key, &domain, None, false);
            return;
        };
        let Some(device) =
            self.authenticate(req, peer, &key, &tenant.domain, Some(tenant.id), false)
        else {
            return;
        };
        if let Some(trunk) = dir.foreign_trunk_by_source(tenant.id, peer.addr.ip()) {
            // Calls from this address are another tenant's carrier's: a phone here would
            // be taken for it.
            warn!(%peer, device = %device.id, trunk = %trunk.id,
                "REGISTER refused: the source is another tenant's trunk address");
            self.refuse(&key, 403);
            return;
        }
        let Some(user) = dir.user(device.user_id).cloned() else {
            self.refuse(&key, 404);
            return;
        };
        let aor_user = h::uri_user(aor).unwrap_or("");
        if aor_user != user.extension && aor_user != device.sip_username {
            // A device may only register its own user's address of record.
            self.refuse(&key, 403);
            return;
        }
        let header_expires =
            h::first(&req.headers, "Expires").and_then(|v| v.trim().parse::<u32>().ok());
        let contacts = h::all(&req.headers, "Contact");
        let update = if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                self.refuse(&key, 400);
                return;
            }
            RegisterUpdate::RemoveAll
        } else if contacts.is_empty() {
            RegisterUpdate::Query
        } else {
            let mut updates = Vec::with_capacity(contacts.len());
            for c in contacts {
                let requested = h::param(c, "expires")
                    .and_then(|v| v.parse::<u32>().ok())
                    .or(header_expires)
                    .unwrap_or(3600);
                if requested != 0 && requested < self.ctx.settings.min_expires {
                    let min = self.ctx.settings.min_expires.to_string();
                    let tag = build::token();
                    self.respond(&key, 423, Some(&tag), &[("Min-Expires", &min)], None);
                    return;
                }
                updates.push(ContactUpdate {
                    contact: h::uri(c).to_string(),
                    received: peer.to_string(),
                    expires: requested.min(self.ctx.settings.max_expires),
                });
            }
            RegisterUpdate::Contacts(updates)
        };
        let Some(user_addr) = self.ctx.platform.registry.user(user.id) else {
            self.refuse(&key, 500);
            return;
        };
        let call_id = h::first(&req.headers, "Call-ID").unwrap_or("").to_string();
        let cseq = h::first(&req.headers, "CSeq")
            .and_then(h::cseq)
            .map(|c| c.0)
            .unwrap_or(0);
        let msg = Register {
            device: device.id,
            call_id,
            cseq,
            update,
        };
        user_addr
            .send(msg)
            .into_actor(self)
            .map(move |res, act, _| {
                let tag = build::token();
                match res {
                    Ok(Ok(bindings)) => {
                        if peer.proto == Proto::Tcp {
                            // The phone is reachable only through this connection.
                            let longest = bindings.iter().map(|(_, left)| *left).max();
                            if let Some(left) = longest {
                                act.ctx.transports.keep_alive(
                                    peer.addr,
                                    Duration::from_secs(u64::from(left) + 32),
                                );
                            }
                        }
                        let values: Vec<String> = bindings
                            .iter()
                            .map(|(b, left)| format!("<{}>;expires={left}", b.contact))
                            .collect();
                        let extra: Vec<(&str, &str)> =
                            values.iter().map(|v| ("Contact", v.as_str())).collect();
                        act.respond(&key, 200, Some(&tag), &extra, None);
                    }
                    Ok(Err(RegisterError::OutOfOrder { .. })) => {
                        act.respond(&key, 500, Some(&tag), &[("Retry-After", "1")], None)
                    }
                    Err(e) => {
                        warn!(error = %e, "user actor unavailable for REGISTER");
                        act.respond(&key, 500, Some(&tag), &[("Retry-After", "5")], None);
                    }
                }
            })
            .spawn(ctx);
    }

    // ----- calls: the incoming leg -------------------------------------------------

    fn on_invite(&mut self, req: &Request, peer: Peer, key: TxKey) {
        let dir = self.ctx.directory.get();
        let from = h::first(&req.headers, "From").unwrap_or("").to_string();
        let to = h::first(&req.headers, "To").unwrap_or("").to_string();
        let ruri = req.uri.to_string();
        let dialled = h::uri_user(&ruri)
            .or_else(|| h::uri_user(h::uri(&to)))
            .unwrap_or("")
            .to_string();
        let upstream = self.upstream_call(peer);
        let dialled = upstream.as_ref().map_or(dialled, |(_, x)| x.clone());
        let trunk = upstream.and_then(|(t, _)| dir.trunk(t));

        // Credentials for a hosted realm make the request a device's, whatever its
        // address: a trunk's source range never takes a phone's call that way.
        let claims_device = ["Proxy-Authorization", "Authorization"]
            .iter()
            .flat_map(|name| h::each(&req.headers, name))
            .filter_map(|v| crate::sip::digest::parse_credentials(v).ok())
            .any(|c| dir.tenant_by_domain(&c.realm).is_some());
        let by_source = || {
            (!claims_device)
                .then(|| dir.trunk_by_source(peer.addr.ip()))
                .flatten()
        };
        let (tenant, origin, caller, caller_target) = if let Some(trunk) = trunk.or_else(by_source)
        {
            let Some(tenant) = dir.tenant(trunk.tenant_id).cloned() else {
                self.refuse(&key, 403);
                return;
            };
            let caller = PartyInfo {
                user: h::uri_user(h::uri(&from))
                    .unwrap_or("anonymous")
                    .to_string(),
                display_name: h::display_name(&from).map(str::to_string),
                domain: tenant.domain.clone(),
            };
            let origin = CallOrigin::Trunk {
                trunk: trunk.id,
                did: dialled.clone(),
            };
            (tenant, origin, caller, format!("trunk:{}", trunk.name))
        } else {
            let domain = h::uri_host(h::uri(&from)).to_ascii_lowercase();
            let Some(tenant) = dir.tenant_by_domain(&domain).cloned() else {
                self.authenticate(req, peer, &key, &domain, None, true);
                return;
            };
            let Some(device) =
                self.authenticate(req, peer, &key, &tenant.domain, Some(tenant.id), true)
            else {
                return;
            };
            // The Request-URI may name another tenant's domain: tsps routes a device's
            // call inside its own tenant only, so that is nobody it can reach.
            let target = h::uri_host(&ruri).to_ascii_lowercase();
            if dir
                .tenant_by_domain(&target)
                .is_some_and(|t| t.id != tenant.id)
            {
                self.refuse(&key, 404);
                return;
            }
            let Some(user) = dir.user(device.user_id).cloned() else {
                self.refuse(&key, 403);
                return;
            };
            let caller = PartyInfo {
                user: user.extension.clone(),
                display_name: Some(user.display_name.clone()),
                domain: tenant.domain.clone(),
            };
            let origin = CallOrigin::User {
                user: user.id,
                dialled: dialled.clone(),
            };
            (
                tenant,
                origin,
                caller,
                format!("device:{}", device.sip_username),
            )
        };

        self.respond(&key, 100, None, &[], None);
        let call = CallId::new();
        let a_leg = LegId::new();
        let local_tag = build::token();
        let call_id = h::first(&req.headers, "Call-ID").unwrap_or("").to_string();
        let remote_cseq = h::first(&req.headers, "CSeq")
            .and_then(h::cseq)
            .map(|c| c.0)
            .unwrap_or(1);
        let max_forwards = h::first(&req.headers, "Max-Forwards")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(70)
            .min(70);
        let remote_target = h::first(&req.headers, "Contact")
            .map(|c| h::uri(c).to_string())
            .unwrap_or_else(|| h::uri(&from).to_string());
        let route_set: Vec<String> = h::all(&req.headers, "Record-Route")
            .into_iter()
            .map(str::to_string)
            .collect();
        let Some(me) = self.me.clone() else { return };
        let setup = CallSetup {
            call,
            tenant: tenant.id,
            start: CallStart::Incoming {
                leg: a_leg,
                target: caller_target,
                offer: body_of(&req.body),
            },
            origin,
            caller,
            dialled,
            sip: me,
        };
        // The call actor runs on this shard's Arbiter: its commands come back here
        // without crossing threads.
        let addr = CallActor::new(setup, self.ctx.platform.clone()).start();
        self.calls.insert(
            call,
            CallInfo {
                max_forwards: max_forwards.saturating_sub(1),
            },
        );
        if let Some(e) = self.txs.get_mut(&key) {
            e.owner = Some((a_leg, Purpose::Initial));
        }
        self.dialogs
            .insert((call_id.clone(), local_tag.clone()), a_leg);
        self.legs.insert(
            a_leg,
            Leg {
                call,
                events: addr.recipient(),
                uas: true,
                call_id,
                local_tag,
                remote_tag: h::param(&from, "tag").map(str::to_string),
                local_party: build::strip_tag(&to),
                remote_party: build::strip_tag(&from),
                local_cseq: 0,
                remote_cseq,
                remote_target,
                route_set,
                peer,
                confirmed: false,
                invite_tx: Some(key),
                awaiting_ack: None,
                reinvite_in: None,
                ack_cseq: None,
                reinvite_via: String::new(),
                last_ack: None,
                answered: false,
                request_uri: ruri,
                invite_via: String::new(),
                invite_body: None,
                provisional_seen: false,
                cancel_pending: false,
                trunk: None,
                auth_tried: false,
                max_forwards,
            },
        );
        debug!(%call, %a_leg, "call started");
    }

    // ----- inbound responses -------------------------------------------------------

    fn on_response(&mut self, resp: Response) {
        let Some(branch) = h::first(&resp.headers, "Via").and_then(h::via_branch) else {
            return;
        };
        let Some((cseq, method)) = h::first(&resp.headers, "CSeq").and_then(h::cseq) else {
            return;
        };
        let Ok(method) = method.parse::<Method>() else {
            return;
        };
        let code = resp.status_code.code();
        let key = TxKey {
            branch: branch.to_string(),
            method,
            server: false,
        };
        let Some(entry) = self.txs.get_mut(&key) else {
            // A 2xx retransmitted after the transaction ended: ACK it again.
            if method == Method::Invite && (200..300).contains(&code) {
                self.reack(&resp);
            }
            return;
        };
        let owner = entry.owner;
        let ack = || {
            owner
                .and_then(|(leg, purpose)| Some((self.legs.get(&leg)?, purpose)))
                .map(|(l, purpose)| non2xx_ack(l, purpose, &resp, cseq))
                .unwrap_or_default()
        };
        let actions = entry.tx.on_response(code, ack);
        for event in self.run(&key, actions) {
            if let Action::Deliver { code } = event {
                if owner.is_none() {
                    self.on_uac_response(&key, code);
                }
                self.on_client_response(owner, &resp, code, cseq);
            }
        }
    }

    fn reack(&mut self, resp: &Response) {
        let Some(call_id) = h::first(&resp.headers, "Call-ID") else {
            return;
        };
        let Some(tag) = h::first(&resp.headers, "From").and_then(|f| h::param(f, "tag")) else {
            return;
        };
        if let Some(leg) = self
            .dialogs
            .get(&(call_id.to_string(), tag.to_string()))
            .and_then(|id| self.legs.get(id))
        {
            if let Some(ack) = &leg.last_ack {
                self.ctx.transports.send(leg.peer, ack.clone());
            }
        }
    }

    fn on_client_response(
        &mut self,
        owner: Option<(LegId, Purpose)>,
        resp: &Response,
        code: u16,
        cseq: u32,
    ) {
        let Some((leg_id, purpose)) = owner else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        match purpose {
            Purpose::Initial => {
                if code == 100 {
                    return;
                }
                let to = h::first(&resp.headers, "To").unwrap_or("");
                if let Some(tag) = h::param(to, "tag") {
                    if code < 300 {
                        leg.remote_tag = Some(tag.to_string());
                    }
                }
                if code < 200 {
                    leg.provisional_seen = true;
                    if leg.cancel_pending {
                        self.send_cancel(leg_id);
                        return;
                    }
                    self.notify(
                        leg_id,
                        LegEventKind::Progress {
                            code,
                            body: body_of(&resp.body),
                        },
                    );
                } else if code < 300 {
                    if leg.answered {
                        // A retransmitted 2xx: re-send our ACK if we have sent it.
                        if let Some(ack) = &leg.last_ack {
                            self.ctx.transports.send(leg.peer, ack.clone());
                        }
                        return;
                    }
                    leg.answered = true;
                    leg.confirmed = true;
                    leg.ack_cseq = Some(cseq);
                    if let Some(c) = h::first(&resp.headers, "Contact") {
                        leg.remote_target = h::uri(c).to_string();
                    }
                    let mut rr: Vec<String> = h::all(&resp.headers, "Record-Route")
                        .into_iter()
                        .map(str::to_string)
                        .collect();
                    rr.reverse();
                    leg.route_set = rr;
                    self.notify(
                        leg_id,
                        LegEventKind::Answered {
                            body: body_of(&resp.body),
                        },
                    );
                } else if (code == 401 || code == 407) && leg.trunk.is_some() && !leg.auth_tried {
                    leg.auth_tried = true;
                    self.retry_with_auth(leg_id, resp, code);
                } else if (300..400).contains(&code) {
                    let targets = h::all(&resp.headers, "Contact")
                        .into_iter()
                        .map(|c| {
                            let uri = h::uri(c);
                            tsps_actors::ports::RedirectTarget {
                                uri: uri.to_string(),
                                user: h::uri_user(uri).map(str::to_string),
                                host: h::uri_host(uri).to_ascii_lowercase(),
                            }
                        })
                        .collect();
                    self.notify(leg_id, LegEventKind::Redirected { code, targets });
                    self.drop_leg(leg_id);
                } else {
                    self.notify(leg_id, LegEventKind::Failed { code });
                    self.drop_leg(leg_id);
                }
            }
            Purpose::ReInvite => {
                if code < 200 {
                    return;
                }
                if code < 300 {
                    leg.ack_cseq = Some(cseq);
                    self.notify(
                        leg_id,
                        LegEventKind::ReAnswer {
                            code,
                            body: body_of(&resp.body),
                        },
                    );
                } else {
                    self.notify(leg_id, LegEventKind::ReAnswer { code, body: None });
                }
            }
            Purpose::Bye => {
                if code >= 200 {
                    self.drop_leg(leg_id);
                }
            }
            Purpose::Talk => {
                if code >= 300 {
                    // The phone will not answer by itself; it keeps ringing.
                    info!(leg = %leg_id, code, "the device refused the remote answer");
                }
            }
            Purpose::Cancel => {}
        }
    }

    fn on_client_timeout(&mut self, owner: Option<(LegId, Purpose)>) {
        let Some((leg, purpose)) = owner else { return };
        match purpose {
            Purpose::Initial => {
                self.notify(leg, LegEventKind::Failed { code: 408 });
                self.drop_leg(leg);
            }
            Purpose::ReInvite => self.notify(
                leg,
                LegEventKind::ReAnswer {
                    code: 408,
                    body: None,
                },
            ),
            Purpose::Bye => self.drop_leg(leg),
            Purpose::Cancel | Purpose::Talk => {}
        }
    }

    // ----- outgoing legs -----------------------------------------------------------

    fn dial(&mut self, d: Dial) {
        let Dial {
            call,
            leg: leg_id,
            target,
            caller,
            callee,
            body,
            events,
            ..
        } = d;
        let dir = self.ctx.directory.get();
        let (request_uri, peer, to, trunk) = match &target {
            DialTarget::Contact(b) => {
                let received: Option<Peer> = b.received.parse().ok();
                let peer = contact_peer(&b.contact, received, |addr| {
                    self.ctx.transports.is_connected(addr)
                });
                let to = format!("<sip:{}@{}>", callee.user, callee.domain);
                (b.contact.clone(), peer, to, None)
            }
            DialTarget::Uri(uri) => {
                let tcp =
                    h::uri_param(uri, "transport").is_some_and(|t| t.eq_ignore_ascii_case("tcp"));
                let host: Option<std::net::IpAddr> = h::uri_host(uri).parse().ok();
                let peer = host.map(|ip| {
                    let addr = std::net::SocketAddr::new(ip, h::uri_port(uri).unwrap_or(5060));
                    if tcp {
                        Peer::tcp(addr)
                    } else {
                        Peer::udp(addr)
                    }
                });
                (uri.clone(), peer, format!("<{uri}>"), None)
            }
            DialTarget::Trunk { trunk_id, number } => match dir.trunk(*trunk_id) {
                Some(t) => {
                    let proto = match t.transport {
                        tsps_actors::model::TransportKind::Udp => Proto::Udp,
                        tsps_actors::model::TransportKind::Tcp => Proto::Tcp,
                    };
                    let peer = t.peer_host.parse::<std::net::IpAddr>().ok().map(|ip| Peer {
                        proto,
                        addr: std::net::SocketAddr::new(ip, t.peer_port),
                    });
                    let uri = format!("sip:{number}@{}:{}", t.peer_host, t.peer_port);
                    let to = format!("<sip:{number}@{}>", t.peer_host);
                    (uri, peer, to, Some(t.id))
                }
                None => (String::new(), None, String::new(), None),
            },
        };
        let Some(peer) = peer else {
            warn!(%call, target = %target.describe(), "cannot reach dial target (host must be an IP literal)");
            events.do_send(LegEvent {
                leg: leg_id,
                kind: LegEventKind::Failed { code: 503 },
            });
            return;
        };
        let max_forwards = self.calls.get(&call).map(|c| c.max_forwards).unwrap_or(69);
        if max_forwards == 0 {
            events.do_send(LegEvent {
                leg: leg_id,
                kind: LegEventKind::Failed { code: 483 },
            });
            return;
        }
        let display = caller
            .display_name
            .as_deref()
            .map(|d| format!("\"{}\" ", d.replace('"', "")))
            .unwrap_or_default();
        let local_party = format!("{display}<sip:{}@{}>", caller.user, caller.domain);
        let call_id = format!("tsps{}.{}", self.idx, uuid::Uuid::new_v4().simple());
        let leg = Leg {
            call,
            events,
            uas: false,
            call_id: call_id.clone(),
            local_tag: build::token(),
            remote_tag: None,
            local_party,
            remote_party: to,
            local_cseq: 1,
            remote_cseq: 0,
            remote_target: request_uri.clone(),
            route_set: Vec::new(),
            peer,
            confirmed: false,
            invite_tx: None,
            awaiting_ack: None,
            reinvite_in: None,
            ack_cseq: None,
            reinvite_via: String::new(),
            last_ack: None,
            answered: false,
            request_uri,
            invite_via: String::new(),
            invite_body: body,
            provisional_seen: false,
            cancel_pending: false,
            trunk,
            auth_tried: false,
            max_forwards,
        };
        self.dialogs
            .insert((call_id, leg.local_tag.clone()), leg_id);
        self.legs.insert(leg_id, leg);
        self.send_initial_invite(leg_id, None);
    }

    /// Sends (or re-sends with credentials) the initial INVITE of an outgoing leg.
    fn send_initial_invite(&mut self, leg_id: LegId, authorization: Option<(&str, String)>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let branch = build::branch();
        let via = self.ctx.via(leg.peer.proto, &branch);
        let contact = self.ctx.contact(leg.peer.proto);
        let extra: Vec<(&str, String)> = authorization.into_iter().collect();
        let from = leg.local_value();
        let to = leg.remote_party.clone();
        let bytes = build::request(&RequestSpec {
            method: "INVITE",
            uri: &leg.request_uri,
            via: &via,
            from: &from,
            to: &to,
            call_id: &leg.call_id,
            cseq: leg.local_cseq,
            max_forwards: leg.max_forwards,
            contact: Some(&contact),
            routes: &[],
            extra: &extra,
            body: leg.invite_body.as_deref(),
        });
        leg.invite_via = via;
        let key = TxKey {
            branch,
            method: Method::Invite,
            server: false,
        };
        leg.invite_tx = Some(key.clone());
        let peer = leg.peer;
        self.start_client(
            key,
            Kind::InviteClient,
            bytes,
            peer,
            Some((leg_id, Purpose::Initial)),
        );
    }

    fn retry_with_auth(&mut self, leg_id: LegId, resp: &Response, code: u16) {
        let dir = self.ctx.directory.get();
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let creds = leg
            .trunk
            .and_then(|t| dir.trunk(t))
            .and_then(|t| Some((t.username.clone()?, t.password.clone()?)));
        let challenge_name = if code == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let answer = creds.and_then(|(user, pass)| {
            // Prefer the strongest challenge we can answer.
            let challenges = h::each(&resp.headers, challenge_name);
            let pick = challenges
                .iter()
                .find(|c| c.to_ascii_uppercase().contains("SHA-256"))
                .or(challenges.first())?;
            digest::answer_challenge(
                pick,
                "INVITE",
                &leg.request_uri,
                &user,
                pass.expose(),
                &build::token(),
                1,
            )
            .ok()
        });
        match answer {
            Some(value) => {
                leg.local_cseq += 1;
                let name = if code == 407 {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                };
                self.send_initial_invite(leg_id, Some((name, value)));
            }
            None => {
                self.notify(leg_id, LegEventKind::Failed { code });
                self.drop_leg(leg_id);
            }
        }
    }

    fn send_cancel(&mut self, leg_id: LegId) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let Some(invite_key) = leg.invite_tx.clone() else {
            return;
        };
        let bytes = build::request(&RequestSpec {
            method: "CANCEL",
            uri: &leg.request_uri,
            via: &leg.invite_via,
            from: &leg.local_value(),
            to: &leg.remote_party,
            call_id: &leg.call_id,
            cseq: leg.local_cseq,
            max_forwards: 70,
            contact: None,
            routes: &[],
            extra: &[],
            body: None,
        });
        let key = TxKey {
            branch: invite_key.branch,
            method: Method::Cancel,
            server: false,
        };
        let peer = leg.peer;
        self.start_client(
            key,
            Kind::NonInviteClient,
            bytes,
            peer,
            Some((leg_id, Purpose::Cancel)),
        );
    }

    /// Sends an in-dialog request (BYE, re-INVITE, NOTIFY) on a leg.
    fn send_in_dialog(
        &mut self,
        leg_id: LegId,
        method: &str,
        extra: &[(&str, String)],
        body: Option<&[u8]>,
        purpose: Purpose,
    ) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.local_cseq += 1;
        let branch = build::branch();
        let via = self.ctx.via(leg.peer.proto, &branch);
        let contact = self.ctx.contact(leg.peer.proto);
        let (from, to) = if leg.uas {
            (leg.local_value(), leg.remote_value())
        } else {
            (leg.header_from(), leg.header_to())
        };
        let bytes = build::request(&RequestSpec {
            method,
            uri: &leg.remote_target,
            via: &via,
            from: &from,
            to: &to,
            call_id: &leg.call_id,
            cseq: leg.local_cseq,
            max_forwards: 70,
            contact: (method != "BYE").then_some(contact.as_str()),
            routes: &leg.route_set,
            extra,
            body,
        });
        let m = match method {
            "INVITE" => Method::Invite,
            "NOTIFY" => Method::Notify,
            _ => Method::Bye,
        };
        let kind = if m == Method::Invite {
            Kind::InviteClient
        } else {
            Kind::NonInviteClient
        };
        if m == Method::Invite {
            leg.reinvite_via = via.clone();
        }
        let peer = leg.peer;
        self.start_client(
            TxKey {
                branch,
                method: m,
                server: false,
            },
            kind,
            bytes,
            peer,
            Some((leg_id, purpose)),
        );
    }

    fn send_bye(&mut self, leg_id: LegId) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.uas && !leg.confirmed && !leg.answered {
            self.drop_leg(leg_id);
            return;
        }
        self.send_in_dialog(leg_id, "BYE", &[], None, Purpose::Bye);
    }

    fn send_ack(&mut self, leg_id: LegId, body: Option<Body>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(cseq) = leg.ack_cseq.take() else {
            return;
        };
        let via = self.ctx.via(leg.peer.proto, &build::branch());
        let (from, to) = if leg.uas {
            (leg.local_value(), leg.remote_value())
        } else {
            (leg.header_from(), leg.header_to())
        };
        let bytes = Bytes::from(build::request(&RequestSpec {
            method: "ACK",
            uri: &leg.remote_target,
            via: &via,
            from: &from,
            to: &to,
            call_id: &leg.call_id,
            cseq,
            max_forwards: 70,
            contact: None,
            routes: &leg.route_set,
            extra: &[],
            body: body.as_deref(),
        }));
        leg.last_ack = Some(bytes.clone());
        self.ctx.transports.send(leg.peer, bytes);
    }

    /// Remote answer (the BroadWorks `talk` event that Polycom, Yealink and other
    /// phones act on): a NOTIFY with `Event: talk` to the ringing device's contact, in
    /// the early dialog of our INVITE (its Call-ID, our From tag, the To tag of the
    /// device's 180), so that a phone which matches it to the ringing call finds it
    /// and one that takes it out of dialog still sees the event. Only for an outgoing
    /// leg that has not been answered.
    fn send_talk(&mut self, leg_id: LegId) {
        match self.legs.get(&leg_id) {
            Some(l) if !l.uas && !l.answered => {}
            _ => return,
        }
        let extra = [
            ("Event", "talk".to_string()),
            ("Subscription-State", "terminated".to_string()),
        ];
        self.send_in_dialog(leg_id, "NOTIFY", &extra, None, Purpose::Talk);
    }

    /// A consultative transfer moved the leg into another call: its events go to that
    /// call's actor from now on. A re-INVITE the old owner never answered is refused
    /// (the peer may retry); a leg that ended meanwhile is reported ended to the new
    /// owner, and a new owner that is already gone gets the leg ended.
    fn hand_over(&mut self, leg_id: LegId, events: Recipient<LegEvent>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            events.do_send(LegEvent {
                leg: leg_id,
                kind: LegEventKind::Hangup,
            });
            return;
        };
        leg.events = events;
        let alive = leg.events.connected();
        let pending = leg.reinvite_in.take();
        if let Some(key) = pending {
            let tag = leg.local_tag.clone();
            self.respond(&key, 491, Some(&tag), &[], None);
        }
        if !alive {
            self.send_bye(leg_id);
        }
    }

    /// A response on the initial INVITE of the incoming leg.
    fn answer_incoming(&mut self, leg_id: LegId, code: u16, body: Option<Body>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(key) = leg.invite_tx.clone() else {
            return;
        };
        let tag = leg.local_tag.clone();
        let contact = self.ctx.contact(leg.peer.proto);
        if (200..300).contains(&code) {
            leg.confirmed = true;
            leg.answered = true;
            leg.awaiting_ack = Some(key.clone());
        }
        let extra: Vec<(&str, &str)> = if code < 300 {
            vec![("Contact", contact.as_str())]
        } else {
            vec![]
        };
        self.respond(&key, code, Some(&tag), &extra, body.as_deref());
        if code >= 300 {
            self.drop_leg(leg_id);
        }
    }
}

/// Where to send a request for a registered contact. A connection-oriented contact is
/// reached over the connection its REGISTER came on while that is open (the device
/// may be behind NAT), else by connecting to the Contact address. A UDP contact is
/// reached at its Contact address (falling back to the REGISTER's source).
fn contact_peer(
    contact: &str,
    received: Option<Peer>,
    is_connected: impl Fn(std::net::SocketAddr) -> bool,
) -> Option<Peer> {
    let host: Option<std::net::IpAddr> = h::uri_host(contact).parse().ok();
    let contact_addr =
        host.map(|ip| std::net::SocketAddr::new(ip, h::uri_port(contact).unwrap_or(5060)));
    let wants_tcp = h::uri_param(contact, "transport")
        .is_some_and(|t| t.eq_ignore_ascii_case("tcp"))
        || received.is_some_and(|r| r.proto == Proto::Tcp);
    if wants_tcp {
        if let Some(r) = received.filter(|r| r.proto == Proto::Tcp && is_connected(r.addr)) {
            return Some(r);
        }
        return contact_addr.map(Peer::tcp).or(received);
    }
    contact_addr.map(Peer::udp).or(received)
}

/// The ACK of a non-2xx final response: same Request-URI, top Via and Route set as the
/// INVITE it answers (RFC 3261 §17.1.1.3), the initial one or a re-INVITE.
fn non2xx_ack(leg: &Leg, purpose: Purpose, resp: &Response, cseq: u32) -> Bytes {
    let to = h::first(&resp.headers, "To").unwrap_or(&leg.remote_party);
    let (uri, via, routes) = match purpose {
        Purpose::ReInvite => (&leg.remote_target, &leg.reinvite_via, &leg.route_set[..]),
        _ => (&leg.request_uri, &leg.invite_via, &[][..]),
    };
    Bytes::from(build::request(&RequestSpec {
        method: "ACK",
        uri,
        via,
        from: &leg.local_value(),
        to,
        call_id: &leg.call_id,
        cseq,
        max_forwards: 70,
        contact: None,
        routes,
        extra: &[],
        body: None,
    }))
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

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

/// Reads datagrams forever (errors such as ICMP port unreachable are skipped).
fn datagrams(sock: tokio::net::UdpSocket) -> impl futures::Stream<Item = Datagram> {
    futures::stream::unfold((sock, vec![0u8; 65_536]), |(sock, mut buf)| async move {
        loop {
            match sock.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    let d = Datagram {
                        bytes: Bytes::copy_from_slice(&buf[..n]),
                        from,
                    };
                    return Some((d, (sock, buf)));
                }
                Err(e) => debug!(error = %e, "udp recv error"),
            }
        }
    })
}

impl StreamHandler<Datagram> for Shard {
    fn handle(&mut self, d: Datagram, ctx: &mut Self::Context) {
        let peer = Peer::udp(d.from);
        let Some(msg) = self.ctx.transports.accept_bytes(&d.bytes, peer) else {
            return;
        };
        let call_id = match &msg {
            SipMessage::Request(r) => h::first(&r.headers, "Call-ID"),
            SipMessage::Response(r) => h::first(&r.headers, "Call-ID"),
        }
        .unwrap_or("");
        let owner = shard_of(call_id, self.ctx.settings.shards);
        if owner == self.idx {
            self.inbound(msg, peer, ctx);
        } else if let Some(addr) = self.ctx.shards.get().and_then(|s| s.get(owner)) {
            if let Err(e) = addr.try_send(Inbound { msg, peer }) {
                warn!(shard = owner, %peer, error = %e, "shard mailbox full; message dropped");
            }
        }
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // The socket stream never ends by itself; if it does, keep serving TCP.
        warn!(shard = self.idx, "udp receive stream ended");
    }
}

impl Handler<Inbound> for Shard {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Self::Context) {
        self.inbound(msg.msg, msg.peer, ctx);
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
        CallActor::new(setup, self.ctx.platform.clone()).start();
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

impl Handler<LegCommand> for Shard {
    type Result = ();

    fn handle(&mut self, cmd: LegCommand, _: &mut Self::Context) {
        match cmd {
            LegCommand::Dial(d) => self.dial(*d),

            LegCommand::Progress { leg, code, body } => self.answer_incoming(leg, code, body),
            LegCommand::Answer { leg, body } => self.answer_incoming(leg, 200, body),
            LegCommand::Reject { leg, code } => self.answer_incoming(leg, code, None),
            LegCommand::Cancel { leg } => {
                let Some(l) = self.legs.get_mut(&leg) else {
                    return;
                };
                if l.answered {
                    return;
                }
                if l.provisional_seen {
                    self.send_cancel(leg);
                } else {
                    // RFC 3261 §9.1: CANCEL only once a provisional response has arrived.
                    l.cancel_pending = true;
                }
            }
            LegCommand::Hangup { leg } => self.send_bye(leg),
            LegCommand::Ack { leg, body } => self.send_ack(leg, body),
            LegCommand::ReOffer { leg, body } => {
                self.send_in_dialog(leg, "INVITE", &[], body.as_deref(), Purpose::ReInvite)
            }
            LegCommand::RemoteAnswer { leg } => self.send_talk(leg),
            LegCommand::HandOver { leg, events } => self.hand_over(leg, events),
            LegCommand::Redirect { leg, contact } => self.redirect_incoming(leg, &contact),
            LegCommand::ReAnswer { leg, code, body } => {
                let Some(l) = self.legs.get_mut(&leg) else {
                    return;
                };
                let Some(key) = l.reinvite_in.take() else {
                    return;
                };
                let tag = l.local_tag.clone();
                let contact = self.ctx.contact(l.peer.proto);
                if (200..300).contains(&code) {
                    l.awaiting_ack = Some(key.clone());
                }
                let extra: Vec<(&str, &str)> = if code < 300 {
                    vec![("Contact", contact.as_str())]
                } else {
                    vec![]
                };
                self.respond(&key, code, Some(&tag), &extra, body.as_deref());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_peer_prefers_the_live_registration_connection() {
        let reg: Peer = "tcp:127.0.0.1:40000".parse().unwrap();
        let c = "sip:1002@127.0.0.1:5070;transport=tcp";
        assert_eq!(contact_peer(c, Some(reg), |_| true), Some(reg));
        assert_eq!(
            contact_peer(c, Some(reg), |_| false),
            Some("tcp:127.0.0.1:5070".parse().unwrap())
        );
        let udp: Peer = "udp:127.0.0.9:1234".parse().unwrap();
        assert_eq!(
            contact_peer("sip:1002@127.0.0.1:5070", Some(udp), |_| false),
            Some("udp:127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(
            contact_peer("sip:1002@phone.example", Some(udp), |_| false),
            Some(udp)
        );
        assert_eq!(
            contact_peer("sip:1002@phone.example", None, |_| false),
            None
        );
    }

    #[test]
    fn shard_of_our_call_ids_is_their_prefix() {
        assert_eq!(shard_of("tsps1.abcdef", 2), 1);
        assert_eq!(shard_of("tsps3.abcdef", 2), 1);
        let a = shard_of("random-call-id@host", 4);
        assert_eq!(a, shard_of("random-call-id@host", 4));
        assert!(a < 4);
    }
}
