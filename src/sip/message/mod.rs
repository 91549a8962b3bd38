//! SIP message intake: parsing with a size limit, validation of what tsps relies on,
//! stream framing (RFC 3261 §18.3) and error responses for requests that cannot be parsed.
//!
//! rsipstack's parser is lenient: it silently drops header lines without a colon or with
//! bytes that are not UTF-8, reads an unparseable Content-Length as 0 and checks no
//! header. [`parse`] therefore checks the raw header section first, lets rsipstack build
//! the message, then validates the headers the transaction and dialog layers use through
//! rsipstack's typed headers. Everything here is sans-IO and never panics on input.

mod check;
mod error_response;
mod frame;
mod hint;
#[cfg(test)]
mod tests;
pub mod view;

use check::*;
pub use error_response::error_response_for;
pub use frame::{frame, leading_crlf, Frame};
pub use hint::call_id_hint;
pub use view::View;

use rsipstack::sip::headers::ContentLength;
use rsipstack::sip::prelude::ToTypedHeader;
use rsipstack::sip::{parser, Header, Method, SipMessage, Uri};
use sha2::{Digest as _, Sha256};

/// Why a message was refused. [`MessageError::status`] maps it to the SIP response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    /// → 513 Message Too Large
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// → 400 Bad Request
    #[error("malformed message: {0}")]
    Malformed(String),
    /// → 400 "Missing <header>"
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// → 400 "Bad <header>", e.g. unparseable CSeq or Via
    #[error("bad {0} header")]
    BadHeader(&'static str),
    /// A request method rsipstack cannot represent → 501 Not Implemented (RFC 3261 §21.5.2).
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
}

impl MessageError {
    /// Status code and reason phrase of the response to a request refused with this error.
    /// The phrase is printable ASCII only, whatever the input was.
    pub fn status(&self) -> (u16, String) {
        let (code, reason) = match self {
            MessageError::TooLarge { .. } => (513, "Message Too Large".to_owned()),
            MessageError::Malformed(detail) => (400, format!("Bad Request ({detail})")),
            MessageError::MissingHeader(name) => (400, format!("Missing {name}")),
            MessageError::BadHeader(name) => (400, format!("Bad {name}")),
            MessageError::UnknownMethod(_) => (501, "Not Implemented".to_owned()),
        };
        let reason: String = reason
            .chars()
            .filter(|c| (' '..='~').contains(c))
            .take(MAX_REASON)
            .collect();
        (code, reason)
    }
}

/// Longest header field accepted (name, value and continuation lines): far above what
/// SIP needs (a long Route set, an Identity token), and at rsipstack's parser's
/// warning threshold for folded values.
const MAX_HEADER_FIELD: usize = 4096;

/// Longest reason phrase we write, and the longest detail echoed from input in errors.
const MAX_REASON: usize = 100;
const MAX_DETAIL: usize = 40;

/// Parse one complete message and validate what tsps relies on: for requests Via (with
/// branch), From (with tag), To, Call-ID, CSeq (number + method matching the request
/// method), Max-Forwards parseable if present, Content-Length consistent with the body
/// (UDP: a body longer than Content-Length is truncated to it, shorter → Malformed); for
/// responses Via, From, To, Call-ID, CSeq. Leading CRLFs are skipped (RFC 3261 §7.5).
/// Without Content-Length the rest of the datagram is the body (§18.3) and a
/// Content-Length header is added so the message stays self-describing when forwarded.
/// Never panics on any input.
pub fn parse(bytes: &[u8], max_size: usize) -> Result<SipMessage, MessageError> {
    if bytes.len() > max_size {
        return Err(MessageError::TooLarge {
            size: bytes.len(),
            limit: max_size,
        });
    }
    let bytes = &bytes[leading_crlf(bytes)..];
    let head_len =
        find_head_end(bytes).ok_or_else(|| malformed("no empty line after the headers"))?;
    check_head(&bytes[..head_len])?;
    let body_start = head_len + 4;
    let mut msg = parser::parse_message(bytes)
        .map_err(|e| MessageError::Malformed(clip(&e.to_string(), MAX_REASON)))?;
    fix_body(&mut msg, &bytes[body_start..])?;
    if let SipMessage::Request(req) = &mut msg {
        // rsipstack reads "alice@host" as a URI without scheme; RFC 3261 §25.1 needs one.
        if req.uri.scheme.is_none() {
            return Err(malformed("request-uri without a scheme"));
        }
        normalize_uri(&mut req.uri);
    }
    match &msg {
        SipMessage::Request(req) => check_request_headers(req.method, &msg)?,
        SipMessage::Response(_) => {
            check_common_headers(&msg, false)?;
        }
    }
    Ok(msg)
}

/// Percent-decodes the user and password of a URI parsed by rsipstack. rsipstack keeps
/// them as written but percent-encodes them when printing, so `sip:%2B1555@host` would be
/// forwarded as `sip:%252B1555@host`; decoded, it prints as `sip:+1555@host`, which is
/// the same URI (RFC 3261 §19.1.4). [`parse`] does this for the Request-URI; call it on
/// URIs taken from typed To/From/Contact headers before comparing or printing them.
/// Escapes that do not decode to UTF-8 are left as they are.
pub fn normalize_uri(uri: &mut Uri) {
    if let Some(auth) = &mut uri.auth {
        decode_in_place(&mut auth.user);
        if let Some(password) = &mut auth.password {
            decode_in_place(password);
        }
    }
}

fn decode_in_place(text: &mut String) {
    if !text.contains('%') {
        return;
    }
    if let Ok(decoded) = percent_encoding::percent_decode_str(text).decode_utf8() {
        *text = decoded.into_owned();
    }
}
