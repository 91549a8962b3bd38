//! A SIP user agent written by hand, datagram by datagram, for attacks no real phone
//! makes: replayed credentials, guesses at full speed, requests from chosen loopback
//! addresses. Every wait is bounded.

pub use super::headers;
use super::{header, status_code, Tsps};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub struct RawUa {
    socket: UdpSocket,
    tsps: SocketAddr,
}

/// What a request is made of.
#[derive(Clone, Debug)]
pub struct Req<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    /// `user@domain` of From (and of To for REGISTER).
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    /// Whole header lines, e.g. `Authorization: Digest ...`.
    pub extra: Vec<String>,
}

impl RawUa {
    /// A socket on `ip` (a loopback address) and a free port.
    pub fn bind(ip: Ipv4Addr, tsps: &Tsps) -> RawUa {
        let socket = UdpSocket::bind((ip, 0)).expect("bind udp socket");
        RawUa {
            socket,
            tsps: tsps.sip_addr(),
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.socket.local_addr().expect("local addr")
    }

    /// The request in wire format, Contact on this socket.
    pub fn message(&self, r: &Req<'_>) -> String {
        let local = self.local();
        let branch = format!("z9hG4bK{}", uuid::Uuid::new_v4().simple());
        let mut lines = vec![
            format!("{} {} SIP/2.0", r.method, r.uri),
            format!("Via: SIP/2.0/UDP {local};rport;branch={branch}"),
            format!("From: <sip:{}>;tag=raw{}", r.from, r.cseq),
            format!("To: <sip:{}>", r.to),
            format!("Call-ID: {}", r.call_id),
            format!("CSeq: {} {}", r.cseq, r.method),
            format!(
                "Contact: <sip:{}@{local}>",
                r.from.split('@').next().unwrap_or("")
            ),
            "Max-Forwards: 70".to_string(),
        ];
        lines.extend(r.extra.iter().cloned());
        lines.push("Content-Length: 0".into());
        format!("{}\r\n\r\n", lines.join("\r\n"))
    }

    pub fn send(&self, message: &str) {
        self.socket
            .send_to(message.as_bytes(), self.tsps)
            .expect("send datagram");
    }

    /// The next datagram within `wait` that `done` accepts.
    pub fn recv_until(&self, wait: Duration, done: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            self.socket
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            let (n, _) = self.socket.recv_from(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if done(&text) {
                return Some(text);
            }
        }
    }

    /// Sends `r` and returns its final response (provisional ones skipped).
    pub fn exchange(&self, r: &Req<'_>, wait: Duration) -> Option<String> {
        self.send(&self.message(r));
        let cseq = format!("{} {}", r.cseq, r.method);
        self.recv_until(wait, |m| {
            status_code(m).is_some_and(|c| c >= 200) && header(m, "CSeq") == Some(cseq.as_str())
        })
    }

    /// Sends `r`, then an OPTIONS with the same Call-ID (so the same shard handles both,
    /// in order), and returns what came back for `r` before the OPTIONS' 200: proof
    /// that `r` got no answer when it is None.
    pub fn exchange_or_silence(&self, r: &Req<'_>, wait: Duration) -> Option<String> {
        self.send(&self.message(r));
        let probe = Req {
            method: "OPTIONS",
            uri: r.uri,
            extra: Vec::new(),
            cseq: r.cseq + 1,
            ..r.clone()
        };
        self.send(&self.message(&probe));
        let (request, options) = (
            format!("{} {}", r.cseq, r.method),
            format!("{} OPTIONS", probe.cseq),
        );
        let mine = |m: &str, cseq: &str| {
            status_code(m).is_some_and(|c| c >= 200) && header(m, "CSeq") == Some(cseq)
        };
        let first = self
            .recv_until(wait, |m| mine(m, &request) || mine(m, &options))
            .expect("the OPTIONS sent after the request is answered");
        if mine(&first, &options) {
            return None;
        }
        // Take the probe's answer too, so that it is not read as the next one's.
        self.recv_until(wait, |m| mine(m, &options))
            .expect("the OPTIONS sent after the request is answered");
        Some(first)
    }
}

/// The answer to the first challenge in `response` (401 or 407) for `method` to `uri`.
pub fn answer(
    response: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    nc: u32,
) -> String {
    let name = if status_code(response) == Some(407) {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    let challenge = headers(response, name)
        .next()
        .unwrap_or_else(|| panic!("a challenge in {response}"));
    tsps::sip::digest::answer_challenge(challenge, method, uri, user, password, "c0ffee", nc)
        .expect("answer the challenge")
}
