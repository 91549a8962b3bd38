//! Three-way conference end to end: real SIPp phones registered as devices of users,
//! the REST API that merges two of a user's calls, and real RTP over loopback mixed by
//! tsps's own media bridge.
//!
//! Each phone's SDP names a UDP socket that this test owns (the `rtp_port` key), so the
//! test plays each party's audio: a distinct tone per party, G.711 in 20 ms RTP packets.
//! Each party must hear the two others and not itself. The SIP side is checked by the
//! scenarios (`tests/sipp/conference_*.xml`: the bridge's re-INVITE must offer PCMU and
//! PCMA), the lines by the users' event streams, the end by the call records.
//!
//! The tenant `a.test` has 1001 (Alice, the host), 1002 (Bob) and 1003 (Carol).

mod common;

use common::audio::goertzel_amplitude;
use common::events::EventsClient;
use common::pbx::{Pbx, DOMAIN};
use common::{Sipp, SippHandle, DEVICE_IP};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use tsps_actors::model::{CallOutcome, CallRecord};

const CDR_WAIT: Duration = Duration::from_secs(10);
const SIP_WAIT: Duration = Duration::from_secs(8);

/// How long every party talks in the three-way phase, and in the two-way phase after
/// 1003 left.
const TALK_THREE: Duration = Duration::from_millis(1500);
const TALK_TWO: Duration = Duration::from_millis(600);
/// How long a socket still listens after its party stopped talking (the bridge's last
/// frames in flight).
const LISTEN_TAIL: Duration = Duration::from_millis(300);
/// 1003 stays this long after answering the bridge's re-INVITE, then hangs up: well
/// beyond the three-way media phase, which starts right after the three answers.
const CAROL_STAYS_MS: &str = "4000";

/// Conference commands of the shared [`Pbx`].
impl Pbx {
    /// `extension` merges `with` into `call_id`.
    fn conference(&self, extension: &str, call_id: &str, with: &str) -> (u16, Value) {
        self.control(
            extension,
            call_id,
            "conference",
            Some(json!({ "with": with })),
        )
    }
}

fn wait_for(device: &mut SippHandle, needle: &str, what: &str) {
    assert!(
        device.wait_for_message(needle, SIP_WAIT),
        "{what}: no {needle:?} within {SIP_WAIT:?}:\n{}",
        device.messages_so_far()
    );
}

/// Polls `device`'s message log until `needle` occurs `n` times.
fn wait_for_count(device: &SippHandle, needle: &str, n: usize, what: &str) {
    let until = Instant::now() + SIP_WAIT;
    while device.messages_so_far().matches(needle).count() < n {
        assert!(
            Instant::now() < until,
            "{what}: fewer than {n} {needle:?} within {SIP_WAIT:?}:\n{}",
            device.messages_so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The SIP messages `device` received so far, in order, as SIPp logged them.
fn received(device: &SippHandle) -> Vec<String> {
    device
        .messages_so_far()
        .split("\n-----------")
        .filter(|entry| entry.contains("message received"))
        .filter_map(|entry| entry.split_once("\n\n").map(|(_, m)| m.trim().to_string()))
        .collect()
}

fn call_id_of(message: &str) -> &str {
    common::header(message, "Call-ID")
        .or_else(|| common::header(message, "i"))
        .unwrap_or_else(|| panic!("no Call-ID:\n{message}"))
}

/// Where the bridge wants `device`'s audio: the `c=`/`m=` of the last INVITE the phone
/// received (the bridge's re-INVITE, once the phone has acknowledged it).
fn bridge_address(device: &SippHandle, who: &str) -> SocketAddr {
    let messages = received(device);
    let invite = messages
        .iter()
        .rev()
        .find(|m| m.starts_with("INVITE sip:"))
        .unwrap_or_else(|| panic!("{who}: no INVITE received:\n{}", device.messages_so_far()));
    let line = |prefix: &str| -> &str {
        invite
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{who}: no {prefix:?} in the bridge's offer:\n{invite}"))
    };
    let ip = line("c=IN IP4 ").trim();
    let port = line("m=audio ")
        .split_whitespace()
        .next()
        .unwrap_or_default();
    format!("{ip}:{port}")
        .parse()
        .unwrap_or_else(|e| panic!("{who}: bridge address {ip}:{port} ({e}):\n{invite}"))
}

/// The host's phone got the BYE on call 1's dialog and the bridge's re-INVITE on call
/// 2's (a click-to-dial INVITE shows the destination in its From).
fn assert_host_dialogs(phone: &SippHandle) {
    let messages = received(phone);
    let log = || phone.messages_so_far();
    let dialog_to = |number: &str| -> &str {
        messages
            .iter()
            .find(|m| {
                m.starts_with("INVITE sip:")
                    && common::header(m, "From").is_some_and(|f| f.contains(number))
            })
            .map(|m| call_id_of(m))
            .unwrap_or_else(|| panic!("no INVITE from {number}:\n{}", log()))
    };
    let (call1, call2) = (dialog_to("sip:1002@"), dialog_to("sip:1003@"));
    let invites: Vec<&str> = messages
        .iter()
        .filter(|m| m.starts_with("INVITE sip:"))
        .map(|m| call_id_of(m))
        .collect();
    assert_eq!(
        invites,
        [call1, call2, call2],
        "two calls, then the bridge's re-INVITE on call 2:\n{}",
        log()
    );
    let bye = messages
        .iter()
        .find(|m| m.starts_with("BYE sip:"))
        .unwrap_or_else(|| panic!("no BYE:\n{}", log()));
    assert_eq!(call_id_of(bye), call1, "the BYE ends call 1:\n{}", log());
}

fn line_of<'a>(v: &'a Value, call: &str) -> Option<&'a Value> {
    (v["type"] == "line" && v["data"]["call_id"] == call).then(|| &v["data"])
}

fn allows(line: &Value, action: &str) -> bool {
    line["allowed"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == action))
}

