//! End to end with real softphones: two `baresip` user agents (Debian package
//! `baresip`, installed by scripts/test.sh) register to tsps with digest auth, 1001 dials
//! 1002, 1002 answers by itself (`answermode=auto`), both report the call established,
//! 1001 hangs up, and the call detail record says so.
//!
//! Each baresip runs with its own configuration directory (templates in
//! `tests/baresip/`), listens on 127.0.0.1 only, has no audio hardware (the `aubridge`
//! module stands in for player and source) and no DNS, STUN, TURN or ICE. The test
//! drives it through its `ctrl_tcp` module: netstring-framed JSON commands in, command
//! responses and events (`CALL_ESTABLISHED`, `CALL_CLOSED`, ...) out.
//!
//! Every wait is bounded, and both baresip processes are stopped (by their own child
//! handles) when the test ends, passes or fails; a failure prints their logs and events.

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Tsps, DEVICE_IP};
use serde_json::{json, Value};
use tsps_actors::model::{CallDirection, CallOutcome, Party};

const DOMAIN: &str = "a.test";
/// How long baresip may take to open its control socket after spawn.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long registrations, call set-up and tear-down may take.
const STEP_DEADLINE: Duration = Duration::from_secs(15);
/// A ctrl_tcp message is a few hundred bytes; anything this large is a broken stream.
const MAX_NETSTRING: usize = 1 << 20;

const PROVISION: &str = r#"tenants:
  - domain: a.test
    name: Tenant A
    time_zone: Europe/Zurich
    users:
      - extension: "1001"
        display_name: Alice
        devices:
          - sip_username: "1001"
            password: secret1001
      - extension: "1002"
        display_name: Bob
        devices:
          - sip_username: "1002"
            password: secret1002
"#;

#[test]
fn two_baresip_phones_call_through_tsps() {
    // baresip 1.0 (Debian 12, libre 1.x) knows only MD5 digests, and it fails the whole
    // REGISTER ("Function not implemented") when any challenge of the 401 uses another
    // algorithm, even with MD5 offered first. So tsps offers MD5 alone to these phones.
    let mut tsps = Tsps::start(PROVISION, &[("TSPS_SIP__DIGEST_ALGORITHMS", "MD5")]);
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baresip");

    let mut alice = Baresip::start(&tsps, &templates, "1001", "secret1001", "20000-20499");
    let mut bob = Baresip::start(&tsps, &templates, "1002", "secret1002", "20500-20999");

    // Both phones registered: tsps holds a binding reached at each phone's SIP port.
    let deadline = Instant::now() + STEP_DEADLINE;
    loop {
        let bindings = tsps.bindings(DOMAIN);
        let registered = |phone: &Baresip| {
            bindings
                .iter()
                .any(|b| b.received.ends_with(&format!(":{}", phone.sip_port)))
        };
        if registered(&alice) && registered(&bob) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both phones should register within {STEP_DEADLINE:?}; bindings: {bindings:#?}\n{}\n{}",
            alice.report(),
            bob.report()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

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

/// One baresip process with its configuration directory and control connection.
struct Baresip {
    name: String,
    child: Child,
    sip_port: u16,
    log_path: PathBuf,
    ctrl: Ctrl,
}

impl Baresip {
    /// Writes `config`, `accounts` and `contacts` from the templates into a fresh
    /// directory inside the tsps test directory, starts baresip there and connects to
    /// its control socket.
    fn start(
        tsps: &Tsps,
        templates: &Path,
        user: &str,
        password: &str,
        rtp_ports: &str,
    ) -> Baresip {
        let name = format!("baresip-{user}");
        let dir = tsps.dir().join(&name);
        fs::create_dir_all(&dir).expect("create baresip config directory");
        let sip_port = free_port(IpAddr::V4(DEVICE_IP), true);
        let ctrl_port = free_port(IpAddr::V4(DEVICE_IP), true);
        let fill = |template: &str| {
            let text = fs::read_to_string(templates.join(template))
                .unwrap_or_else(|e| panic!("read tests/baresip/{template}: {e}"));
            text.replace("%SIP_PORT%", &sip_port.to_string())
                .replace("%CTRL_PORT%", &ctrl_port.to_string())
                .replace("%RTP_PORTS%", rtp_ports)
                .replace("%USER%", user)
                .replace("%PASSWORD%", password)
                .replace("%DOMAIN%", DOMAIN)
                .replace("%TSPS%", &tsps.sip_addr().to_string())
        };
        fs::write(dir.join("config"), fill("config")).expect("write baresip config");
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
            child,
            sip_port,
            log_path,
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
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
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
