//! One conference bridge's I/O: a UDP socket per participant with its receive task, and
//! one mixer task ticking every 20 ms. The [`Bridge`] methods (called from a call actor)
//! bind sockets, spawn tasks on the I/O runtime and take the shared state's lock for a
//! few field writes: they never wait.
//!
//! One receive task per participant rather than one task selecting over every socket:
//! participants come and go, and a task that owns its socket stops with its own
//! cancellation token, so removing one never disturbs the others.

use super::g711::Codec;
use super::mixer::{Flow, Frame, Mixer, FRAME};
use super::rtp::{RtpError, RtpPacket, RtpSender};
use super::sdp::{self, Origin, PeerMedia, SdpError};
use super::Engine;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use tsps_actors::ids::{CallId, LegId, TenantId};
use tsps_actors::ports::{Body, Bridge, MediaError};

/// The mixer's period: one 160-sample frame.
const TICK: Duration = Duration::from_millis(20);
/// Largest datagram read; RTP for G.711 at 20 ms is 172 bytes.
const RECEIVE_BUFFER: usize = 2048;

pub(super) struct ConferenceBridge {
    engine: Arc<Engine>,
    tenant: TenantId,
    call: CallId,
    /// Stops the mixer and every receiver of this bridge (a child of the engine's).
    cancel: CancellationToken,
    shared: Arc<Mutex<Shared>>,
    /// What only the caller's side needs: each participant's port and SDP origin.
    legs: HashMap<LegId, Leg>,
}

struct Leg {
    port: u16,
    origin: Origin,
    cancel: CancellationToken,
}

/// What the tasks and the caller share (a std Mutex held for short sections only).
#[derive(Default)]
struct Shared {
    mixer: Mixer<LegId>,
    outputs: HashMap<LegId, Output>,
}

/// Where and how a participant's mix goes.
struct Output {
    socket: Arc<UdpSocket>,
    /// From the participant's SDP; None until its answer, or while the stream is off.
    remote: Option<SocketAddr>,
    /// Symmetric RTP (RFC 4961): the source of its packets, when that differs from the
    /// SDP address (a phone behind NAT writes its private address), is where the mix
    /// goes. Reset by every new SDP from the participant.
    latched: Option<SocketAddr>,
    codec: Option<Codec>,
    telephone_event: Option<u8>,
    sender: RtpSender,
}