/// The numbers of a conference line's (other) parties, sorted.
fn party_numbers(line: &Value) -> Vec<String> {
    let mut numbers: Vec<String> = line["conference"]["parties"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["number"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    numbers.sort();
    numbers
}

/// A conference line of `call` for a user who is (or is not) its host, listing `others`.
fn is_conference_line(v: &Value, call: &str, host: bool, others: &[&str]) -> bool {
    line_of(v, call)
        .is_some_and(|l| l["conference"]["host"] == host && party_numbers(l) == others.to_vec())
}

/// The first event (already seen or still to come) that satisfies `pred`: for events
/// whose order among themselves the contract leaves open.
fn seen_or_next(events: &mut EventsClient, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    if let Some(v) = events.seen.iter().find(|v| pred(v)) {
        return v.clone();
    }
    events.until(SIP_WAIT, what, pred)
}

fn record_of<'a>(records: &'a [CallRecord], id: &str) -> &'a CallRecord {
    records
        .iter()
        .find(|r| r.id.to_string() == id)
        .unwrap_or_else(|| panic!("the record of {id}: {records:#?}"))
}

#[test]
fn three_way_conference_mixes_each_party_with_the_others() {
    let mut pbx = Pbx::start();
    let mut alice = Party::new("1001", 400.0, Law::Mu);
    let mut bob = Party::new("1002", 1000.0, Law::A);
    let mut carol = Party::new("1003", 1800.0, Law::Mu);

    // 1001's phone takes both click-to-dials: a BYE on call 1, the bridge on call 2.
    let mut phone = pbx.device(
        "1001",
        Sipp::uas("conference_uas_host.xml")
            .key("answer_after_ms", "200")
            .key("rtp_port", &alice.port().to_string())
            .calls(2),
    );
    let mut bob_phone = pbx.device(
        "1002",
        Sipp::uas("conference_uas_held.xml").key("rtp_port", &bob.port().to_string()),
    );
    let mut carol_phone = pbx.device(
        "1003",
        Sipp::uas("conference_uas_leaver.xml")
            .key("rtp_port", &carol.port().to_string())
            .key("hangup_after_ms", CAROL_STAYS_MS),
    );
    let mut lines = pbx.events_of("1001");
    let mut bob_lines = pbx.events_of("1002");
    let device = pbx.device_id("1001");

    // Call 1 to 1002, answered, then held; call 2 to 1003, answered.
    let first = pbx.click_to_dial(&device, "1002");
    wait_for(&mut bob_phone, "ACK sip:", "1002 answers");
    let (status, body) = pbx.control("1001", &first, "hold", None);
    assert_eq!(status, 204, "hold: {body}");
    let second = pbx.click_to_dial(&device, "1003");
    wait_for(&mut carol_phone, "ACK sip:", "1003 answers");
    // With two connected calls, 1001 may merge them.
    lines.until(SIP_WAIT, "call 2 active, allowing conference", |v| {
        line_of(v, &second).is_some_and(|l| l["state"] == "active" && allows(l, "conference"))
    });

    // Only the user's own calls: 1003 takes part in call 2 but not in call 1.
    let (status, body) = pbx.conference("1003", &second, &first);
    assert_eq!(status, 404, "call 1 is not 1003's: {body}");

    let (status, body) = pbx.conference("1001", &second, &first);
    assert_eq!(status, 204, "conference: {body}");

    // Every phone answers the bridge's offer (the scenarios check RTP/AVP 0 8); 1001's
    // phone gets a BYE on call 1.
    wait_for(&mut phone, "BYE sip:", "1001's phone leaves call 1");
    wait_for_count(
        &phone,
        "ACK sip:",
        3,
        "1001's phone: two calls and the bridge",
    );
    wait_for_count(&bob_phone, "ACK sip:", 3, "1002: call, hold and the bridge");
    wait_for_count(&carol_phone, "ACK sip:", 2, "1003: call and the bridge");
    assert_host_dialogs(&phone);
    alice.bridge = Some(bridge_address(&phone, "1001"));
    bob.bridge = Some(bridge_address(&bob_phone, "1002"));
    carol.bridge = Some(bridge_address(&carol_phone, "1003"));

    // Three parties talk at once: each hears the two others, not itself.
    let heard = talk(&mut [&mut alice, &mut bob, &mut carol], TALK_THREE);
    assert!(
        !carol_phone.messages_so_far().contains("BYE sip:"),
        "1003 hung up before the media phase ended: raise CAROL_STAYS_MS"
    );
    heard[0].assert_hears(&alice, &[&bob, &carol], &[&alice]);
    heard[1].assert_hears(&bob, &[&alice, &carol], &[&bob]);
    heard[2].assert_hears(&carol, &[&alice, &bob], &[&carol]);

    // The lines: 1001 hosts call 2 with 1002 and 1003; call 1 is gone. 1002 is a guest.
    let host_line = seen_or_next(&mut lines, "1001's conference line", |v| {
        is_conference_line(v, &second, true, &["1002", "1003"])
    });
    let host_line = &host_line["data"];
    assert_eq!(host_line["state"], "active", "{host_line}");
    assert!(allows(host_line, "release"), "{host_line}");
    let names: BTreeSet<&str> = host_line["conference"]["parties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["Bob", "Carol"]), "{host_line}");
    seen_or_next(&mut lines, "call 1 ended for 1001", |v| {
        v["type"] == "line_ended" && v["data"]["call_id"] == first.as_str()
    });
    let guest_line = seen_or_next(&mut bob_lines, "1002's conference line", |v| {
        is_conference_line(v, &second, false, &["1001", "1003"])
    });
    let guest_line = &guest_line["data"];
    assert_eq!(guest_line["state"], "active", "{guest_line}");
    assert!(allows(guest_line, "release"), "{guest_line}");

    // 1003 hangs up: the conference goes on with 1001 and 1002.
    let carol_run = carol_phone.join();
    carol_run.assert_success("1003: call, the bridge's re-INVITE, hangs up");
    lines.until(SIP_WAIT, "1001's conference without 1003", |v| {
        is_conference_line(v, &second, true, &["1002"])
    });
    let heard = talk(&mut [&mut alice, &mut bob], TALK_TWO);
    heard[0].assert_hears(&alice, &[&bob], &[&alice, &carol]);
    heard[1].assert_hears(&bob, &[&alice], &[&bob, &carol]);

    // The host releases: the conference ends for everyone.
    let (status, body) = pbx.control("1001", &second, "release", None);
    assert_eq!(status, 204, "release by the host: {body}");
    lines.until(SIP_WAIT, "call 2 ended for 1001", |v| {
        v["type"] == "line_ended" && v["data"]["call_id"] == second.as_str()
    });
    let (phone, bob_phone) = (phone.join(), bob_phone.join());
    phone.assert_success("1001's phone: two calls, BYE on call 1, the bridge on call 2, BYE");
    bob_phone.assert_success("1002: answered (PCMA), held, the bridge's re-INVITE, BYE");
    assert_eq!(
        phone.messages().matches("BYE sip:").count(),
        2,
        "1001's phone got a BYE on each call"
    );

    let records = pbx.tsps.wait_for_call_records(DOMAIN, 2, CDR_WAIT);
    let (r1, r2) = (record_of(&records, &first), record_of(&records, &second));
    assert_eq!(r1.outcome, CallOutcome::Answered, "{r1:#?}");
    assert_eq!(r2.outcome, CallOutcome::Answered, "{r2:#?}");
    let merged = format!("1001: conference with 1002 of call {first}");
    assert!(r2.decision.contains(&merged), "{merged:?} in {r2:#?}");
    assert_eq!(r2.legs.len(), 3, "1001's phone, 1003 and 1002: {r2:#?}");
    assert!(r2.legs.iter().all(|l| l.answered_at.is_some()), "{r2:#?}");
}

#[test]
fn conference_is_refused_for_calls_the_user_cannot_merge() {
    let mut pbx = Pbx::start();
    let phone = pbx.device(
        "1001",
        Sipp::uas("control_uas_delayed_offer.xml").key("answer_after_ms", "200"),
    );
    let mut bob = pbx.device("1002", Sipp::uas("uas_answer.xml"));
    let device = pbx.device_id("1001");
    let call = pbx.click_to_dial(&device, "1002");
    wait_for(&mut bob, "ACK sip:", "1002 answers");

    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, body) = pbx.conference("1001", &call, &unknown);
    assert_eq!(status, 404, "`with` no such call: {body}");
    let (status, body) = pbx.conference("1003", &call, &call);
    assert_eq!(status, 404, "another user's call: {body}");
    let (status, body) = pbx.conference("1001", &call, &call);
    assert_eq!(status, 409, "a call merged with itself: {body}");
    assert_eq!(body["error"]["code"], "wrong_state", "{body}");

    // Nothing changed: the call goes on and ends as usual.
    let (status, body) = pbx.control("1001", &call, "release", None);
    assert_eq!(status, 204, "release: {body}");
    let (phone, bob) = (phone.join(), bob.join());
    phone.assert_success("1001's device: a call without conference, BYE");
    bob.assert_success("1002: answered, BYE");
    let records = pbx.tsps.wait_for_call_records(DOMAIN, 1, CDR_WAIT);
    let r = record_of(&records, &call);
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
    assert_eq!(r.legs.len(), 2, "{r:#?}");
    assert!(
        !r.decision.iter().any(|d| d.contains("conference")),
        "{r:#?}"
    );
}

