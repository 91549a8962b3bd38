//! Builders for the messages tsps sends. Requests and responses are written as text
//! directly: cheaper than assembling typed headers, and easy to read in a trace.

use super::headers;
use rsipstack::sip::{Request, StatusCode};
use std::fmt::Write as _;
use std::net::SocketAddr;

pub const SERVER: &str = "tsps/0.1";
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE";

pub fn reason(code: u16) -> String {
    let text = StatusCode::from(code).text().to_string();
    if text.is_empty() || text.eq_ignore_ascii_case("unknown") {
        match code {
            423 => "Interval Too Brief".into(),
            482 => "Loop Detected".into(),
            483 => "Too Many Hops".into(),
            489 => "Bad Event".into(),
            491 => "Request Pending".into(),
            _ => "Status".into(),
        }
    } else {
        text
    }
}

/// A random token for tags and branches (RFC 3261 §19.3: at least 32 bits of randomness).
pub fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub fn branch() -> String {
    format!("z9hG4bK-tsps-{}", token())
}

/// A response to `req`: Via, From, To (tag added when given and absent), Call-ID and
/// CSeq copied, then `extra` header lines, then the body.
pub fn response(
    req: &Request,
    source: Option<SocketAddr>,
    code: u16,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut s = String::with_capacity(512);
    let _ = write!(s, "SIP/2.0 {code} {}\r\n", reason(code));
    let mut first = true;
    for h in req.headers.iter() {
        let name = h.name();
        if name.eq_ignore_ascii_case("Via") {
            match (first, source) {
                (true, Some(src)) => {
                    let _ = write!(s, "Via: {}\r\n", stamp_via(h.value(), src));
                }
                _ => {
                    let _ = write!(s, "Via: {}\r\n", h.value());
                }
            }
            first = false;
        }
    }
    for h in req.headers.iter() {
        let name = h.name();
        if name.eq_ignore_ascii_case("From")
            || name.eq_ignore_ascii_case("Call-ID")
            || name.eq_ignore_ascii_case("CSeq")
        {
            let _ = write!(s, "{name}: {}\r\n", h.value());
        } else if name.eq_ignore_ascii_case("To") {
            let v = h.value();
            match to_tag {
                Some(tag) if headers::param(v, "tag").is_none() => {
                    let _ = write!(s, "To: {v};tag={tag}\r\n");
                }
                _ => {
                    let _ = write!(s, "To: {v}\r\n");
                }
            }
        }
    }
    for (k, v) in extra {
        let _ = write!(s, "{k}: {v}\r\n");
    }
    let _ = write!(s, "Server: {SERVER}\r\n");
    finish(s, body)
}

/// The top Via of a response: `received` when the sent-by host is not the source
/// address (RFC 3261 §18.2.1), and the `rport` value when the client asked for it
/// (RFC 3581 §4). Only the first value of a comma-separated Via is stamped.
pub fn stamp_via(via: &str, source: SocketAddr) -> String {
    let (top, rest) = match headers::split_list(via).first() {
        Some(first) if first.len() < via.len() => {
            let i = via.find(first).unwrap_or(0) + first.len();
            (first.to_string(), via[i..].to_string())
        }
        _ => (via.to_string(), String::new()),
    };
    let mut out = String::with_capacity(top.len() + 40);
    let mut rport = false;
    let mut has_received = false;
    for (i, part) in top.split(';').enumerate() {
        let key = part.split('=').next().unwrap_or("").trim();
        if i > 0 && key.eq_ignore_ascii_case("rport") && !part.contains('=') {
            rport = true;
            let _ = write!(out, ";rport={}", source.port());
            continue;
        }
        if i > 0 && key.eq_ignore_ascii_case("received") {
            has_received = true;
        }
        if i > 0 {
            out.push(';');
        }
        out.push_str(part);
    }
    let sent_by_host = headers::via_sent_by(&top)
        .map(headers::uri_host)
        .unwrap_or("");
    let ip = source.ip().to_string();
    if !has_received && (rport || sent_by_host != ip) {
        let _ = write!(out, ";received={ip}");
    }
    out.push_str(&rest);
    out
}

/// Appends Content-Type (for a body), Content-Length, the blank line and the body.
fn finish(s: String, body: Option<&[u8]>) -> Vec<u8> {
    finish_typed(s, body, "application/sdp")
}

fn finish_typed(mut s: String, body: Option<&[u8]>, content_type: &str) -> Vec<u8> {
    let len = body.map(|b| b.len()).unwrap_or(0);
    if len > 0 {
        let _ = write!(s, "Content-Type: {content_type}\r\n");
    }
    let _ = write!(s, "Content-Length: {len}\r\n\r\n");
    let mut out = s.into_bytes();
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    out
}

