//! End to end with real softphones, `baresip` user agents (Debian package `baresip`,
//! installed by scripts/test.sh) registered to tsps with digest auth:
//! - two phones: 1001 dials 1002, 1002 answers by itself (`answermode=auto`), both
//!   report the call established, 1001 hangs up, and the call detail record says so;
//! - three phones with real audio: 1001 calls 1002 and 1003 and merges the calls into a
//!   conference on tsps's bridge through the API; each phone plays its own tone and
//!   records what it hears, which must be the two other tones and not its own.
//!
//! Each baresip runs with its own configuration directory (templates in
//! `tests/baresip/`), listens on 127.0.0.1 only, has no audio hardware and no DNS, STUN,
//! TURN or ICE. Without audio the `aubridge` module stands in for player and source;
//! with audio (`config_conference`) the source plays a WAV file (`aufile`) and the
//! `sndfile` filter writes each call's decoded audio to a WAV file. The test drives
//! baresip through its `ctrl_tcp` module: netstring-framed JSON commands in, command
//! responses and events (`CALL_ESTABLISHED`, `CALL_CLOSED`, ...) out.
//!
//! Every wait is bounded, and every baresip process is stopped (by its own child
//! handle) when the test ends, passes or fails; a failure prints their logs and events.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::audio::goertzel_amplitude;
use common::{free_port, tenant_users, Tsps, DEVICE_IP, THREE_USERS_YAML};
use reqwest::Method;
use serde_json::{json, Value};
use tsps_actors::model::{CallDirection, CallOutcome, Party};

const DOMAIN: &str = "a.test";
/// How long baresip may take to open its control socket after spawn.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long registrations, call set-up and tear-down may take.
const STEP_DEADLINE: Duration = Duration::from_secs(15);
/// A ctrl_tcp message is a few hundred bytes; anything this large is a broken stream.
const MAX_NETSTRING: usize = 1 << 20;

/// baresip 1.0 (Debian 12, libre 1.x) knows only MD5 digests, and it fails the whole
/// REGISTER ("Function not implemented") when any challenge of the 401 uses another
/// algorithm, even with MD5 offered first. Its devices are set to MD5, as the README
/// says; the platform keeps its default (SHA-256, then MD5) for every other phone.
fn tsps_for_baresip() -> Tsps {
    let yaml = THREE_USERS_YAML.replace(
        "            password: secret",
        "            digest_algorithms: [MD5]\n            password: secret",
    );
    Tsps::start(&yaml, &[("TSPS_SIP__DIGEST_ALGORITHMS", "SHA-256,MD5")])
}

#[test]
fn two_baresip_phones_call_through_tsps() {
    let mut tsps = tsps_for_baresip();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baresip");

    let mut alice = Baresip::start(&tsps, &templates, "1001", "secret1001", "20000-20499");
    let mut bob = Baresip::start(&tsps, &templates, "1002", "secret1002", "20500-20999");

    // Both phones registered: tsps holds a binding reached at each phone's SIP port.
    wait_registered(&mut tsps, &[&alice, &bob]);

    // 1001 dials 1002 by extension in its own tenant; 1002 answers automatically.
    let reply = alice.command("dial", &format!("sip:1002@{DOMAIN}"));
    assert_eq!(
        reply["ok"],
        json!(true),
        "dial refused: {reply}\n{}",
        alice.report()
    );
    let established_a = alice.wait_event("CALL_ESTABLISHED");
    let established_b = bob.wait_event("CALL_ESTABLISHED");
    assert_eq!(
        established_a["direction"],
        json!("outgoing"),
        "{established_a}"
    );
    assert_eq!(
        established_a["peeruri"],
        json!(format!("sip:1002@{DOMAIN}")),
        "{established_a}"
    );
    // tsps is a B2BUA: 1002 gets a new call (its own Call-ID) that still shows 1001 as
    // the caller.
    assert_eq!(
        established_b["direction"],
        json!("incoming"),
        "{established_b}"
    );
    assert_eq!(
        established_b["peeruri"],
        json!(format!("sip:1001@{DOMAIN}")),
        "{established_b}"
    );
    assert_ne!(
        established_a["id"], established_b["id"],
        "two legs, two Call-IDs"
    );

    // The caller hangs up; tsps relays the BYE and both ends see the call closed.
    let reply = alice.command("hangup", "");
    assert_eq!(
        reply["ok"],
        json!(true),
        "hangup refused: {reply}\n{}",
        alice.report()
    );
    alice.wait_event("CALL_CLOSED");
    let closed_b = bob.wait_event("CALL_CLOSED");
    assert!(
        closed_b["param"]
            .as_str()
            .is_some_and(|p| !p.to_ascii_lowercase().contains("error")),
        "1002 should see a normal hang-up, not an error: {closed_b}"
    );

    let records = tsps.wait_for_call_records(DOMAIN, 1, STEP_DEADLINE);
    assert_eq!(records.len(), 1, "exactly one call was made: {records:#?}");
    let cdr = &records[0];
    assert_eq!(cdr.direction, CallDirection::Internal, "{cdr:#?}");
    assert_eq!(cdr.outcome, CallOutcome::Answered, "{cdr:#?}");
    assert_eq!(cdr.hangup_by, Some(Party::Caller), "{cdr:#?}");
    assert_eq!(cdr.caller, "1001", "{cdr:#?}");
    assert_eq!(cdr.callee, "1002", "{cdr:#?}");
    assert!(cdr.answered_at.is_some(), "{cdr:#?}");
    assert!(
        cdr.legs.len() >= 2,
        "a B2BUA call has the caller's leg and the callee's leg: {cdr:#?}"
    );

    alice.quit();
    bob.quit();
}