// ---- the parties' media: G.711 tones in RTP, and what each socket heard ----

/// 8 kHz, 20 ms: one RTP packet.
const RATE: f64 = 8000.0;
const FRAME: usize = 160;
const PACKET: Duration = Duration::from_millis(20);
/// Each tone's amplitude: two of them summed stay far from clipping.
const AMPLITUDE: f64 = 6000.0;
/// A tone the party must hear: at least this amplitude (the bridge may attenuate the
/// sum, and the average counts the frames before and after the talk).
const MIN_HEARD: f64 = 500.0;
/// A tone it must not hear stays below the weakest heard one by this factor (G.711
/// quantization noise alone is ~20 at these levels).
const MARGIN: f64 = 10.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Law {
    /// PCMU, payload type 0.
    Mu,
    /// PCMA, payload type 8.
    A,
}

impl Law {
    fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    fn of_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Mu),
            8 => Some(Law::A),
            _ => None,
        }
    }

    fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => ulaw_encode(sample),
            Law::A => alaw_encode(sample),
        }
    }

    fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Mu => ulaw_decode(byte),
            Law::A => alaw_decode(byte),
        }
    }
}

/// One party's media end: the UDP socket its phone's SDP names, the tone it plays and
/// the codec its answer chose.
struct Party {
    who: &'static str,
    socket: UdpSocket,
    tone: f64,
    law: Law,
    /// Where the bridge wants this party's audio (from the bridge's re-INVITE).
    bridge: Option<SocketAddr>,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    /// Samples played so far: the tone's phase runs on across packets and phases.
    played: u64,
    /// The source of the first datagram this socket ever received.
    first_from: Option<SocketAddr>,
}