impl Output {
    fn destination(&self) -> Option<SocketAddr> {
        self.remote.and(self.latched.or(self.remote))
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic elsewhere while holding it leaves plain data behind: keep going.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn bad_sdp(e: SdpError) -> MediaError {
    match e {
        SdpError::NoCommonCodec => MediaError::NoCommonCodec,
        e => MediaError::BadSdp(e.to_string()),
    }
}

impl ConferenceBridge {
    pub(super) fn open(engine: Arc<Engine>, tenant: TenantId, call: CallId) -> Self {
        let cancel = engine.cancel.child_token();
        let shared = Arc::new(Mutex::new(Shared::default()));
        engine.tracker.spawn_on(
            mix(shared.clone(), engine.clone(), cancel.clone()),
            &engine.runtime,
        );
        engine.stats.bridges.fetch_add(1, Relaxed);
        debug!(%tenant, %call, "conference bridge opened");
        Self {
            engine,
            tenant,
            call,
            cancel,
            shared,
            legs: HashMap::new(),
        }
    }

    /// A new participant: its socket, its receive task, no flow until its SDP.
    fn add(&mut self, leg: LegId) -> Result<(), MediaError> {
        let std_socket = self.engine.ports.bind(self.engine.settings.bind)?;
        let socket = std_socket
            .set_nonblocking(true)
            .and_then(|_| std_socket.local_addr())
            .and_then(|local| {
                // Registered with the I/O runtime's reactor, not the caller's Arbiter.
                let _in_io = self.engine.runtime.enter();
                Ok((local.port(), UdpSocket::from_std(std_socket)?))
            });
        let (port, socket) = match socket {
            Ok((port, socket)) => (port, Arc::new(socket)),
            Err(e) => {
                warn!(call = %self.call, error = %e, "cannot set up an RTP socket");
                return Err(MediaError::NoPort);
            }
        };
        let cancel = self.cancel.child_token();
        {
            let mut s = lock(&self.shared);
            s.mixer.add(leg);
            s.outputs.insert(
                leg,
                Output {
                    socket: socket.clone(),
                    remote: None,
                    latched: None,
                    codec: None,
                    telephone_event: None,
                    sender: RtpSender::random(),
                },
            );
        }
        self.engine.tracker.spawn_on(
            receive(
                leg,
                socket,
                self.shared.clone(),
                self.engine.clone(),
                cancel.clone(),
            ),
            &self.engine.runtime,
        );
        self.legs.insert(
            leg,
            Leg {
                port,
                origin: Origin::random(),
                cancel,
            },
        );
        self.engine.stats.participants.fetch_add(1, Relaxed);
        debug!(tenant = %self.tenant, call = %self.call, %leg, port, "participant added");
        Ok(())
    }

    /// Reads a participant's SDP and checks that the bridge can send to it.
    fn peer(&self, sdp: &[u8]) -> Result<PeerMedia, MediaError> {
        let peer = sdp::parse(sdp).map_err(bad_sdp)?;
        let usable = peer.port != 0 && !peer.is_hold_address();
        if usable && peer.address.is_ipv4() != self.engine.settings.bind.is_ipv4() {
            return Err(MediaError::BadSdp(format!(
                "address {} is not of the bridge's family ({})",
                peer.address, self.engine.settings.bind
            )));
        }
        Ok(peer)
    }

    /// The participant's SDP takes effect: where to send, in which codec, what flows.
    fn apply(&self, leg: LegId, peer: &PeerMedia, codec: Option<Codec>) {
        let flow = match codec {
            Some(_) => peer.flow(),
            None => Flow::default(),
        };
        let remote = (peer.port != 0 && !peer.is_hold_address())
            .then(|| SocketAddr::new(peer.address, peer.port));
        let mut s = lock(&self.shared);
        if let Some(out) = s.outputs.get_mut(&leg) {
            out.remote = remote;
            out.latched = None;
            out.codec = codec;
            out.telephone_event = peer.telephone_event;
        }
        s.mixer.set_flow(&leg, flow);
        debug!(call = %self.call, %leg, ?remote, ?codec, ?flow, "participant media");
    }

    fn address(&self) -> IpAddr {
        self.engine.settings.address
    }
}

impl Bridge for ConferenceBridge {
    fn offer(&mut self, leg: LegId) -> Result<Body, MediaError> {
        if !self.legs.contains_key(&leg) {
            self.add(leg)?;
        }
        let address = self.address();
        let l = self.legs.get_mut(&leg).ok_or(MediaError::UnknownLeg)?;
        Ok(sdp::write_offer(&mut l.origin, address, l.port)
            .into_bytes()
            .into())
    }

    fn answer(&mut self, leg: LegId, sdp: &[u8]) -> Result<(), MediaError> {
        if !self.legs.contains_key(&leg) {
            return Err(MediaError::UnknownLeg);
        }
        let peer = self.peer(sdp)?;
        // A rejected stream (port 0) is a valid answer: the participant stays, muted.
        let codec = match peer.port {
            0 => None,
            _ => Some(peer.codec().ok_or(MediaError::NoCommonCodec)?),
        };
        self.apply(leg, &peer, codec);
        Ok(())
    }

    /// Also accepts a leg the bridge does not have yet (a participant that joins with
    /// its own offer, as an INVITE into a conference does): it is added.
    fn reoffer(&mut self, leg: LegId, sdp: &[u8]) -> Result<Body, MediaError> {
        let added = !self.legs.contains_key(&leg);
        let peer = self.peer(sdp)?;
        if added {
            self.add(leg)?;
        }
        let address = self.address();
        let l = self.legs.get_mut(&leg).ok_or(MediaError::UnknownLeg)?;
        match sdp::write_answer(&mut l.origin, address, l.port, &peer) {
            Ok(answer) => {
                self.apply(leg, &peer, answer.codec);
                Ok(answer.sdp.into_bytes().into())
            }
            Err(e) => {
                // A refused re-offer leaves the session as it was (RFC 3264 §8).
                if added {
                    self.remove(leg);
                }
                Err(bad_sdp(e))
            }
        }
    }

    fn remove(&mut self, leg: LegId) {
        let Some(l) = self.legs.remove(&leg) else {
            return;
        };
        l.cancel.cancel();
        {
            let mut s = lock(&self.shared);
            s.mixer.remove(&leg);
            // The mixer's handle on the socket; the receiver drops the other on its way out.
            s.outputs.remove(&leg);
        }
        self.engine.stats.participants.fetch_sub(1, Relaxed);
        debug!(call = %self.call, %leg, port = l.port, "participant removed");
    }
}

impl Drop for ConferenceBridge {
    fn drop(&mut self) {
        // The tasks end and drop the sockets (the ports close) without waiting here.
        self.cancel.cancel();
        let stats = &self.engine.stats;
        stats
            .participants
            .fetch_sub(self.legs.len() as i64, Relaxed);
        stats.bridges.fetch_sub(1, Relaxed);
        debug!(tenant = %self.tenant, call = %self.call, "conference bridge closed");
    }
}

/// Receives one participant's RTP: latches its source, decodes into its FIFO.
async fn receive(
    leg: LegId,
    socket: Arc<UdpSocket>,
    shared: Arc<Mutex<Shared>>,
    engine: Arc<Engine>,
    cancel: CancellationToken,
) {
    let stats = &engine.stats;
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    let mut pcm = Vec::with_capacity(4 * FRAME);
    loop {
        let (n, from) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    debug!(%leg, error = %e, "rtp receive error");
                    tokio::task::yield_now().await;
                    continue;
                }
            },
        };
        stats.packets_received.fetch_add(1, Relaxed);
        let packet = match RtpPacket::parse(&buf[..n]) {
            Ok(p) => p,
            // RTCP on the RTP port (rtcp-mux) is not a fault: the bridge ignores it.
            Err(RtpError::Rtcp) => continue,
            Err(_) => {
                stats.packets_dropped.fetch_add(1, Relaxed);
                continue;
            }
        };
        let pt = packet.header.payload_type;
        let codec = Codec::from_payload_type(pt);
        pcm.clear();
        if let Some(c) = codec {
            // Either codec of the offer is accepted, whichever the answer listed first.
            c.decode(packet.payload, &mut pcm);
        }
        let mut s = lock(&shared);
        let Some(out) = s.outputs.get_mut(&leg) else {
            return; // Removed.
        };
        if out.remote.is_some() && out.latched != Some(from) && out.remote != Some(from) {
            debug!(%leg, %from, sdp = ?out.remote, "rtp source latched");
            out.latched = Some(from);
        }
        if codec.is_none() {
            // DTMF events are noted and left out of the mix; anything else is unknown.
            if Some(pt) != out.telephone_event {
                stats.packets_dropped.fetch_add(1, Relaxed);
            }
            continue;
        }
        if s.mixer.push(&leg, &pcm) > 0 {
            stats.packets_dropped.fetch_add(1, Relaxed);
        }
    }
}

