//! The typed view of a message: the headers the transaction, dialog and registrar
//! layers route on, read in one pass over the header list when the message reaches
//! its shard, so that no layer scans the raw headers again for them. Borrowed from the
//! message (no copies); absent or malformed values are `None` (the message checks in
//! `message::parse` have already refused what the layers cannot work without).

use crate::sip::headers as h;
use rsipstack::sip::{Headers, Method};

/// What the layers read from one message's headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct View<'a> {
    pub call_id: &'a str,
    /// The top Via value, its branch and its sent-by.
    pub via: Option<&'a str>,
    pub branch: Option<&'a str>,
    /// CSeq number and method name.
    pub cseq: Option<u32>,
    pub cseq_method: Option<&'a str>,
    /// From and To values as written, and their tags.
    pub from: &'a str,
    pub from_tag: Option<&'a str>,
    pub to: &'a str,
    pub to_tag: Option<&'a str>,
    /// The first Contact value as written (see [`View::contact_uri`]).
    pub contact: Option<&'a str>,
    pub expires: Option<u32>,
    pub max_forwards: Option<u32>,
    /// An Authorization or Proxy-Authorization header is present.
    pub has_credentials: bool,
}

impl<'a> View<'a> {
    /// Reads the view from a header list (one pass; the first of each header counts).
    pub fn new(headers: &'a Headers) -> Self {
        let mut v = View::default();
        let (mut call_id, mut from, mut to) = (None, None, None);
        let (mut cseq, mut expires, mut max_forwards) = (None, None, None);
        for header in headers.iter() {
            let value = header.value();
            let name = header.name();
            let set = |slot: &mut Option<&'a str>| {
                if slot.is_none() {
                    *slot = Some(value);
                }
            };
            if name.eq_ignore_ascii_case("Via") {
                set(&mut v.via);
            } else if name.eq_ignore_ascii_case("Call-ID") {
                set(&mut call_id);
            } else if name.eq_ignore_ascii_case("CSeq") {
                set(&mut cseq);
            } else if name.eq_ignore_ascii_case("From") {
                set(&mut from);
            } else if name.eq_ignore_ascii_case("To") {
                set(&mut to);
            } else if name.eq_ignore_ascii_case("Contact") {
                set(&mut v.contact);
            } else if name.eq_ignore_ascii_case("Expires") {
                set(&mut expires);
            } else if name.eq_ignore_ascii_case("Max-Forwards") {
                set(&mut max_forwards);
            } else if name.eq_ignore_ascii_case("Authorization")
                || name.eq_ignore_ascii_case("Proxy-Authorization")
            {
                v.has_credentials = true;
            }
        }
        v.call_id = call_id.unwrap_or("");
        v.branch = v.via.and_then(h::via_branch);
        if let Some((n, m)) = cseq.and_then(h::cseq) {
            v.cseq = Some(n);
            v.cseq_method = Some(m);
        }
        v.from = from.unwrap_or("");
        v.from_tag = from.and_then(|f| h::param(f, "tag"));
        v.to = to.unwrap_or("");
        v.to_tag = to.and_then(|t| h::param(t, "tag"));
        v.expires = expires.and_then(|e| e.trim().parse().ok());
        v.max_forwards = max_forwards.and_then(|m| m.trim().parse().ok());
        v
    }

    /// The top Via's sent-by (`host[:port]`).
    pub fn sent_by(&self) -> Option<&'a str> {
        self.via.and_then(h::via_sent_by)
    }

    /// The CSeq method, parsed.
    pub fn method(&self) -> Option<Method> {
        self.cseq_method.and_then(|m| m.parse().ok())
    }

    /// The URI of the first Contact.
    pub fn contact_uri(&self) -> Option<&'a str> {
        self.contact.map(h::uri)
    }

    /// The URIs of From and To.
    pub fn from_uri(&self) -> &'a str {
        h::uri(self.from)
    }
    pub fn to_uri(&self) -> &'a str {
        h::uri(self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::sip::SipMessage;

    fn fixture(name: &str) -> SipMessage {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sip")
            .join(name);
        let bytes = std::fs::read(path).expect("fixture");
        crate::sip::message::parse(&bytes, 65_535).expect("a valid fixture")
    }

    fn headers(m: &SipMessage) -> &Headers {
        match m {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }

    /// The view agrees with the raw accessors on every valid fixture.
    #[test]
    fn the_view_reads_what_the_raw_accessors_read() {
        for name in [
            "invite.sip",
            "register.sip",
            "bye.sip",
            "invite_compact_folded.sip",
            "response_180_custom.sip",
            "response_200_invite_sdp.sip",
            "options_no_content_length.sip",
        ] {
            let m = fixture(name);
            let hs = headers(&m);
            let v = View::new(hs);
            assert_eq!(v.call_id, h::first(hs, "Call-ID").unwrap_or(""), "{name}");
            assert_eq!(v.via, h::first(hs, "Via"), "{name}");
            assert_eq!(
                v.branch,
                h::first(hs, "Via").and_then(h::via_branch),
                "{name}"
            );
            let cseq = h::first(hs, "CSeq").and_then(h::cseq);
            assert_eq!(v.cseq, cseq.map(|c| c.0), "{name}");
            assert_eq!(v.cseq_method, cseq.map(|c| c.1), "{name}");
            let to = h::first(hs, "To");
            assert_eq!(v.to_tag, to.and_then(|t| h::param(t, "tag")), "{name}");
            let from = h::first(hs, "From");
            assert_eq!(v.from_tag, from.and_then(|t| h::param(t, "tag")), "{name}");
            assert_eq!(v.contact, h::first(hs, "Contact"), "{name}");
            assert!(!v.call_id.is_empty(), "{name}");
        }
    }

    #[test]
    fn an_invite_view() {
        let m = fixture("invite.sip");
        let v = View::new(headers(&m));
        assert_eq!(v.method(), Some(Method::Invite));
        assert!(v.from_tag.is_some());
        assert_eq!(v.to_tag, None);
        assert!(v.branch.is_some_and(|b| b.starts_with("z9hG4bK")));
        assert!(!v.has_credentials);
    }
}