impl Party {
    fn new(who: &'static str, tone: f64, law: Law) -> Party {
        let socket = UdpSocket::bind((DEVICE_IP, 0)).expect("bind an RTP socket");
        let n: u32 = who.parse().expect("an extension");
        Party {
            who,
            socket,
            tone,
            law,
            bridge: None,
            seq: (n as u16).wrapping_mul(7),
            timestamp: n.wrapping_mul(1000),
            ssrc: 0x5eed_0000 + n,
            played: 0,
            first_from: None,
        }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().expect("local addr").port()
    }

    /// The next 20 ms of the tone as an RTP packet.
    fn packet(&mut self, first: bool) -> Vec<u8> {
        let pt = self.law.payload_type() | if first { 0x80 } else { 0 };
        let mut p = Vec::with_capacity(12 + FRAME);
        p.extend_from_slice(&[0x80, pt]);
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.timestamp.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        for i in 0..FRAME as u64 {
            let t = (self.played + i) as f64 / RATE;
            let s = AMPLITUDE * (2.0 * std::f64::consts::PI * self.tone * t).sin();
            p.push(self.law.encode(s as i16));
        }
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        self.played += FRAME as u64;
        p
    }

    /// Discards what the bridge sent while the party was not listening (silence, or
    /// the end of the last phase), noting only where the very first datagram came from.
    fn drain(&mut self) {
        self.socket
            .set_nonblocking(true)
            .expect("non-blocking socket");
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = self.socket.recv_from(&mut buf) {
            self.first_from.get_or_insert(from);
        }
        self.socket.set_nonblocking(false).expect("blocking socket");
    }

