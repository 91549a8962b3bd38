//! The push hub: turns the bus's events into per-user event streams for browser
//! sessions (WebSocket, SSE) and CTI clients.
//!
//! Each watched user has a stream: a sequence number, a short replay ring of the
//! latest messages, and a bounded broadcast channel to its live sessions. A message is
//! serialized once and shared by every session of the user. A client that reconnects
//! with the `resume` token of the last message it saw gets what it missed from the ring,
//! or a full snapshot when the ring no longer reaches back that far (or the node
//! restarted: the token names the hub's epoch). A session that falls behind its bounded
//! buffer is not waited for: it skips to a fresh snapshot (counted in metrics), so a
//! slow browser never slows the platform.
//!
//! See `docs/events.md` for the message model.

pub mod source;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tsps_actors::events::{DeviceEvent, Event, EventBus, StatusEvent};
use tsps_actors::lines::{LineBook, LineUpdate};
use tsps_actors::ports::{BoxFuture, Clock};
use tsps_actors::{DeviceId, TenantId, UserId};

pub use source::PlatformSource;

/// Version of the message model (bumped on incompatible changes).
pub const MODEL_VERSION: u32 = 1;

/// A serialized message and its sequence number in its user's stream.
#[derive(Clone, Debug)]
pub struct Msg {
    pub seq: u64,
    pub json: Arc<str>,
    /// Not for the client: tells its session to fetch a fresh snapshot.
    pub resync: bool,
}

/// Where a snapshot's devices and status come from (the user actor and directory).
pub trait UserStateSource: Send + Sync + 'static {
    /// None when the user does not exist in that tenant.
    fn user_state(&self, tenant: TenantId, user: UserId) -> BoxFuture<Option<UserState>>;
    fn device_name(&self, device: DeviceId) -> Option<String>;
    /// The device answers a ringing call when told to (remote answer).
    fn remote_answer(&self, _device: DeviceId) -> bool {
        false
    }
    /// The user of the tenant who is `user`'s attendant (per the user's profile).
    fn attendant_of(&self, _tenant: TenantId, _user: UserId) -> BoxFuture<Option<UserId>> {
        Box::pin(async { None })
    }
    /// Whether `watcher` may watch `watched`: the tenant's subscriber table
    /// (`tsps_actors::presence::may_watch`, the decision SIP SUBSCRIBE uses too).
    fn may_watch(&self, _tenant: TenantId, _watcher: UserId, _watched: UserId) -> bool {
        true
    }
}

/// How many colleagues one user may watch.
pub const MAX_WATCHED: usize = 500;

/// A colleague a user watches: their status, and, for the colleague's attendant, the
/// colleague's incoming lines.
#[derive(Clone, Debug, Serialize)]
pub struct WatchedView {
    pub user_id: UserId,
    pub presence: tsps_actors::feature::Presence,
    pub hook: tsps_actors::user::UserStatus,
    /// A phone of the user is registered.
    pub registered: bool,
    /// Do not disturb is on.
    pub dnd: bool,
    /// The watcher is this user's attendant: it sees the user's incoming calls.
    pub attendant: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<tsps_actors::lines::Line>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WatchError {
    #[error("users[{0}]: no such user in this tenant")]
    UnknownUser(usize),
    #[error("users: at most {MAX_WATCHED} users may be watched")]
    TooMany,
    #[error("no such user in this tenant")]
    NoSuchWatcher,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Watcher {
    user: UserId,
    /// The watcher is the watched user's attendant.
    lines: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct UserState {
    pub devices: Vec<DeviceView>,
    pub status: StatusView,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceView {
    pub device_id: DeviceId,
    pub name: String,
    pub registered: bool,
    pub contacts: usize,
    /// "Answer" from the portal makes it pick up by itself; other phones can only be
    /// made to ring alone (the user picks up).
    pub remote_answer: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusView {
    pub presence: tsps_actors::feature::Presence,
    pub hook: tsps_actors::user::UserStatus,
    /// A phone of the user is registered.
    pub registered: bool,
    /// Do not disturb is on.
    pub dnd: bool,
}

#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Messages kept per user for replay after a reconnect.
    pub replay: usize,
    /// Messages a session may fall behind before it is resynced with a snapshot.
    pub buffer: usize,
    /// A stream with no session for this long is dropped (its user resyncs later).
    pub idle_stream: Duration,
    /// Messages older than this leave the replay ring (a client away for longer gets a
    /// snapshot): a busy user's ring would otherwise hold its JSON for as long as the
    /// stream lives.
    pub replay_age: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            // A reconnect after a few seconds away finds its gap here; each kept
            // message costs its JSON (a few hundred bytes) per watched user.
            replay: 64,
            buffer: 32,
            idle_stream: Duration::from_secs(600),
            replay_age: Duration::from_secs(120),
        }
    }
}

/// Where a reconnecting client left off: `<epoch>:<seq>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    pub epoch: u64,
    pub seq: u64,
}

impl Resume {
    pub fn parse(s: &str) -> Option<Resume> {
        let (e, q) = s.split_once(':')?;
        Some(Resume {
            epoch: u64::from_str_radix(e, 16).ok()?,
            seq: q.parse().ok()?,
        })
    }
}

struct Stream {
    tenant: TenantId,
    seq: u64,
    /// The latest messages, with when each was pushed (on the platform's clock).
    ring: VecDeque<(DateTime<Utc>, Msg)>,
    tx: broadcast::Sender<Msg>,
    last_seen: DateTime<Utc>,
}

struct State {
    book: LineBook,
    streams: HashMap<UserId, Stream>,
    /// Watched user → who watches them.
    watchers: HashMap<UserId, Vec<Watcher>>,
    /// Watcher → whom they watch (to replace a watch list).
    watching: HashMap<UserId, Vec<UserId>>,
}

/// Counters of the hub, exported as Prometheus metrics.
#[derive(Default)]
pub struct HubStats {
    pub sessions: std::sync::atomic::AtomicI64,
    pub messages: std::sync::atomic::AtomicU64,
    pub resyncs_lagged: std::sync::atomic::AtomicU64,
    pub resyncs_stale: std::sync::atomic::AtomicU64,
    pub replays: std::sync::atomic::AtomicU64,
    pub bus_lagged: std::sync::atomic::AtomicU64,
}

pub struct Hub {
    state: Mutex<State>,
    epoch: u64,
    config: HubConfig,
    source: Arc<dyn UserStateSource>,
    /// The platform's clock: replay ages and idle streams are measured on it.
    clock: Arc<dyn Clock>,
    pub stats: HubStats,
}

/// What a new session starts with.
enum Start {
    Snapshot,
    Replay(Vec<Msg>),
}

impl Hub {
    pub fn new(
        source: Arc<dyn UserStateSource>,
        config: HubConfig,
        clock: Arc<dyn Clock>,
    ) -> Arc<Hub> {
        Arc::new(Hub {
            state: Mutex::new(State {
                book: LineBook::new(),
                streams: HashMap::new(),
                watchers: HashMap::new(),
                watching: HashMap::new(),
            }),
            epoch: rand::random::<u64>() >> 1,
            config,
            source,
            clock,
            stats: HubStats::default(),
        })
    }