/// The README's quick start, followed literally: `tsps serve --demo` with the defaults,
/// two baresip phones as the demo's 1001 and 1002 (password `demo<extension>`), 1001
/// dials 1002. Each phone plays its own tone and records what it hears: audio flows
/// both ways.
#[test]
fn the_readme_quick_start_gives_two_baresip_phones_a_call_with_audio_both_ways() {
    let mut tsps = Tsps::start_demo();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baresip");
    let phone = |user, password, rtp_ports, tone| {
        let setup = Setup {
            domain: "demo.tsps.local",
            user,
            password,
            rtp_ports,
            codecs: "PCMU/8000/1,PCMA/8000/1",
            tone: Some(tone),
        };
        Baresip::start_with(&tsps, &templates, &setup)
    };
    let mut alice = phone("1001", "demo1001", "64000-64499", 400.0);
    let mut bob = phone("1002", "demo1002", "64500-64999", 1000.0);
    wait_registered_in(&mut tsps, "demo.tsps.local", &[&alice, &bob]);

    alice.dial("1002");
    let bob_call = call_id(&bob.wait_event("CALL_ESTABLISHED"));
    let phones = [&alice, &bob];
    let before: Vec<_> = phones.iter().map(|p| p.recording_sizes()).collect();
    let after = wait_recorded(&phones, &before, SETTLE + TALK);
    let reply = alice.command("hangup", "");
    assert_eq!(
        reply["ok"],
        json!(true),
        "hangup: {reply}\n{}",
        alice.report()
    );
    bob.wait_call_event("CALL_CLOSED", &bob_call, None);
    let tones = [("1001", 400.0), ("1002", 1000.0)];
    for (i, p) in [&alice, &bob].iter().enumerate() {
        let heard = p.conference_audio(&before[i], &after[i]);
        let (who, own) = tones[i];
        let other: Vec<_> = tones.iter().filter(|(w, _)| *w != who).collect();
        assert_hears(who, &heard, &other, (who, own));
    }
    alice.quit();
    bob.quit();
}

/// How long each phone's tone file plays: longer than the test, as aufile plays its file
/// once and does not loop.
const SOURCE_LENGTH: Duration = Duration::from_secs(60);
/// How much conference audio each phone must have recorded before 1001 hangs up, and
/// how much of it is analysed.
const TALK: Duration = Duration::from_millis(2500);
/// The beginning of the conference audio that is not analysed: what was in flight and
/// in baresip's buffers when the bridge's re-INVITEs were answered.
const SETTLE: Duration = Duration::from_millis(300);

/// Three-way conference with real softphones and real audio: 1001 calls 1002 and 1003
/// (both answer) and merges the two calls through the API. Each phone plays its own tone
/// as its microphone (400, 1000 and 1800 Hz, from a WAV file: baresip's `aufile` source)
/// and records what it decodes (the `sndfile` filter), so each recording of the
/// conference must hold the two other tones and not the phone's own. 1001 hangs up: the
/// conference ends for everyone.
#[test]
fn three_baresip_phones_in_a_conference_hear_the_two_others() {
    conference_of_three_phones(false, ["61000-61499", "61500-61999", "62000-62499"]);
}