    /// Plays the tone for `duration` in 20 ms packets to the bridge and collects what
    /// arrives meanwhile and for [`LISTEN_TAIL`] after.
    fn talk(&mut self, duration: Duration) -> Heard {
        let to = self
            .bridge
            .unwrap_or_else(|| panic!("{}: no bridge address", self.who));
        self.drain();
        let packets = (duration.as_millis() / PACKET.as_millis()) as u32;
        let start = Instant::now();
        let end = start + duration + LISTEN_TAIL;
        let mut heard = Heard {
            packets_sent: packets as usize,
            ..Heard::default()
        };
        let mut sent = 0u32;
        let mut buf = [0u8; 2048];
        loop {
            let now = Instant::now();
            let due = start + PACKET * sent;
            if sent < packets && now >= due {
                let packet = self.packet(sent == 0);
                self.socket.send_to(&packet, to).expect("send RTP");
                sent += 1;
                continue;
            }
            if sent >= packets && now >= end {
                return heard;
            }
            let next = if sent < packets { due } else { end };
            let wait = next
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            self.socket
                .set_read_timeout(Some(wait))
                .expect("set read timeout");
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    self.first_from.get_or_insert(from);
                    heard.add(from, &buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{}: receive RTP: {e}", self.who),
            }
        }
    }
}

/// Every party talks at once, each on its own thread; what each heard, in order.
fn talk(parties: &mut [&mut Party], duration: Duration) -> Vec<Heard> {
    std::thread::scope(|s| {
        let talking: Vec<_> = parties
            .iter_mut()
            .map(|p| s.spawn(move || p.talk(duration)))
            .collect();
        talking
            .into_iter()
            .map(|t| t.join().expect("a talking party panicked"))
            .collect()
    })
}

/// What one party's socket received.
#[derive(Default)]
struct Heard {
    /// How many packets the party itself sent meanwhile.
    packets_sent: usize,
    sources: BTreeSet<SocketAddr>,
    payload_types: BTreeSet<u8>,
    /// Decoded audio, one entry per packet.
    frames: Vec<Vec<i16>>,
    not_rtp: usize,
}

impl Heard {
    fn add(&mut self, from: SocketAddr, datagram: &[u8]) {
        self.sources.insert(from);
        if datagram.len() < 12 || datagram[0] >> 6 != 2 {
            self.not_rtp += 1;
            return;
        }
        let csrcs = usize::from(datagram[0] & 0x0f);
        let mut header = 12 + 4 * csrcs;
        if datagram[0] & 0x10 != 0 && datagram.len() >= header + 4 {
            let words = u16::from_be_bytes([datagram[header + 2], datagram[header + 3]]);
            header += 4 + 4 * usize::from(words);
        }
        let pt = datagram[1] & 0x7f;
        self.payload_types.insert(pt);
        if let (Some(law), Some(payload)) = (Law::of_payload_type(pt), datagram.get(header..)) {
            self.frames
                .push(payload.iter().map(|&b| law.decode(b)).collect());
        }
    }