/// Every 20 ms: one mix frame per participant sent to, encoded in its codec.
async fn mix(shared: Arc<Mutex<Shared>>, engine: Arc<Engine>, cancel: CancellationToken) {
    let stats = &engine.stats;
    let mut interval = tokio::time::interval(TICK);
    // Burst: after a stall the missed frames are made at once, so the mix consumes the
    // FIFOs at the rate packets fill them, and the outgoing RTP timestamps keep pace
    // with the wall clock (the phones' jitter buffers absorb the burst). Delay would
    // fall behind for good and make the FIFOs drop audio instead.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut payload = Vec::with_capacity(FRAME);
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        {
            let mut s = lock(&shared);
            let Shared { mixer, outputs } = &mut *s;
            let mut frames: HashMap<LegId, Frame> = mixer.tick().into_iter().collect();
            for (leg, out) in outputs.iter_mut() {
                let (Some(frame), Some(dest), Some(codec)) =
                    (frames.remove(leg), out.destination(), out.codec)
                else {
                    out.sender.skip(FRAME as u32);
                    continue;
                };
                payload.clear();
                codec.encode(&frame, &mut payload);
                let packet = out
                    .sender
                    .packet(codec.payload_type(), &payload, FRAME as u32);
                batch.push((out.socket.clone(), dest, packet));
            }
        }
        for (socket, dest, packet) in batch.drain(..) {
            // try_send: a socket whose buffer is full loses this frame rather than
            // holding up the others.
            match socket.try_send_to(&packet, dest) {
                Ok(_) => {
                    stats.packets_sent.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    debug!(%dest, error = %e, "rtp send failed");
                    stats.packets_dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::mixer::testing::{goertzel, tone};
    use super::super::{MediaEngine, MediaSettings};
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::time::{timeout_at, Instant};
    use tsps_actors::ports::Media;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn engine() -> MediaEngine {
        MediaEngine::new(
            MediaSettings {
                address: LOCAL,
                bind: LOCAL,
                rtp_port_min: 20000,
                rtp_port_max: 39999,
            },
            tokio::runtime::Handle::current(),
        )
    }

    fn port_of(sdp: &[u8]) -> u16 {
        sdp::parse(sdp).unwrap().port
    }

    fn answer_sdp(port: u16, pts: &str, direction: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {pts}\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
        )
    }

    /// Polls `check` until it holds or `within` passes.
    async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn port_is_free(port: u16) -> bool {
        std::net::UdpSocket::bind((LOCAL, port)).is_ok()
    }

    /// What one test participant received from the bridge.
    #[derive(Default)]
    struct Heard {
        audio: Vec<i16>,
        sequences: Vec<u16>,
        payload_types: Vec<u8>,
        ssrcs: Vec<u32>,
        first_marker: bool,
    }

    /// Sends `freq` for `frames` 20 ms packets from `socket` to `to`, and collects what
    /// arrives on it until `until`.
    async fn participant(
        socket: UdpSocket,
        to: SocketAddr,
        codec: Codec,
        freq: f64,
        frames: usize,
        until: Instant,
    ) -> Heard {
        let mut heard = Heard::default();
        let mut sender = RtpSender::random();
        let mut tick = tokio::time::interval(TICK);
        let mut sent = 0;
        let mut buf = [0u8; RECEIVE_BUFFER];
        loop {
            tokio::select! {
                _ = tick.tick(), if sent < frames => {
                    let mut payload = Vec::new();
                    codec.encode(&tone(freq, 8000.0, sent * FRAME, FRAME), &mut payload);
                    let p = sender.packet(codec.payload_type(), &payload, FRAME as u32);
                    socket.send_to(&p, to).await.unwrap();
                    sent += 1;
                }
                r = timeout_at(until, socket.recv_from(&mut buf)) => {
                    let Ok(r) = r else { return heard };
                    let (n, _) = r.unwrap();
                    let p = RtpPacket::parse(&buf[..n]).unwrap();
                    if heard.sequences.is_empty() {
                        heard.first_marker = p.header.marker;
                    }
                    heard.sequences.push(p.header.sequence);
                    heard.payload_types.push(p.header.payload_type);
                    heard.ssrcs.push(p.header.ssrc);
                    Codec::from_payload_type(p.header.payload_type)
                        .unwrap()
                        .decode(p.payload, &mut heard.audio);
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_participants_hear_the_two_others() {
        let engine = engine();
        let stats = engine.stats();
        let mut bridge = engine
            .open_bridge(TenantId::for_test(1), CallId::for_test(1))
            .unwrap();
        let people = [
            (LegId::for_test(1), Codec::Pcma, 400.0),
            (LegId::for_test(2), Codec::Pcmu, 1000.0),
            (LegId::for_test(3), Codec::Pcmu, 1800.0),
        ];
        let until = Instant::now() + Duration::from_millis(1600);
        let mut ports = Vec::new();
        let mut tasks = Vec::new();
        // Participant 3 is behind a "NAT": its SDP names another socket than the one it
        // sends from, and the bridge must latch onto the source of its packets.
        let advertised = UdpSocket::bind((LOCAL, 0)).await.unwrap();
        for (i, (leg, codec, freq)) in people.into_iter().enumerate() {
            let offer = bridge.offer(leg).unwrap();
            let port = port_of(&offer);
            ports.push(port);
            let socket = UdpSocket::bind((LOCAL, 0)).await.unwrap();
            let sdp_port = if i == 2 {
                advertised.local_addr().unwrap().port()
            } else {
                socket.local_addr().unwrap().port()
            };
            // Each answers with its codec first (and the other one after it).
            let pts = match codec {
                Codec::Pcma => "8 0 101",
                Codec::Pcmu => "0 101",
            };
            bridge
                .answer(leg, answer_sdp(sdp_port, pts, "sendrecv").as_bytes())
                .unwrap();
            let to = SocketAddr::new(LOCAL, port);
            tasks.push(tokio::spawn(participant(
                socket, to, codec, freq, 50, until,
            )));
        }
        assert_eq!(stats.participants.load(Relaxed), 3);
        let mut heard = Vec::new();
        for t in tasks {
            heard.push(t.await.unwrap());
        }
        for (i, (_, codec, own)) in people.iter().enumerate() {
            let h = &heard[i];
            assert!(
                h.sequences.len() >= 30,
                "{i}: {} packets",
                h.sequences.len()
            );
            assert!(
                h.first_marker || i == 2,
                "{i}: no marker on the first packet"
            );
            assert!(
                h.sequences.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
                "{i}: sequence numbers {:?}",
                h.sequences
            );
            assert!(h.payload_types.iter().all(|pt| *pt == codec.payload_type()));
            assert!(h.ssrcs.iter().all(|s| *s == h.ssrcs[0]));
            let mine = goertzel(&h.audio, *own);
            for (j, (_, _, freq)) in people.iter().enumerate() {
                if i != j {
                    let p = goertzel(&h.audio, *freq);
                    assert!(
                        p > 0.002 && p > 100.0 * mine,
                        "{i} hears {j} at {p} and itself at {mine}"
                    );
                }
            }
        }
        assert!(stats.packets_received.load(Relaxed) >= 150);
        assert!(stats.packets_sent.load(Relaxed) >= 90);
        assert_eq!(stats.packets_dropped.load(Relaxed), 0);

        drop(bridge);
        assert_eq!(stats.bridges.load(Relaxed), 0);
        assert_eq!(stats.participants.load(Relaxed), 0);
        eventually(Duration::from_secs(5), "the bridge's tasks end", || {
            engine.tasks() == 0
        })
        .await;
        eventually(Duration::from_secs(5), "the ports close", || {
            ports.iter().all(|p| port_is_free(*p))
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offers_answers_and_removal() {
        let engine = engine();
        let mut bridge = ConferenceBridge::open(
            engine.inner.clone(),
            TenantId::for_test(1),
            CallId::for_test(2),
        );
        let (a, b) = (LegId::for_test(1), LegId::for_test(2));
        assert_eq!(
            bridge.answer(a, answer_sdp(4000, "0", "sendrecv").as_bytes()),
            Err(MediaError::UnknownLeg)
        );
        let first = bridge.offer(a).unwrap();
        let again = bridge.offer(a).unwrap();
        let text = std::str::from_utf8(&again).unwrap();
        assert_eq!(port_of(&first), port_of(&again), "the port is kept");
        assert!(text.contains(" 2 IN IP4 127.0.0.1\r\n"), "{text}");
        assert_eq!(
            bridge.answer(a, answer_sdp(4000, "18", "sendrecv").as_bytes()),
            Err(MediaError::NoCommonCodec)
        );
        assert!(matches!(
            bridge.answer(a, b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n"),
            Err(MediaError::BadSdp(_))
        ));
        assert!(matches!(
            bridge.answer(
                a,
                answer_sdp(4000, "0", "sendrecv")
                    .replace("IN IP4 127.0.0.1", "IN IP6 ::1")
                    .as_bytes()
            ),
            Err(MediaError::BadSdp(_))
        ));
        bridge
            .answer(a, answer_sdp(4000, "0", "sendrecv").as_bytes())
            .unwrap();

        // The participant holds: answered inactive, muted both ways; then resumes.
        let held = bridge
            .reoffer(a, answer_sdp(4000, "8 0", "sendonly").as_bytes())
            .unwrap();
        let held = std::str::from_utf8(&held).unwrap();
        assert!(held.contains("a=inactive\r\n"), "{held}");
        assert!(held.contains(" 3 IN IP4 "), "{held}");
        let flow = |bridge: &ConferenceBridge| lock(&bridge.shared).mixer.flow(&a).unwrap();
        assert_eq!(flow(&bridge), Flow::default());
        let resumed = bridge
            .reoffer(a, answer_sdp(4000, "8 0", "sendrecv").as_bytes())
            .unwrap();
        assert!(std::str::from_utf8(&resumed).unwrap().contains("m=audio "));
        let talking = Flow {
            hear: true,
            send: true,
        };
        assert_eq!(flow(&bridge), talking);
        // A refused re-offer changes nothing.
        assert_eq!(
            bridge.reoffer(a, answer_sdp(4000, "18", "sendonly").as_bytes()),
            Err(MediaError::NoCommonCodec)
        );
        assert_eq!(flow(&bridge), talking);

        // A participant joining with its own offer is added.
        let joined = bridge
            .reoffer(b, answer_sdp(4002, "0", "sendrecv").as_bytes())
            .unwrap();
        let b_port = port_of(&joined);
        assert_eq!(engine.stats().participants.load(Relaxed), 2);
        assert_eq!(engine.tasks(), 3);

        bridge.remove(b);
        bridge.remove(b);
        assert_eq!(engine.stats().participants.load(Relaxed), 1);
        eventually(Duration::from_secs(5), "the removed port closes", || {
            port_is_free(b_port)
        })
        .await;
        assert_eq!(engine.tasks(), 2);
        drop(bridge);
        eventually(Duration::from_secs(5), "no task left", || {
            engine.tasks() == 0
        })
        .await;
    }
}
