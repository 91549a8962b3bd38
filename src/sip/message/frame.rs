//! Stream framing (RFC 3261 §18.3): where one message ends in a TCP byte stream.

use super::*;

/// Result of [`frame`].
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// One message is `buf[start..start + len]`; consume `start + len` bytes.
    Complete { start: usize, len: usize },
    /// Read more bytes and call again.
    Incomplete,
    /// The stream cannot be framed any further: close the connection.
    Invalid(MessageError),
}

/// Stream framing for TCP (RFC 3261 §18.3): skip leading CRLF keep-alives, find the end of
/// headers, read Content-Length (required on streams; compact `l:` too). Garbage in the
/// start line is reported as soon as the first line is complete, so a confused peer is
/// cut off without buffering up to `max_size`.
pub fn frame(buf: &[u8], max_size: usize) -> Frame {
    let start = leading_crlf(buf);
    let rest = &buf[start..];
    if rest.is_empty() {
        return Frame::Incomplete;
    }
    if let Some(eol) = rest.iter().position(|&b| b == b'\n') {
        if !looks_like_start_line(strip_cr(&rest[..eol])) {
            return Frame::Invalid(malformed("not a sip start line"));
        }
    }
    let Some(head_len) = find_head_end(rest) else {
        if rest.len() > max_size {
            return Frame::Invalid(MessageError::TooLarge {
                size: rest.len(),
                limit: max_size,
            });
        }
        return Frame::Incomplete;
    };
    let head = &rest[..head_len];
    let mut length = None;
    for line in head.split(|&b| b == b'\n').skip(1).map(strip_cr) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = parse_length(&line[colon + 1..]);
        match (value, length) {
            (None, _) => return Frame::Invalid(MessageError::BadHeader("Content-Length")),
            (Some(v), Some(seen)) if v != seen => {
                return Frame::Invalid(MessageError::BadHeader("Content-Length"))
            }
            (Some(v), _) => length = Some(v),
        }
    }
    let Some(length) = length else {
        return Frame::Invalid(MessageError::MissingHeader("Content-Length"));
    };
    let total = match (head_len + 4).checked_add(length) {
        Some(total) if total <= max_size => total,
        other => {
            return Frame::Invalid(MessageError::TooLarge {
                size: other.unwrap_or(usize::MAX),
                limit: max_size,
            })
        }
    };
    if rest.len() < total {
        Frame::Incomplete
    } else {
        Frame::Complete { start, len: total }
    }
}

/// Number of leading CR and LF bytes: keep-alives (RFC 5626 §4.4.1 pings are CRLFCRLF)
/// that a stream transport may drop, or answer with a CRLF pong, before framing.
pub fn leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}