    /// The average amplitude of `tone` over every frame received.
    fn level(&self, tone: f64) -> f64 {
        if self.frames.is_empty() {
            return 0.0;
        }
        let sum: f64 = self
            .frames
            .iter()
            .map(|f| goertzel_amplitude(f, tone).powi(2))
            .sum();
        (sum / self.frames.len() as f64).sqrt()
    }

    /// `me` received RTP from the bridge in its codec, in which the tones of `hears` are
    /// clearly present and those of `not` are not.
    fn assert_hears(&self, me: &Party, hears: &[&Party], not: &[&Party]) {
        let levels: Vec<String> = hears
            .iter()
            .chain(not)
            .map(|p| format!("{} ({} Hz): {:.1}", p.who, p.tone, self.level(p.tone)))
            .collect();
        let what = format!(
            "{} heard {} packets from {:?} (payload types {:?}, {} not RTP); tone levels: {}",
            me.who,
            self.frames.len(),
            self.sources,
            self.payload_types,
            self.not_rtp,
            levels.join(", ")
        );
        eprintln!("{what}");
        assert!(
            self.frames.len() >= self.packets_sent / 2,
            "too little audio for {} packets sent: {what}",
            self.packets_sent
        );
        assert_eq!(
            me.first_from, me.bridge,
            "the bridge's first packet comes from the address of its offer: {what}"
        );
        assert_eq!(
            self.sources,
            BTreeSet::from_iter(me.bridge),
            "the bridge sends from the address of its offer: {what}"
        );
        assert_eq!(
            self.payload_types,
            BTreeSet::from([me.law.payload_type()]),
            "only the codec of {}'s answer: {what}",
            me.who
        );
        let weakest = hears
            .iter()
            .map(|p| self.level(p.tone))
            .fold(f64::INFINITY, f64::min);
        assert!(weakest >= MIN_HEARD, "the others are heard: {what}");
        for p in not {
            assert!(
                self.level(p.tone) * MARGIN <= weakest,
                "{} is not heard: {what}",
                p.who
            );
        }
    }
}

// G.711 (ITU-T G.711, as in the classic Sun reference code).

const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn segment(value: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&end| value <= end).unwrap_or(8)
}

fn ulaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(8159) + (0x84 >> 2);
    let seg = segment(v, &ULAW_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    (((seg as i32) << 4) | ((v >> (seg + 1)) & 0x0F)) as u8 ^ mask
}

fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let t = ((i32::from(u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

fn alaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &ALAW_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let shift = if seg < 2 { 1 } else { seg };
    (((seg as i32) << 4) | ((v >> shift) & 0x0F)) as u8 ^ mask
}

fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    match (a & 0x70) >> 4 {
        0 => t += 8,
        1 => t += 0x108,
        seg => t = (t + 0x108) << (seg - 1),
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

#[test]
fn g711_and_goertzel_measure_a_tone() {
    for law in [Law::Mu, Law::A] {
        for s in [-32768i16, -20000, -1000, -5, 0, 7, 900, 12345, 32767] {
            let back = law.decode(law.encode(s));
            let error = (i32::from(back) - i32::from(s)).abs();
            assert!(
                error <= i32::from(s).abs() / 16 + 16,
                "{law:?}: {s} came back as {back}"
            );
        }
        let mut party = Party::new("1001", 1000.0, law);
        let packet = party.packet(true);
        let frame: Vec<i16> = packet[12..].iter().map(|&b| law.decode(b)).collect();
        let on = goertzel_amplitude(&frame, 1000.0);
        assert!((on - AMPLITUDE).abs() < AMPLITUDE * 0.05, "{law:?}: {on}");
        for off in [400.0, 1800.0] {
            let level = goertzel_amplitude(&frame, off);
            assert!(level * MARGIN * 10.0 < on, "{law:?}: {off} Hz at {level}");
        }
    }
}