/// Everything needed to write a request of ours.
pub struct RequestSpec<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    /// Complete Via value: `SIP/2.0/UDP host:port;branch=..;rport`.
    pub via: &'a str,
    /// From and To header values including tags.
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub max_forwards: u32,
    pub contact: Option<&'a str>,
    pub routes: &'a [String],
    pub extra: &'a [(&'a str, String)],
    pub body: Option<&'a [u8]>,
}

pub fn request(spec: &RequestSpec<'_>) -> Vec<u8> {
    request_typed(spec, "application/sdp")
}

/// A request whose body is of `content_type` (NOTIFY bodies, MESSAGE text).
pub fn request_typed(spec: &RequestSpec<'_>, content_type: &str) -> Vec<u8> {
    let mut s = String::with_capacity(640);
    let _ = write!(
        s,
        "{} {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
        spec.method,
        spec.uri,
        spec.via,
        spec.max_forwards,
        spec.from,
        spec.to,
        spec.call_id,
        spec.cseq,
        spec.method
    );
    for r in spec.routes {
        let _ = write!(s, "Route: {r}\r\n");
    }
    if let Some(c) = spec.contact {
        let _ = write!(s, "Contact: {c}\r\n");
    }
    for (k, v) in spec.extra {
        let _ = write!(s, "{k}: {v}\r\n");
    }
    if spec.method == "INVITE" {
        let _ = write!(s, "Allow: {ALLOW}\r\n");
    }
    let _ = write!(s, "User-Agent: {SERVER}\r\n");
    finish_typed(s, spec.body, content_type)
}

/// Removes the `tag` parameter from a From/To value (kept separately in a dialog).
pub fn strip_tag(v: &str) -> String {
    let (head, params) = match v.rfind('>') {
        Some(i) => (&v[..=i], &v[i + 1..]),
        None => match v.find(';') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, ""),
        },
    };
    let mut out = head.to_string();
    for p in params.split(';').filter(|p| !p.trim().is_empty()) {
        let key = p.split('=').next().unwrap_or("").trim();
        if !key.eq_ignore_ascii_case("tag") {
            out.push(';');
            out.push_str(p.trim());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_tag_keeps_other_params() {
        assert_eq!(strip_tag("<sip:a@b>;tag=1;x=y"), "<sip:a@b>;x=y");
        assert_eq!(strip_tag("sip:a@b;tag=1"), "sip:a@b");
        assert_eq!(strip_tag("\"A\" <sip:a@b>"), "\"A\" <sip:a@b>");
    }

    #[test]
    fn via_gets_received_and_rport() {
        let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(
            stamp_via("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1", src),
            "SIP/2.0/UDP 10.0.0.1:5060;rport=40000;branch=z9hG4bK1;received=127.0.0.1"
        );
        assert_eq!(
            stamp_via("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1", src),
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1"
        );
        assert_eq!(
            stamp_via("SIP/2.0/UDP h:1;branch=a, SIP/2.0/UDP p:2;rport", src),
            "SIP/2.0/UDP h:1;branch=a;received=127.0.0.1, SIP/2.0/UDP p:2;rport"
        );
    }

    #[test]
    fn typed_requests_carry_their_content_type() {
        let routes = vec!["<sip:p.example;lr>".to_string()];
        let extra = [("Event", "dialog".to_string())];
        let bytes = request_typed(
            &RequestSpec {
                method: "NOTIFY",
                uri: "sip:1003@127.0.0.1:5070",
                via: "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-tsps-1;rport",
                from: "<sip:1002@a.test>;tag=a",
                to: "<sip:1003@a.test>;tag=b",
                call_id: "c1",
                cseq: 2,
                max_forwards: 70,
                contact: Some("<sip:tsps@127.0.0.1:5060>"),
                routes: &routes,
                extra: &extra,
                body: Some(b"<x/>"),
            },
            "application/dialog-info+xml",
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("NOTIFY sip:1003@127.0.0.1:5070 SIP/2.0\r\n"));
        assert!(text.contains("CSeq: 2 NOTIFY\r\nRoute: <sip:p.example;lr>\r\n"));
        assert!(text.contains("Event: dialog\r\n"));
        assert!(text.contains("Content-Type: application/dialog-info+xml\r\n"));
        assert!(text.ends_with("Content-Length: 4\r\n\r\n<x/>"));
        assert!(!text.contains("application/sdp"));
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(423), "Interval Too Brief");
        assert_eq!(reason(486), "Busy Here");
    }
}
