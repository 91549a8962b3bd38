//! Builders for the messages tsps sends. Requests and responses are written as text
//! directly: cheaper than assembling typed headers, and easy to read in a trace.

use super::headers;
use rsipstack::sip::{Request, StatusCode};
use std::fmt::Write as _;

pub const SERVER: &str = "tsps/0.1";
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";

pub fn reason(code: u16) -> String {
    let text = StatusCode::from(code).text().to_string();
    if text.is_empty() || text.eq_ignore_ascii_case("unknown") {
        match code {
            423 => "Interval Too Brief".into(),
            482 => "Loop Detected".into(),
            483 => "Too Many Hops".into(),
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
    code: u16,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut s = String::with_capacity(512);
    let _ = write!(s, "SIP/2.0 {code} {}\r\n", reason(code));
    for h in req.headers.iter() {
        let name = h.name();
        if name.eq_ignore_ascii_case("Via") {
            let _ = write!(s, "Via: {}\r\n", h.value());
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

/// Appends Content-Type (for a body), Content-Length, the blank line and the body.
fn finish(mut s: String, body: Option<&[u8]>) -> Vec<u8> {
    let len = body.map(|b| b.len()).unwrap_or(0);
    if len > 0 {
        s.push_str("Content-Type: application/sdp\r\n");
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
    finish(s, spec.body)
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
    fn reasons() {
        assert_eq!(reason(423), "Interval Too Brief");
        assert_eq!(reason(486), "Busy Here");
    }
}