/// The same with call 1 held from the API before 1001 calls 1003, as a user would do:
/// the bridge's re-INVITE takes 1002 off hold. baresip 1.0 cannot record what 1002
/// hears after that: a re-INVITE that is not sendrecv (the hold) makes it drop its
/// receive filters, sndfile's included, for the rest of the call (`audio_decoder_set`
/// flushes them and `aufilt_setup` does not set them up again while the send side has
/// its own). So only 1001's and 1003's recordings are checked here, and they must
/// hold 1002's tone: the held party talks again in the conference.
#[test]
fn baresip_conference_after_holding_call_1() {
    conference_of_three_phones(true, ["62500-62999", "63000-63499", "63500-63999"]);
}

/// 1001 calls 1002 (held from the API if `hold`), calls 1003, merges, everyone talks,
/// 1001 hangs up. `rtp_ports`: each phone's range, above both tsps's media range
/// (20000-39999) and the kernel's ephemeral ports, and distinct per test, so that
/// neither a bridge nor a parallel test is in the way.
fn conference_of_three_phones(hold: bool, rtp_ports: [&'static str; 3]) {
    let mut tsps = tsps_for_baresip();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baresip");
    let phone = |user, password, rtp_ports, codecs, tone| {
        let setup = Setup {
            domain: DOMAIN,
            user,
            password,
            rtp_ports,
            codecs,
            tone: Some(tone),
        };
        Baresip::start_with(&tsps, &templates, &setup)
    };
    // 1002 speaks PCMA only (call 1 and the bridge), 1003 PCMU only: the bridge mixes
    // both laws.
    let mut alice = phone(
        "1001",
        "secret1001",
        rtp_ports[0],
        "PCMU/8000/1,PCMA/8000/1",
        400.0,
    );
    let mut bob = phone("1002", "secret1002", rtp_ports[1], "PCMA/8000/1", 1000.0);
    let mut carol = phone("1003", "secret1003", rtp_ports[2], "PCMU/8000/1", 1800.0);
    wait_registered(&mut tsps, &[&alice, &bob, &carol]);
    let host = Host::new(&tsps, "1001");

    // Call 1: 1001 calls 1002, who answers (an offer in, the answer out).
    let call1 = alice.dial("1002");
    let bob_call = call_id(&bob.wait_event("CALL_ESTABLISHED"));
    bob.wait_call_event("CALL_REMOTE_SDP", &bob_call, Some("offer"));
    let first = host.live_call(&tsps, "1002");
    if hold {
        let (status, body) = host.control(&tsps, &first, "hold", None);
        assert_eq!(status, 204, "hold call 1: {body}");
        // tsps's re-INVITE reached 1002.
        bob.wait_call_event("CALL_REMOTE_SDP", &bob_call, Some("offer"));
    }
    // sndfile names a recording by the second it starts: call 2's must start in a later
    // second than call 1's, or it would overwrite it.
    let started = alice.wait_recordings(1);
    wait_until_second_after(started);

    // Call 2: 1001 calls 1003, who answers.
    let call2 = alice.dial("1003");
    let carol_call = call_id(&carol.wait_event("CALL_ESTABLISHED"));
    carol.wait_call_event("CALL_REMOTE_SDP", &carol_call, Some("offer"));
    let second = host.live_call(&tsps, "1003");

    // 1001 merges them: call 2 becomes the conference, 1002 joins it, call 1 ends.
    let with = json!({ "with": first });
    let (status, body) = host.control(&tsps, &second, "conference", Some(with));
    assert_eq!(status, 204, "conference: {body}");
    // 1001's phone gets a BYE on call 1 and keeps call 2; every phone gets the bridge's
    // re-INVITE (an SDP offer) on the call it stays in, and answers it.
    alice.wait_call_event("CALL_CLOSED", &call1, None);
    alice.wait_call_event("CALL_REMOTE_SDP", &call2, Some("offer"));
    bob.wait_call_event("CALL_REMOTE_SDP", &bob_call, Some("offer"));
    carol.wait_call_event("CALL_REMOTE_SDP", &carol_call, Some("offer"));

    // The three talk: each checked recording must gain SETTLE + TALK of conference
    // audio, and no call ends meanwhile.
    let tones = [("1001", 400.0), ("1002", 1000.0), ("1003", 1800.0)];
    let checked: Vec<usize> = if hold { vec![0, 2] } else { vec![0, 1, 2] };
    let mut phones = [&mut alice, &mut bob, &mut carol];
    let listeners: Vec<&Baresip> = checked.iter().map(|&i| &*phones[i]).collect();
    let before: Vec<_> = listeners.iter().map(|p| p.recording_sizes()).collect();
    let after = wait_recorded(&listeners, &before, SETTLE + TALK);
    for p in phones.iter_mut() {
        p.poll();
        let closed = p.ctrl.pending.iter().find(|v| v["type"] == "CALL_CLOSED");
        assert!(
            closed.is_none(),
            "{}: a call closed during the conference: {closed:?}\n{}",
            p.name,
            p.report()
        );
    }

    // 1001 hangs up: tsps ends the conference for everyone.
    let reply = alice.command("hangup", "");
    assert_eq!(
        reply["ok"],
        json!(true),
        "hangup: {reply}\n{}",
        alice.report()
    );
    alice.wait_call_event("CALL_CLOSED", &call2, None);
    bob.wait_call_event("CALL_CLOSED", &bob_call, None);
    carol.wait_call_event("CALL_CLOSED", &carol_call, None);

    // What each heard in the conference: the two others, not itself.
    let phones = [&alice, &bob, &carol];
    for (n, &i) in checked.iter().enumerate() {
        let heard = phones[i].conference_audio(&before[n], &after[n]);
        let (who, own) = tones[i];
        let others: Vec<_> = tones.iter().filter(|(w, _)| *w != who).collect();
        assert_hears(who, &heard, &others, (who, own));
    }

    let records = tsps.wait_for_call_records(DOMAIN, 2, STEP_DEADLINE);
    let record = |id: &str| {
        records
            .iter()
            .find(|r| r.id.to_string() == id)
            .unwrap_or_else(|| panic!("the record of {id}: {records:#?}"))
    };
    let (r1, r2) = (record(&first), record(&second));
    assert_eq!(r1.outcome, CallOutcome::Answered, "{r1:#?}");
    assert_eq!(r2.outcome, CallOutcome::Answered, "{r2:#?}");
    assert_eq!(r2.hangup_by, Some(Party::Caller), "1001 hung up: {r2:#?}");
    let merged = format!("1001: conference with 1002 of call {first}");
    assert!(r2.decision.contains(&merged), "{merged:?} in {r2:#?}");
    assert_eq!(r2.legs.len(), 3, "1001's phone, 1003 and 1002: {r2:#?}");
    assert!(r2.legs.iter().all(|l| l.answered_at.is_some()), "{r2:#?}");

    alice.quit();
    bob.quit();
    carol.quit();
}

/// One baresip process with its configuration directory and control connection.
struct Baresip {
    name: String,
    /// The tenant's domain the phone is of.
    domain: &'static str,
    child: Child,
    sip_port: u16,
    log_path: PathBuf,
    /// Where sndfile writes the calls' audio (conference configuration only).
    recordings: PathBuf,
    ctrl: Ctrl,
}

/// What differs between the phones of a test.
struct Setup {
    /// The tenant's domain (the account's AoR).
    domain: &'static str,
    user: &'static str,
    password: &'static str,
    /// baresip's RTP port range, `min-max`.
    rtp_ports: &'static str,
    /// The account's `audio_codecs`, in the order of preference.
    codecs: &'static str,
    /// Some: the phone talks (plays this tone, Hz, from a WAV file) and records what it
    /// hears (configuration `config_conference`). None: no audio (`config`).
    tone: Option<f64>,
}

impl Baresip {
    /// A phone of the two-phone test: no audio (aubridge), PCMU.
    fn start(
        tsps: &Tsps,
        templates: &Path,
        user: &'static str,
        password: &'static str,
        rtp_ports: &'static str,
    ) -> Baresip {
        let setup = Setup {
            domain: DOMAIN,
            user,
            password,
            rtp_ports,
            codecs: "PCMU/8000/1",
            tone: None,
        };
        Baresip::start_with(tsps, templates, &setup)
    }

    /// Writes `config`, `accounts` and `contacts` from the templates into a fresh
    /// directory inside the tsps test directory (with a tone: `config_conference`, the
    /// tone's WAV file and a directory for the recordings), starts baresip there and
    /// connects to its control socket.
    fn start_with(tsps: &Tsps, templates: &Path, setup: &Setup) -> Baresip {
        let user = setup.user;
        let name = format!("baresip-{user}");
        let dir = tsps.dir().join(&name);
        fs::create_dir_all(&dir).expect("create baresip config directory");
        let sip_port = free_sip_port();
        let ctrl_port = loop {
            let port = free_port(IpAddr::V4(DEVICE_IP), true);
            if port != sip_port + 1 {
                break port;
            }
        };
        let source = dir.join("tone.wav");
        let recordings = dir.join("recordings");
        let config = match setup.tone {
            Some(freq) => {
                fs::write(&source, wav(&tone(freq, SOURCE_LENGTH))).expect("write tone.wav");
                fs::create_dir_all(&recordings).expect("create recordings directory");
                "config_conference"
            }
            None => "config",
        };
        let fill = |template: &str| {
            let text = fs::read_to_string(templates.join(template))
                .unwrap_or_else(|e| panic!("read tests/baresip/{template}: {e}"));
            text.replace("%SIP_PORT%", &sip_port.to_string())
                .replace("%CTRL_PORT%", &ctrl_port.to_string())
                .replace("%RTP_PORTS%", setup.rtp_ports)
                .replace("%USER%", user)
                .replace("%PASSWORD%", setup.password)
                .replace("%CODECS%", setup.codecs)
                .replace("%DOMAIN%", setup.domain)
                .replace("%TSPS%", &tsps.sip_addr().to_string())
                .replace("%AUDIO_SOURCE%", &source.display().to_string())
                .replace("%SND_PATH%", &recordings.display().to_string())
        };
        fs::write(dir.join("config"), fill(config)).expect("write baresip config");
        fs::write(dir.join("accounts"), fill("accounts")).expect("write baresip accounts");
        fs::write(dir.join("contacts"), "").expect("write baresip contacts");

        let log_path = dir.join("baresip.log");
        let log = fs::File::create(&log_path).expect("create baresip log");
        // `timeout` bounds the process even if this test process dies without Drop.
        let child = Command::new("timeout")
            .args(["-k", "5", "120", "baresip", "-f"])
            .arg(&dir)
            .arg("-s") // SIP trace into the log, for diagnostics
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run baresip ({e}): install baresip (scripts/test.sh does it)")
            });
        let mut phone = Baresip {
            name,
            domain: setup.domain,
            child,
            sip_port,
            log_path,
            recordings,
            ctrl: Ctrl::default(),
        };
        phone.connect(SocketAddr::from((DEVICE_IP, ctrl_port)));
        phone
    }

    fn connect(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited during start-up ({status}):\n{}",
                    self.name,
                    self.report()
                );
            }
            if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                self.ctrl.stream = Some(stream);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not open its control socket {addr} within {START_DEADLINE:?}:\n{}",
                self.name,
                self.report()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Dials `number` of the tenant and waits for the call to be established; returns
    /// its SIP Call-ID.
    fn dial(&mut self, number: &str) -> String {
        let reply = self.command("dial", &format!("sip:{number}@{}", self.domain));
        assert_eq!(
            reply["ok"],
            json!(true),
            "{}: dial {number} refused: {reply}\n{}",
            self.name,
            self.report()
        );
        call_id(&self.wait_event("CALL_ESTABLISHED"))
    }

    /// The sizes of the recordings of what the phone heard (sndfile's
    /// `dump-<time>-dec.wav`), one per call so far.
    fn recording_sizes(&self) -> BTreeMap<PathBuf, u64> {
        fs::read_dir(&self.recordings)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
                    .filter_map(|p| fs::metadata(&p).ok().map(|m| (p, m.len())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the phone has `n` recordings of what it heard; returns when it saw them.
    fn wait_recordings(&self, n: usize) -> SystemTime {
        let deadline = Instant::now() + STEP_DEADLINE;
        loop {
            if self.recording_sizes().len() >= n {
                return SystemTime::now();
            }
            assert!(
                Instant::now() < deadline,
                "{}: fewer than {n} recordings in {} within {STEP_DEADLINE:?}\n{}",
                self.name,
                self.recordings.display(),
                self.report()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The audio that the one recording which grew from `before` to `after` gained,
    /// without its first [`SETTLE`].
    fn conference_audio(
        &self,
        before: &BTreeMap<PathBuf, u64>,
        after: &BTreeMap<PathBuf, u64>,
    ) -> Vec<i16> {
        let grown: Vec<(&PathBuf, u64, u64)> = after
            .iter()
            .filter_map(|(file, end)| {
                before
                    .get(file)
                    .filter(|start| end > *start)
                    .map(|start| (file, *start, *end))
            })
            .collect();
        let [(file, start, end)] = grown[..] else {
            panic!(
                "{}: exactly one recording should have grown in the conference: \
                 before {before:#?}, after {after:#?}",
                self.name
            );
        };
        let bytes = fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let data = wav_data_offset(&bytes)
            .unwrap_or_else(|e| panic!("{}: {}: {e}", self.name, file.display()));
        // Sizes are of the file as it was being written; the header does not change.
        let sample_at = |size: u64| (size.saturating_sub(data as u64) / 2) as usize;
        let from = data + 2 * (sample_at(start) + samples(SETTLE));
        let to = (data + 2 * sample_at(end)).min(bytes.len());
        bytes
            .get(from..to)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    /// Sends one command and returns its response (events that arrive meanwhile are
    /// kept for [`Baresip::wait_event`]).
    fn command(&mut self, command: &str, params: &str) -> Value {
        let token = format!("{command}-{}", self.ctrl.seen.len());
        let msg = json!({ "command": command, "params": params, "token": token });
        self.ctrl.send(&msg);
        let deadline = Instant::now() + STEP_DEADLINE;
        while Instant::now() < deadline {
            if let Some(v) = self.ctrl.next(deadline) {
                if v["response"] == json!(true) && v["token"] == json!(token) {
                    return v;
                }
            }
        }
        panic!(
            "{}: no response to {command} within {STEP_DEADLINE:?}\n{}",
            self.name,
            self.report()
        );
    }

    /// The first event of `kind` not consumed yet, waiting for it if needed.
    fn wait_event(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + STEP_DEADLINE;
        loop {
            if let Some(i) = self
                .ctrl
                .pending
                .iter()
                .position(|v| v["type"] == json!(kind))
            {
                return self.ctrl.pending.remove(i);
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: no {kind} event within {STEP_DEADLINE:?}\n{}",
                    self.name,
                    self.report()
                );
            }
            self.ctrl.next(deadline);
        }
    }

    /// The first event of `kind` (with `param`, if given) about the call with SIP
    /// Call-ID `call` not consumed yet, waiting for it if needed.
    fn wait_call_event(&mut self, kind: &str, call: &str, param: Option<&str>) -> Value {
        let deadline = Instant::now() + STEP_DEADLINE;
        let wanted = |v: &Value| {
            v["type"] == json!(kind)
                && v["id"] == json!(call)
                && param.is_none_or(|p| v["param"] == json!(p))
        };
        loop {
            if let Some(i) = self.ctrl.pending.iter().position(wanted) {
                return self.ctrl.pending.remove(i);
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: no {kind} {param:?} for call {call} within {STEP_DEADLINE:?}\n{}",
                    self.name,
                    self.report()
                );
            }
            self.ctrl.next(deadline);
        }
    }

    /// Reads what the control socket has now, without waiting.
    fn poll(&mut self) {
        while self
            .ctrl
            .next(Instant::now() + Duration::from_millis(5))
            .is_some()
        {}
    }

    /// Asks baresip to quit and waits (bounded) for it to exit; kills it otherwise.
    fn quit(&mut self) {
        if self.ctrl.stream.is_some() {
            let msg = json!({ "command": "quit", "params": "", "token": "quit" });
            self.ctrl.send(&msg);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// Kills baresip and its `timeout` wrapper. SIGKILL on `timeout` alone would leave
    /// baresip running (orphaned, with nothing left to stop it), so baresip, the
    /// wrapper's child, goes first.
    fn kill(&mut self) {
        let pid = self.child.id();
        if let Ok(children) = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            for child in children.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", child]).status();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn report(&self) -> String {
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(300)..].join("\n");
        let events: Vec<String> = self.ctrl.seen.iter().map(|v| v.to_string()).collect();
        format!(
            "===== {} control messages =====\n{}\n===== {} log (tail) =====\n{tail}",
            self.name,
            events.join("\n"),
            self.name
        )
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

/// Waits until tsps holds a binding for each phone.
fn wait_registered(tsps: &mut Tsps, phones: &[&Baresip]) {
    wait_registered_in(tsps, DOMAIN, phones)
}

fn wait_registered_in(tsps: &mut Tsps, domain: &str, phones: &[&Baresip]) {
    let deadline = Instant::now() + STEP_DEADLINE;
    loop {
        let bindings = tsps.bindings(domain);
        let registered = |phone: &&Baresip| {
            bindings
                .iter()
                .any(|b| b.received.ends_with(&format!(":{}", phone.sip_port)))
        };
        if phones.iter().all(registered) {
            return;
        }
        let reports: Vec<String> = phones.iter().map(|p| p.report()).collect();
        assert!(
            Instant::now() < deadline,
            "every phone should register within {STEP_DEADLINE:?}; bindings: {bindings:#?}\n{}",
            reports.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A port for baresip's `sip_listen`: free for UDP and TCP, and so is the next one, on
/// which baresip listens for SIP over TLS (taken, it fails to start: "SIP/TLS transport
/// failed: Address already in use").
fn free_sip_port() -> u16 {
    for _ in 0..50 {
        let port = free_port(IpAddr::V4(DEVICE_IP), true);
        if port < u16::MAX && TcpListener::bind((DEVICE_IP, port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair for baresip's SIP after 50 tries");
}

/// The SIP Call-ID a ctrl_tcp call event is about.
fn call_id(event: &Value) -> String {
    event["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a Call-ID in {event}"))
        .to_string()
}

/// Waits until one recording of each phone (a call's file in `before`) has grown by
/// `length` of audio; returns the sizes then.
fn wait_recorded(
    phones: &[&Baresip],
    before: &[BTreeMap<PathBuf, u64>],
    length: Duration,
) -> Vec<BTreeMap<PathBuf, u64>> {
    let bytes = samples(length) as u64 * 2;
    let deadline = Instant::now() + length + STEP_DEADLINE;
    loop {
        let now: Vec<_> = phones.iter().map(|p| p.recording_sizes()).collect();
        let grown = |(before, now): (&BTreeMap<PathBuf, u64>, &BTreeMap<PathBuf, u64>)| {
            before.iter().any(|(file, size)| {
                now.get(file)
                    .is_some_and(|n| n.saturating_sub(*size) >= bytes)
            })
        };
        if before.iter().zip(&now).all(grown) {
            return now;
        }
        if Instant::now() >= deadline {
            let reports: Vec<String> = phones.iter().map(|p| p.report()).collect();
            panic!(
                "the recordings did not grow by {length:?} within {:?}: before {before:#?}, \
                 now {now:#?}\n{}",
                length + STEP_DEADLINE,
                reports.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the wall clock's second is later than that of `t`.
fn wait_until_second_after(t: SystemTime) {
    let second = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    while second(SystemTime::now()) <= second(t) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The call-control API as one user of the tenant.
struct Host {
    tenant: String,
    user: String,
}

impl Host {
    fn new(tsps: &Tsps, extension: &str) -> Host {
        let (tenant, mut users) = tenant_users(tsps, DOMAIN);
        let user = users
            .remove(extension)
            .unwrap_or_else(|| panic!("user {extension} in {users:?}"));
        Host { tenant, user }
    }

    /// The id of the live call that dialled `number`.
    fn live_call(&self, tsps: &Tsps, number: &str) -> String {
        let path = format!("/tenants/{}/calls/live", self.tenant);
        let deadline = Instant::now() + STEP_DEADLINE;
        loop {
            let live = tsps.api_ok(Method::GET, &path, None);
            let found = live.as_array().and_then(|calls| {
                calls
                    .iter()
                    .find(|c| c["dialled"].as_str().is_some_and(|d| d.contains(number)))
                    .and_then(|c| c["id"].as_str())
            });
            if let Some(id) = found {
                return id.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no live call to {number} within {STEP_DEADLINE:?}: {live}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `POST .../users/{user}/calls/{call}/{what}`.
    fn control(&self, tsps: &Tsps, call: &str, what: &str, body: Option<Value>) -> (u16, Value) {
        let path = format!(
            "/tenants/{}/users/{}/calls/{call}/{what}",
            self.tenant, self.user
        );
        tsps.api(Method::POST, &path, body.as_ref())
    }
}

/// The ctrl_tcp connection: netstrings (`<len>:<json>,`) both ways.
#[derive(Default)]
struct Ctrl {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Events received and not consumed by `wait_event` yet.
    pending: Vec<Value>,
    /// Everything received, for failure reports.
    seen: Vec<Value>,
}

impl Ctrl {
    fn send(&mut self, msg: &Value) {
        let body = msg.to_string();
        let frame = format!("{}:{body},", body.len());
        let stream = self.stream.as_mut().expect("control socket is connected");
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .expect("set write timeout");
        stream
            .write_all(frame.as_bytes())
            .unwrap_or_else(|e| panic!("send {body} to baresip: {e}"));
    }

    /// Reads until one message is complete or `deadline` passes; events are also
    /// queued in `pending`.
    fn next(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if let Some(v) = self.take_frame() {
                if v["event"] == json!(true) {
                    self.pending.push(v.clone());
                }
                self.seen.push(v.clone());
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let stream = self.stream.as_mut()?;
            let wait = (deadline - now).min(Duration::from_millis(200));
            stream
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .expect("set read timeout");
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk) {
                Ok(0) => {
                    // baresip closed the socket: nothing more will come.
                    self.stream = None;
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read from baresip control socket: {e}"),
            }
        }
    }

    /// One complete netstring from the buffer, parsed as JSON.
    fn take_frame(&mut self) -> Option<Value> {
        let colon = self.buf.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&self.buf[..colon])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "bad netstring length from baresip: {:?}",
                    String::from_utf8_lossy(&self.buf[..colon.min(32)])
                )
            });
        assert!(
            len <= MAX_NETSTRING,
            "netstring of {len} bytes from baresip"
        );
        let end = colon + 1 + len;
        if self.buf.len() <= end {
            return None; // incomplete: the body or the trailing comma is still missing
        }
        assert_eq!(self.buf[end], b',', "netstring without its trailing comma");
        let body = self.buf[colon + 1..end].to_vec();
        self.buf.drain(..=end);
        Some(serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "baresip sent invalid JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        }))
    }
}

// ---- audio: the phones' tone files, their recordings, and what is in them ----

/// 8 kHz mono: what aufile needs for G.711 (the codec's rate, one channel).
const RATE: u32 = 8000;
/// Each tone's amplitude: two summed by the bridge stay far from clipping.
const AMPLITUDE: f64 = 6000.0;

/// `length` of a sine of `freq` Hz at [`RATE`].
fn tone(freq: f64, length: Duration) -> Vec<i16> {
    (0..samples(length))
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            (AMPLITUDE * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// A canonical 44-byte-header WAV file: PCM, 16-bit little-endian, mono, [`RATE`].
fn wav(samples: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).expect("a WAV under 4 GiB");
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk length
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// How many samples `length` holds at [`RATE`].
fn samples(length: Duration) -> usize {
    (length.as_secs_f64() * f64::from(RATE)) as usize
}

/// Where the samples of a WAV file start, once its format is checked to be what the
/// phones record (16-bit PCM, mono, [`RATE`]).
fn wav_data_offset(bytes: &[u8]) -> Result<usize, String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF WAVE file".into());
    }
    let mut at = 12;
    let mut format_ok = false;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = at + 8;
        if id == b"data" {
            return if format_ok {
                Ok(body)
            } else {
                Err("no 16-bit PCM mono 8 kHz fmt chunk before the data".into())
            };
        }
        if id == b"fmt " {
            let field = |i: usize| {
                bytes
                    .get(body + i..body + i + 2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
            };
            let rate = bytes
                .get(body + 4..body + 8)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
            format_ok = field(0) == Some(1) // PCM
                && field(2) == Some(1) // mono
                && rate == Some(RATE)
                && field(14) == Some(16); // bits per sample
        }
        at = body + len + (len & 1); // chunks are padded to even lengths
    }
    Err("no data chunk".into())
}

/// The RMS over 20 ms frames of the amplitude of `freq` in `audio`. 400, 1000 and
/// 1800 Hz are whole bins of a 160-sample frame, so they do not leak into each other.
fn tone_level(audio: &[i16], freq: f64) -> f64 {
    let frames: Vec<&[i16]> = audio.chunks_exact(160).collect();
    if frames.is_empty() {
        return 0.0;
    }
    let sum: f64 = frames
        .iter()
        .map(|f| goertzel_amplitude(f, freq).powi(2))
        .sum();
    (sum / frames.len() as f64).sqrt()
}

/// A tone a phone must hear: at least this amplitude (each is played at [`AMPLITUDE`]).
const MIN_HEARD: f64 = 1000.0;
/// A tone it must not hear stays below the weakest heard one by this factor. Silence
/// measures about 1; the G.711 coding of the mix adds intermodulation (2 x 400 + 1000 =
/// 1800 Hz: about 35 in what 1003 hears, against about 6000 for each heard tone).
const MARGIN: f64 = 10.0;

/// `who` heard (in `audio`) the tones of `others` clearly and not its own.
fn assert_hears(who: &str, audio: &[i16], others: &[&(&str, f64)], own: (&str, f64)) {
    let level = |freq: f64| tone_level(audio, freq);
    let levels: Vec<String> = others
        .iter()
        .map(|(w, f)| (*w, *f))
        .chain([own])
        .map(|(w, f)| format!("{w} ({f} Hz): {:.1}", level(f)))
        .collect();
    let what = format!(
        "{who} heard {:.2} s of conference; tone levels: {}",
        audio.len() as f64 / f64::from(RATE),
        levels.join(", ")
    );
    eprintln!("{what}");
    assert!(
        audio.len() >= samples(TALK) / 2,
        "too little conference audio: {what}"
    );
    let weakest = others
        .iter()
        .map(|(_, f)| level(*f))
        .fold(f64::INFINITY, f64::min);
    assert!(weakest >= MIN_HEARD, "{who} hears the two others: {what}");
    assert!(
        level(own.1) * MARGIN <= weakest,
        "{who} does not hear itself: {what}"
    );
}