    /// A hub that knows no users (an API without a running platform, in tests).
    pub fn detached() -> Arc<Hub> {
        struct Nobody;
        impl UserStateSource for Nobody {
            fn user_state(&self, _: TenantId, _: UserId) -> BoxFuture<Option<UserState>> {
                Box::pin(async { None })
            }
            fn device_name(&self, _: DeviceId) -> Option<String> {
                None
            }
        }
        Hub::new(
            Arc::new(Nobody),
            HubConfig::default(),
            Arc::new(tsps_actors::ports::SystemClock),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn resume_token(&self, seq: u64) -> String {
        format!("{:x}:{seq}", self.epoch)
    }

    /// Follows the bus until `cancel`. Must be the only consumer feeding this hub.
    pub fn run(self: &Arc<Self>, bus: &EventBus, cancel: CancellationToken) {
        let mut rx = bus.subscribe();
        let hub = self.clone();
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = sweep.tick() => hub.sweep(),
                    ev = rx.recv() => match ev {
                        Ok(ev) => hub.handle(&ev),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            // Lines may now be wrong: every session gets a snapshot.
                            tracing::warn!(missed = n, "push hub fell behind the event bus");
                            hub.stats.bus_lagged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            hub.resync_all();
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
    }

    /// Applies one bus event: updates lines and pushes to the streams concerned.
    pub fn handle(&self, ev: &Event) {
        let mut st = self.lock();
        match ev {
            Event::Call(ce) => {
                let updates = st.book.apply(ce);
                for u in updates {
                    let (kind, data, tenant, user) = match &u {
                        LineUpdate::Line { tenant, user, line } => {
                            ("line", json!(line), *tenant, *user)
                        }
                        LineUpdate::Ended {
                            tenant,
                            user,
                            call,
                            outcome,
                        } => (
                            "line_ended",
                            json!({ "call_id": call, "outcome": outcome }),
                            *tenant,
                            *user,
                        ),
                    };
                    self.push(&mut st, tenant, user, kind, ce.at, data.clone());
                    // The user's attendant follows the user's incoming calls.
                    let incoming = match &u {
                        LineUpdate::Line { line, .. } => {
                            line.direction == tsps_actors::lines::LineDirection::In
                        }
                        LineUpdate::Ended { .. } => true,
                    };
                    let attendants: Vec<UserId> = st
                        .watchers
                        .get(&user)
                        .into_iter()
                        .flatten()
                        .filter(|w| w.lines && incoming)
                        .map(|w| w.user)
                        .collect();
                    for a in attendants {
                        let data = json!({ "user_id": user, "line": data });
                        let kind = match kind {
                            "line" => "watched_line",
                            _ => "watched_line_ended",
                        };
                        self.push(&mut st, tenant, a, kind, ce.at, data);
                    }
                }
            }
            Event::Device(DeviceEvent {
                tenant,
                user,
                device,
                contacts,
                at,
            }) => {
                if !st.streams.contains_key(user) {
                    return;
                }
                let name = self.source.device_name(*device).unwrap_or_default();
                let data = json!(DeviceView {
                    device_id: *device,
                    name,
                    registered: *contacts > 0,
                    contacts: *contacts,
                    remote_answer: self.source.remote_answer(*device),
                });
                self.push(&mut st, *tenant, *user, "device", *at, data);
            }
            Event::Status(StatusEvent {
                tenant,
                user,
                presence,
                hook,
                registered,
                dnd,
                at,
            }) => {
                let view = StatusView {
                    presence: *presence,
                    hook: *hook,
                    registered: *registered,
                    dnd: *dnd,
                };
                let data = json!(view);
                self.push(&mut st, *tenant, *user, "status", *at, data);
                let watchers: Vec<UserId> = st
                    .watchers
                    .get(user)
                    .into_iter()
                    .flatten()
                    .map(|w| w.user)
                    .collect();
                for w in watchers {
                    let data = json!({
                        "user_id": user,
                        "presence": presence,
                        "hook": hook,
                        "registered": registered,
                        "dnd": dnd,
                    });
                    self.push(&mut st, *tenant, w, "presence", *at, data);
                }
            }
            // An instant message: to the recipient, and to the sender's other sessions.
            Event::Message(m) => {
                let data = message_view(m);
                self.push(&mut st, m.tenant, m.to, "message", m.at, data.clone());
                if m.from != m.to {
                    self.push(&mut st, m.tenant, m.from, "message", m.at, data);
                }
            }
        }
    }

    /// Appends a message to a watched user's stream (users nobody watches get none:
    /// their first session starts from a snapshot).
    fn push(
        &self,
        st: &mut State,
        tenant: TenantId,
        user: UserId,
        kind: &str,
        at: DateTime<Utc>,
        data: serde_json::Value,
    ) {
        let Some(stream) = st.streams.get_mut(&user) else {
            return;
        };
        if stream.tenant != tenant {
            return; // tenants are walls, even for a forged event
        }
        stream.seq += 1;
        let seq = stream.seq;
        let json: Arc<str> = envelope(seq, &self.resume_token(seq), kind, at, data).into();
        let msg = Msg {
            seq,
            json,
            resync: kind == "resync",
        };
        if stream.ring.len() == self.config.replay {
            stream.ring.pop_front();
        }
        let now = self.clock.now();
        stream.ring.push_back((now, msg.clone()));
        prune(&mut stream.ring, now, self.config.replay_age);
        // No receiver is fine: the ring keeps it for a reconnect.
        let _ = stream.tx.send(msg);
        self.stats
            .messages
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Starts a session for `user` of `tenant`, resuming after `since` when possible.
    /// None when the user is not in the tenant.
    pub async fn open(
        self: &Arc<Self>,
        tenant: TenantId,
        user: UserId,
        since: Option<Resume>,
    ) -> Option<Session> {
        // Existence check first, so no stream is created for a stranger.
        self.source.user_state(tenant, user).await?;
        let (rx, start) = {
            let mut st = self.lock();
            let stream = self.stream_of(&mut st, tenant, user)?;
            let now = self.clock.now();
            stream.last_seen = now;
            prune(&mut stream.ring, now, self.config.replay_age);
            let rx = stream.tx.subscribe();
            let start = match since {
                Some(r) if r.epoch == self.epoch && r.seq <= stream.seq => {
                    let oldest = stream
                        .ring
                        .front()
                        .map(|(_, m)| m.seq)
                        .unwrap_or(stream.seq + 1);
                    if r.seq + 1 >= oldest {
                        Start::Replay(
                            stream
                                .ring
                                .iter()
                                .filter(|(_, m)| m.seq > r.seq)
                                .map(|(_, m)| m.clone())
                                .collect(),
                        )
                    } else {
                        Start::Snapshot
                    }
                }
                _ => Start::Snapshot,
            };
            (rx, start)
        };
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.sessions.fetch_add(1, Relaxed);
        let mut session = Session {
            hub: self.clone(),
            tenant,
            user,
            rx,
            pending: VecDeque::new(),
            last_seq: 0,
            need_snapshot: false,
        };
        match start {
            Start::Replay(msgs) => {
                self.stats.replays.fetch_add(1, Relaxed);
                session.last_seq = since.map(|r| r.seq).unwrap_or(0);
                session.pending.extend(msgs);
            }
            Start::Snapshot => {
                if since.is_some() {
                    self.stats.resyncs_stale.fetch_add(1, Relaxed);
                }
                session.need_snapshot = true;
            }
        }
        Some(session)
    }

    /// The user's stream, created when missing; None if it belongs to another tenant.
    fn stream_of<'s>(
        &self,
        st: &'s mut State,
        tenant: TenantId,
        user: UserId,
    ) -> Option<&'s mut Stream> {
        let buffer = self.config.buffer;
        let stream = st.streams.entry(user).or_insert_with(|| Stream {
            tenant,
            seq: 0,
            ring: VecDeque::new(),
            tx: broadcast::channel(buffer).0,
            last_seen: self.clock.now(),
        });
        (stream.tenant == tenant).then_some(stream)
    }

    /// A snapshot of the user's lines, devices and status, as of the returned seq.
    async fn snapshot(&self, tenant: TenantId, user: UserId) -> Option<Msg> {
        // The seq first: anything after it reaches the client after the snapshot, and
        // applying a device or status change twice is harmless.
        let (seq, lines, watched) = {
            let st = self.lock();
            let seq = st.streams.get(&user).map(|s| s.seq).unwrap_or(0);
            (seq, st.book.lines_of(user), self.watched_lines(&st, user))
        };
        let state = self.source.user_state(tenant, user).await?;
        let watched = self.watched_views(tenant, watched).await;
        let data = json!({
            "lines": lines,
            "devices": state.devices,
            "status": state.status,
            "watched": watched,
        });
        let json = envelope(
            seq,
            &self.resume_token(seq),
            "snapshot",
            self.clock.now(),
            data,
        );
        Some(Msg {
            seq,
            json: json.into(),
            resync: false,
        })
    }

    /// Whom `watcher` watches, with the incoming lines of those it is attendant of.
    fn watched_lines(
        &self,
        st: &State,
        watcher: UserId,
    ) -> Vec<(UserId, Option<Vec<tsps_actors::lines::Line>>)> {
        st.watching
            .get(&watcher)
            .into_iter()
            .flatten()
            .map(|u| {
                let attendant = st
                    .watchers
                    .get(u)
                    .is_some_and(|ws| ws.iter().any(|w| w.user == watcher && w.lines));
                let lines = attendant.then(|| {
                    st.book
                        .lines_of(*u)
                        .into_iter()
                        .filter(|l| l.direction == tsps_actors::lines::LineDirection::In)
                        .collect()
                });
                (*u, lines)
            })
            .collect()
    }

    async fn watched_views(
        &self,
        tenant: TenantId,
        watched: Vec<(UserId, Option<Vec<tsps_actors::lines::Line>>)>,
    ) -> Vec<WatchedView> {
        let states = futures::future::join_all(
            watched
                .iter()
                .map(|(u, _)| self.source.user_state(tenant, *u)),
        )
        .await;
        watched
            .into_iter()
            .zip(states)
            .filter_map(|((user_id, lines), state)| {
                let status = state?.status;
                Some(WatchedView {
                    user_id,
                    presence: status.presence,
                    hook: status.hook,
                    registered: status.registered,
                    dnd: status.dnd,
                    attendant: lines.is_some(),
                    lines,
                })
            })
            .collect()
    }

    /// Sets whom `watcher` watches (replacing the previous list): their status reaches
    /// the watcher's stream as `presence` messages, and, where the watcher is the
    /// user's attendant, the user's incoming lines as `watched_line` messages. Returns
    /// the current state of each; the stream also gets it as a `watched` message.
    /// Users the subscriber table does not let the watcher watch are left out.
    pub async fn watch(
        &self,
        tenant: TenantId,
        watcher: UserId,
        users: Vec<UserId>,
    ) -> Result<Vec<WatchedView>, WatchError> {
        if users.len() > MAX_WATCHED {
            return Err(WatchError::TooMany);
        }
        let mut list: Vec<UserId> = Vec::with_capacity(users.len());
        for u in users {
            if !list.contains(&u) && u != watcher {
                list.push(u);
            }
        }
        let checks = futures::future::join_all(list.iter().map(|u| async move {
            let known = self.source.user_state(tenant, *u).await.is_some();
            let attendant = self.source.attendant_of(tenant, *u).await == Some(watcher);
            (known, attendant)
        }))
        .await;
        if let Some(i) = checks.iter().position(|(known, _)| !known) {
            return Err(WatchError::UnknownUser(i));
        }
        // The subscriber table: whom the watcher may not watch is left out.
        let (list, checks): (Vec<UserId>, Vec<(bool, bool)>) = list
            .into_iter()
            .zip(checks)
            .filter(|(u, _)| self.source.may_watch(tenant, watcher, *u))
            .unzip();
        let watched = {
            let mut st = self.lock();
            // The list lives with the watcher's stream (dropped with it when idle).
            if self.stream_of(&mut st, tenant, watcher).is_none() {
                return Err(WatchError::NoSuchWatcher);
            }
            for old in st.watching.remove(&watcher).unwrap_or_default() {
                if let Some(ws) = st.watchers.get_mut(&old) {
                    ws.retain(|w| w.user != watcher);
                    if ws.is_empty() {
                        st.watchers.remove(&old);
                    }
                }
            }
            for (u, (_, lines)) in list.iter().zip(&checks) {
                st.watchers.entry(*u).or_default().push(Watcher {
                    user: watcher,
                    lines: *lines,
                });
            }
            if !list.is_empty() {
                st.watching.insert(watcher, list);
            }
            self.watched_lines(&st, watcher)
        };
        let views = self.watched_views(tenant, watched).await;
        let mut st = self.lock();
        self.push(
            &mut st,
            tenant,
            watcher,
            "watched",
            self.clock.now(),
            json!(views),
        );
        Ok(views)
    }

    /// After the hub itself missed bus events (or the node missed other nodes'
    /// events: src/cluster calls it): a resync message in every stream makes each
    /// session fetch a fresh snapshot.
    pub fn resync_all(&self) {
        let mut st = self.lock();
        let users: Vec<(UserId, TenantId)> =
            st.streams.iter().map(|(u, s)| (*u, s.tenant)).collect();
        for (user, tenant) in users {
            self.push(&mut st, tenant, user, "resync", self.clock.now(), json!({}));
        }
    }

    /// Drops streams nobody has watched for a while.
    fn sweep(&self) {
        let idle = self.config.idle_stream;
        let mut st = self.lock();
        let (now, age) = (self.clock.now(), self.config.replay_age);
        st.streams.retain(|_, s| {
            prune(&mut s.ring, now, age);
            if s.tx.receiver_count() > 0 {
                s.last_seen = now;
                true
            } else {
                !older_than(s.last_seen, now, idle)
            }
        });
        // A watcher without a stream watches nothing (its next session sets it again).
        let State {
            streams,
            watchers,
            watching,
            ..
        } = &mut *st;
        watching.retain(|w, _| streams.contains_key(w));
        watchers.retain(|_, ws| {
            ws.retain(|w| streams.contains_key(&w.user));
            !ws.is_empty()
        });
    }

    /// Live streams (for tests and metrics).
    pub fn streams(&self) -> usize {
        self.lock().streams.len()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// The `data` of a `message` (docs/events.md).
fn message_view(m: &tsps_actors::presence::message::MessageEvent) -> serde_json::Value {
    let mut v = json!({
        "id": m.id,
        "from": m.from,
        "from_extension": m.from_extension,
        "from_name": m.from_name,
        "to": m.to,
        "to_extension": m.to_extension,
        "text": m.text,
        "at": m.at,
    });
    if let Some(call) = m.call {
        v["call_id"] = json!(call);
    }
    v
}

/// Drops replay messages older than `age`.
fn prune(ring: &mut VecDeque<(DateTime<Utc>, Msg)>, now: DateTime<Utc>, age: Duration) {
    while ring
        .front()
        .is_some_and(|(at, _)| older_than(*at, now, age))
    {
        ring.pop_front();
    }
}

/// `at` is `age` or more before `now` (a clock moved back makes nothing older).
fn older_than(at: DateTime<Utc>, now: DateTime<Utc>, age: Duration) -> bool {
    (now - at).to_std().is_ok_and(|elapsed| elapsed >= age)
}

fn envelope(
    seq: u64,
    resume: &str,
    kind: &str,
    at: DateTime<Utc>,
    data: serde_json::Value,
) -> String {
    json!({
        "v": MODEL_VERSION,
        "seq": seq,
        "resume": resume,
        "type": kind,
        "at": at,
        "data": data,
    })
    .to_string()
}

/// One client's view of a user's stream.
pub struct Session {
    hub: Arc<Hub>,
    tenant: TenantId,
    user: UserId,
    rx: broadcast::Receiver<Msg>,
    pending: VecDeque<Msg>,
    /// The last seq the client has (messages at or below it are skipped).
    last_seq: u64,
    need_snapshot: bool,
}

impl Session {
    /// The resume token of a message of this session.
    pub fn resume_token(&self, seq: u64) -> String {
        self.hub.resume_token(seq)
    }

    /// The next message for the client; None when the user is gone or the hub stopped.
    pub async fn next(&mut self) -> Option<Msg> {
        use std::sync::atomic::Ordering::Relaxed;
        loop {
            if self.need_snapshot {
                self.need_snapshot = false;
                self.pending.clear();
                // Only what comes after the snapshot matters: skip the backlog (it
                // would overflow again while the snapshot is being sent).
                self.rx = self.rx.resubscribe();
                let snap = self.hub.snapshot(self.tenant, self.user).await?;
                self.last_seq = snap.seq;
                return Some(snap);
            }
            let m = match self.pending.pop_front() {
                Some(m) => m,
                None => match self.rx.recv().await {
                    Ok(m) => m,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.hub.stats.resyncs_lagged.fetch_add(1, Relaxed);
                        self.need_snapshot = true;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            if m.seq <= self.last_seq {
                continue; // already in the snapshot or replay the client has
            }
            if m.resync {
                self.need_snapshot = true;
                continue;
            }
            self.last_seq = m.seq;
            return Some(m);
        }
    }
}
impl Drop for Session {
    fn drop(&mut self) {
        self.hub
            .stats
            .sessions
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsps_actors::events::{CallEvent, CallEventKind};
    use tsps_actors::model::{CallDirection, CallOutcome};
    use tsps_actors::CallId;

    const T: TenantId = TenantId::for_test(1);
    const OTHER: TenantId = TenantId::for_test(2);
    const A: UserId = UserId::for_test(1);
    const B: UserId = UserId::for_test(2);
    const C: UserId = UserId::for_test(3);

    struct Fake;

    impl UserStateSource for Fake {
        fn attendant_of(&self, _: TenantId, user: UserId) -> BoxFuture<Option<UserId>> {
            // B answers for A.
            Box::pin(async move { (user == A).then_some(B) })
        }
        fn user_state(&self, tenant: TenantId, user: UserId) -> BoxFuture<Option<UserState>> {
            let known = tenant == T && (user == A || user == B || user == C);
            Box::pin(async move {
                known.then(|| UserState {
                    devices: vec![],
                    status: StatusView {
                        presence: Default::default(),
                        hook: tsps_actors::user::UserStatus::Idle,
                        registered: true,
                        dnd: false,
                    },
                })
            })
        }
        fn device_name(&self, _: DeviceId) -> Option<String> {
            None
        }
        fn may_watch(&self, _: TenantId, watcher: UserId, watched: UserId) -> bool {
            // The subscriber table: B lets only A watch them.
            watched != B || watcher == A
        }
    }

    fn hub(buffer: usize, replay: usize) -> Arc<Hub> {
        Hub::new(
            Arc::new(Fake),
            HubConfig {
                replay,
                buffer,
                ..Default::default()
            },
            Arc::new(tsps_actors::ports::SystemClock),
        )
    }

    /// Starts a call from A to B (A dialing, B ringing): one message for each.
    fn call(hub: &Hub, n: u128) -> CallId {
        let call = CallId::for_test(n);
        let ev = |kind| {
            Event::Call(CallEvent {
                call,
                tenant: T,
                at: Utc::now(),
                kind,
            })
        };
        hub.handle(&ev(CallEventKind::Started {
            direction: CallDirection::Internal,
            caller: "1001".into(),
            callee: "1002".into(),
            caller_user: Some(A),
            callee_user: Some(B),
            caller_leg: Some(tsps_actors::LegId::for_test(n)),
        }));
        call
    }

    fn end(hub: &Hub, call: CallId) {
        hub.handle(&Event::Call(CallEvent {
            call,
            tenant: T,
            at: Utc::now(),
            kind: CallEventKind::Ended {
                outcome: CallOutcome::Cancelled,
                hangup_by: None,
            },
        }));
    }

    fn parse(m: &str) -> serde_json::Value {
        serde_json::from_str(m).unwrap()
    }

    async fn next(s: &mut Session) -> serde_json::Value {
        let m = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("a message")
            .expect("open");
        parse(&m.json)
    }

    #[tokio::test]
    async fn session_starts_with_a_snapshot_then_follows_in_order() {
        let hub = hub(64, 128);
        let c1 = call(&hub, 1); // before anyone watches: only in the snapshot
        let mut s = hub.open(T, A, None).await.unwrap();
        let snap = next(&mut s).await;
        assert_eq!(snap["type"], "snapshot");
        assert_eq!(snap["v"], 1);
        assert_eq!(snap["data"]["lines"][0]["state"], "dialing");
        assert_eq!(snap["data"]["lines"][0]["call_id"], json!(c1));
        end(&hub, c1);
        let c2 = call(&hub, 2);
        let m1 = next(&mut s).await;
        let m2 = next(&mut s).await;
        assert_eq!(
            (m1["type"].as_str(), m1["seq"].as_u64()),
            (Some("line_ended"), Some(1))
        );
        assert_eq!(
            (m2["type"].as_str(), m2["seq"].as_u64()),
            (Some("line"), Some(2))
        );
        assert_eq!(m2["data"]["call_id"], json!(c2));
        assert_eq!(m2["data"]["allowed"], json!(["release"]));
        assert_eq!(m2["resume"], format!("{:x}:2", hub.epoch()));
    }

    #[tokio::test]
    async fn reconnect_replays_what_was_missed() {
        let hub = hub(64, 128);
        let mut s = hub.open(T, A, None).await.unwrap();
        let _snapshot = next(&mut s).await;
        let c = call(&hub, 1);
        let seen = next(&mut s).await;
        drop(s);
        end(&hub, c); // missed while disconnected
        call(&hub, 2);
        let since = Resume::parse(seen["resume"].as_str().unwrap());
        let mut s = hub.open(T, A, since).await.unwrap();
        let m = next(&mut s).await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("line_ended"), Some(2))
        );
        let m = next(&mut s).await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("line"), Some(3))
        );
        assert_eq!(
            hub.stats.replays.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn too_old_or_foreign_resume_gets_a_snapshot() {
        let hub = hub(64, 2);
        let mut s = hub.open(T, A, None).await.unwrap();
        next(&mut s).await;
        drop(s);
        for n in 0..3 {
            let c = call(&hub, n);
            end(&hub, c);
        }
        // seq 1 fell out of a two-message ring.
        let old = Resume {
            epoch: hub.epoch(),
            seq: 1,
        };
        let mut s = hub.open(T, A, Some(old)).await.unwrap();
        let m = next(&mut s).await;
        assert_eq!(m["type"], "snapshot");
        assert_eq!(m["seq"], 6);
        assert_eq!(m["data"]["lines"], json!([]));
        let restarted = Resume {
            epoch: hub.epoch() + 1,
            seq: 6,
        };
        let mut s = hub.open(T, A, Some(restarted)).await.unwrap();
        assert_eq!(next(&mut s).await["type"], "snapshot");
        let ahead = Resume {
            epoch: hub.epoch(),
            seq: 99,
        };
        let mut s = hub.open(T, A, Some(ahead)).await.unwrap();
        assert_eq!(next(&mut s).await["type"], "snapshot");
        assert_eq!(
            hub.stats
                .resyncs_stale
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }

    #[tokio::test]
    async fn a_session_that_falls_behind_is_resynced_not_waited_for() {
        let hub = hub(4, 128);
        let mut slow = hub.open(T, A, None).await.unwrap();
        next(&mut slow).await;
        let mut calls = Vec::new();
        for n in 0..10 {
            calls.push(call(&hub, n)); // never blocks on the slow session
        }
        let m = next(&mut slow).await;
        assert_eq!(m["type"], "snapshot");
        assert_eq!(m["seq"], 10);
        assert_eq!(m["data"]["lines"].as_array().unwrap().len(), 10);
        assert_eq!(
            hub.stats
                .resyncs_lagged
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        end(&hub, calls[0]);
        let m = next(&mut slow).await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("line_ended"), Some(11))
        );
    }

    #[tokio::test]
    async fn bus_loss_resyncs_every_session() {
        let hub = hub(64, 128);
        let mut s = hub.open(T, A, None).await.unwrap();
        next(&mut s).await;
        call(&hub, 1);
        hub.resync_all();
        let m = next(&mut s).await;
        assert_eq!(m["type"], "line");
        let m = next(&mut s).await;
        assert_eq!(
            m["type"], "snapshot",
            "the resync marker itself is never sent"
        );
    }

    #[tokio::test]
    async fn strangers_and_other_tenants_get_no_stream() {
        let hub = hub(64, 128);
        assert!(hub.open(OTHER, A, None).await.is_none());
        assert!(hub.open(T, UserId::for_test(9), None).await.is_none());
        call(&hub, 1);
        assert_eq!(hub.streams(), 0, "unwatched users cost no stream");
        // A forged event naming A under another tenant does not reach A's stream.
        let mut s = hub.open(T, A, None).await.unwrap();
        next(&mut s).await;
        hub.handle(&Event::Status(StatusEvent {
            tenant: OTHER,
            user: A,
            presence: Default::default(),
            hook: tsps_actors::user::UserStatus::Busy,
            registered: true,
            dnd: false,
            at: Utc::now(),
        }));
        hub.handle(&Event::Status(StatusEvent {
            tenant: T,
            user: A,
            presence: Default::default(),
            hook: tsps_actors::user::UserStatus::Ringing,
            registered: true,
            dnd: false,
            at: Utc::now(),
        }));
        let m = next(&mut s).await;
        assert_eq!(m["data"]["hook"], "ringing");
        assert_eq!(m["seq"], 1);
    }

    #[tokio::test]
    async fn watchers_get_status_and_the_attendant_gets_incoming_lines() {
        let hub = hub(64, 128);
        let mut b = hub.open(T, B, None).await.unwrap();
        assert_eq!(next(&mut b).await["data"]["watched"], json!([]));
        let mut c = hub.open(T, C, None).await.unwrap();
        next(&mut c).await;
        let views = hub.watch(T, B, vec![A, C]).await.unwrap();
        assert_eq!(views.len(), 2);
        assert!(
            views[0].attendant && !views[1].attendant,
            "B is A's attendant only"
        );
        let m = next(&mut b).await;
        assert_eq!(m["type"], "watched");
        assert_eq!(m["data"][0]["lines"], json!([]));
        hub.watch(T, C, vec![A]).await.unwrap();
        assert_eq!(next(&mut c).await["type"], "watched");
        assert_eq!(
            hub.watch(T, C, vec![A, UserId::for_test(9)]).await.err(),
            Some(WatchError::UnknownUser(1))
        );
        assert!(hub.watch(T, C, vec![B; MAX_WATCHED + 1]).await.is_err());

        // A call for A: B (attendant) sees the ringing line, C only A's status.
        let call = CallId::for_test(5);
        let ev = |kind| {
            Event::Call(CallEvent {
                call,
                tenant: T,
                at: Utc::now(),
                kind,
            })
        };
        hub.handle(&ev(CallEventKind::Started {
            direction: CallDirection::Inbound,
            caller: "+41790000001".into(),
            callee: "1001".into(),
            caller_user: None,
            callee_user: Some(A),
            caller_leg: Some(tsps_actors::LegId::for_test(1)),
        }));
        hub.handle(&ev(CallEventKind::Decided {
            user: A,
            contact: None,
            reasons: vec!["ring devices".into()],
            attendant: true,
        }));
        hub.handle(&Event::Status(StatusEvent {
            tenant: T,
            user: A,
            presence: Default::default(),
            hook: tsps_actors::user::UserStatus::Ringing,
            registered: true,
            dnd: false,
            at: Utc::now(),
        }));
        let m = next(&mut b).await;
        assert_eq!(m["type"], "watched_line");
        assert_eq!(m["data"]["user_id"], json!(A));
        assert_eq!(m["data"]["line"]["state"], "ringing");
        assert_eq!(m["data"]["line"]["peer"]["number"], "+41790000001");
        let m = next(&mut b).await;
        assert_eq!(
            (m["type"].as_str(), m["data"]["hook"].as_str()),
            (Some("presence"), Some("ringing"))
        );
        let m = next(&mut c).await;
        assert_eq!(m["type"], "presence", "no lines for a mere colleague: {m}");
        assert_eq!(m["data"]["user_id"], json!(A));

        // A reconnecting attendant finds the ringing line in its snapshot.
        drop(b);
        let mut b = hub.open(T, B, None).await.unwrap();
        let snap = next(&mut b).await;
        let watched = &snap["data"]["watched"];
        assert_eq!(watched[0]["user_id"], json!(A));
        assert_eq!(watched[0]["lines"][0]["state"], "ringing");
        assert_eq!(watched[1]["lines"], json!(null));
        end(&hub, call);
        assert_eq!(next(&mut b).await["type"], "watched_line_ended");
    }

    #[tokio::test]
    async fn a_watch_the_subscriber_table_refuses_is_left_out() {
        let hub = hub(64, 128);
        let mut c = hub.open(T, C, None).await.unwrap();
        next(&mut c).await;
        // C may watch A, not B: B is left out, the rest is watched.
        let views = hub.watch(T, C, vec![B, A]).await.unwrap();
        assert_eq!(views.iter().map(|v| v.user_id).collect::<Vec<_>>(), [A]);
        let m = next(&mut c).await;
        assert_eq!(m["type"], "watched");
        assert_eq!(m["data"].as_array().unwrap().len(), 1);
        // B's status changes reach A (allowed), never C.
        let mut a = hub.open(T, A, None).await.unwrap();
        next(&mut a).await;
        hub.watch(T, A, vec![B]).await.unwrap();
        assert_eq!(next(&mut a).await["type"], "watched");
        hub.handle(&Event::Status(StatusEvent {
            tenant: T,
            user: B,
            presence: Default::default(),
            hook: tsps_actors::user::UserStatus::Busy,
            registered: true,
            dnd: false,
            at: Utc::now(),
        }));
        assert_eq!(next(&mut a).await["type"], "presence");
        hub.handle(&Event::Status(StatusEvent {
            tenant: T,
            user: A,
            presence: Default::default(),
            hook: tsps_actors::user::UserStatus::Busy,
            registered: true,
            dnd: false,
            at: Utc::now(),
        }));
        let m = next(&mut c).await;
        assert_eq!(
            m["data"]["user_id"],
            json!(A),
            "C hears of A only, never of B: {m}"
        );
    }

    #[tokio::test]
    async fn a_message_reaches_the_recipient_and_the_senders_sessions_only() {
        use tsps_actors::presence::message::{MessageEvent, MessageId};
        let hub = hub(64, 128);
        let mut a = hub.open(T, A, None).await.unwrap();
        let mut b = hub.open(T, B, None).await.unwrap();
        let mut c = hub.open(T, C, None).await.unwrap();
        for s in [&mut a, &mut b, &mut c] {
            next(s).await;
        }
        let msg = |tenant, text: &str| MessageEvent {
            id: MessageId::for_test(1),
            tenant,
            from: A,
            from_extension: "1001".into(),
            from_name: "Alice".into(),
            to: B,
            to_extension: "1002".into(),
            text: text.into(),
            call: Some(CallId::for_test(4)),
            at: Utc::now(),
            local: true,
        };
        // A forged message naming B under another tenant reaches nobody.
        hub.handle(&Event::Message(msg(OTHER, "forged")));
        hub.handle(&Event::Message(msg(T, "Are you free?")));
        let m = next(&mut b).await;
        assert_eq!(m["type"], "message");
        assert_eq!(m["seq"], 1, "the forged one took no seq: {m}");
        let d = &m["data"];
        assert_eq!(
            (
                d["from"].clone(),
                d["from_name"].as_str(),
                d["text"].as_str()
            ),
            (json!(A), Some("Alice"), Some("Are you free?"))
        );
        assert_eq!(d["call_id"], json!(CallId::for_test(4)));
        assert_eq!(d["id"], json!(MessageId::for_test(1)));
        // The sender's stream has it too (its other sessions show the conversation).
        let m = next(&mut a).await;
        assert_eq!(
            (m["type"].as_str(), m["data"]["to"].clone()),
            (Some("message"), json!(B))
        );
        // It replays like any event.
        let since = Resume::parse(m["resume"].as_str().unwrap()).map(|r| Resume {
            seq: r.seq - 1,
            ..r
        });
        let mut again = hub.open(T, A, since).await.unwrap();
        assert_eq!(next(&mut again).await["data"]["text"], "Are you free?");
        // C is neither sender nor recipient.
        hub.handle(&Event::Status(StatusEvent {
            tenant: T,
            user: C,
            presence: Default::default(),
            hook: tsps_actors::user::UserStatus::Busy,
            registered: true,
            dnd: false,
            at: Utc::now(),
        }));
        assert_eq!(next(&mut c).await["type"], "status");
    }

    #[tokio::test]
    async fn replay_keeps_only_recent_messages() {
        // The platform's clock, moved instead of waited for.
        let clock = Arc::new(crate::features::AdjustableClock::default());
        let hub = Hub::new(
            Arc::new(Fake),
            HubConfig {
                replay_age: Duration::from_secs(60),
                ..Default::default()
            },
            clock.clone(),
        );
        let mut s = hub.open(T, A, None).await.unwrap();
        next(&mut s).await;
        call(&hub, 1);
        let seen = next(&mut s).await;
        drop(s);
        call(&hub, 2);
        let since = Resume::parse(seen["resume"].as_str().unwrap());
        // Within the age: what was missed is replayed.
        let mut s = hub.open(T, A, since).await.unwrap();
        assert_eq!(next(&mut s).await["type"], "line");
        drop(s);
        // A minute later nothing is kept to replay: the client gets a snapshot.
        clock.set(Utc::now() + chrono::Duration::seconds(61));
        let mut s = hub.open(T, A, since).await.unwrap();
        let m = next(&mut s).await;
        assert_eq!(m["type"], "snapshot");
        assert_eq!(m["data"]["lines"].as_array().unwrap().len(), 2);
    }
}
