//! Checks of the raw header section and of the headers the layers rely on.

use super::*;

pub(super) fn malformed(detail: &str) -> MessageError {
    MessageError::Malformed(detail.to_owned())
}

pub(super) fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Offset of the CRLFCRLF that ends the header section.
pub(super) fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

pub(super) fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Control characters other than HT, which RFC 3261 does not allow in header lines.
pub(super) fn has_ctl(line: &str) -> bool {
    line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// RFC 3261 token characters.
pub(super) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// The method of a `Method SP Request-URI SP SIP-Version` line, or None for anything else
/// (a status line included).
pub(super) fn request_line_method(line: &str) -> Option<&str> {
    let mut parts = line.split(' ');
    let (method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = parts.next().is_none()
        && !method.is_empty()
        && method.bytes().all(is_token)
        && !uri.is_empty()
        && version.starts_with("SIP/");
    ok.then_some(method)
}

pub(super) fn looks_like_start_line(line: &[u8]) -> bool {
    if line.starts_with(b"SIP/") {
        return true;
    }
    std::str::from_utf8(line).is_ok_and(|line| request_line_method(line).is_some())
}

/// Strict Content-Length: digits only, around optional whitespace.
pub(super) fn parse_length(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Checks the raw header section (start line and header lines, without the final
/// CRLFCRLF) for what rsipstack would silently drop or misread.
pub(super) fn check_head(head: &[u8]) -> Result<(), MessageError> {
    let head =
        std::str::from_utf8(head).map_err(|_| malformed("header section is not valid utf-8"))?;
    // The same line split as rsipstack's parser, so both see the same lines.
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or_default();
    if has_ctl(start) {
        return Err(malformed("control character in the start line"));
    }
    check_start_line(start)?;
    let mut first = true;
    // Bytes of the header field being read, continuation lines included.
    let mut field = 0usize;
    for line in lines {
        if line.is_empty() {
            return Err(malformed("empty line inside the header section"));
        }
        if has_ctl(line) {
            return Err(malformed("control character in a header line"));
        }
        field = if line.starts_with([' ', '\t']) {
            field + line.len()
        } else {
            line.len()
        };
        if field > MAX_HEADER_FIELD {
            // Refused before rsipstack sees it: its parser logs a warning for every
            // continuation line past 4 KiB (one datagram, thousands of log lines).
            return Err(malformed("header field longer than 4096 bytes"));
        }
        if line.starts_with([' ', '\t']) {
            if first {
                return Err(malformed("continuation line before the first header"));
            }
            continue;
        }
        first = false;
        let Some((name, _)) = line.split_once(':') else {
            return Err(malformed("header line without a colon"));
        };
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(malformed("invalid header name"));
        }
    }
    Ok(())
}

pub(super) fn check_start_line(line: &str) -> Result<(), MessageError> {
    if let Some(status) = line.strip_prefix("SIP/2.0 ") {
        let code = status.split(' ').next().unwrap_or_default();
        let valid = code.len() == 3
            && code.bytes().all(|b| b.is_ascii_digit())
            && (b'1'..=b'6').contains(&code.as_bytes()[0]);
        return if valid {
            Ok(())
        } else {
            Err(malformed("invalid status code"))
        };
    }
    let Some(method) = request_line_method(line) else {
        return Err(malformed("invalid start line"));
    };
    if !line.ends_with(" SIP/2.0") {
        return Err(malformed("unsupported sip version"));
    }
    if method.parse::<Method>().is_err() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        // Methods are case-sensitive (RFC 3261 §7.1): "invite" is an unknown method.
        return Err(MessageError::UnknownMethod(clip(method, MAX_DETAIL)));
    }
    Ok(())
}

/// Makes the body agree with Content-Length (see [`parse`]).
pub(super) fn fix_body(msg: &mut SipMessage, available: &[u8]) -> Result<(), MessageError> {
    let mut declared = None;
    for header in headers(msg) {
        if let Header::ContentLength(h) = header {
            let value = parse_length(h.value().as_bytes())
                .ok_or(MessageError::BadHeader("Content-Length"))?;
            if declared.is_some_and(|seen| seen != value) {
                return Err(MessageError::BadHeader("Content-Length"));
            }
            declared = Some(value);
        }
    }
    let (headers, body) = match msg {
        SipMessage::Request(r) => (&mut r.headers, &mut r.body),
        SipMessage::Response(r) => (&mut r.headers, &mut r.body),
    };
    match declared {
        Some(len) if available.len() < len => Err(malformed("body shorter than content-length")),
        // rsipstack already cut the body to Content-Length; keep it that way explicitly.
        Some(len) => {
            body.truncate(len);
            Ok(())
        }
        None => {
            if !available.is_empty() {
                *body = available.to_vec();
                headers.push(ContentLength::new(available.len().to_string()).into());
            }
            Ok(())
        }
    }
}

pub(super) fn headers(msg: &SipMessage) -> impl Iterator<Item = &Header> {
    match msg {
        SipMessage::Request(r) => r.headers.iter(),
        SipMessage::Response(r) => r.headers.iter(),
    }
}

/// Exactly one header of this kind, else Missing or Malformed (duplicates make the
/// message ambiguous: two layers could read two different Call-IDs).
pub(super) fn exactly_one<'a, T>(
    msg: &'a SipMessage,
    name: &'static str,
    pick: impl Fn(&'a Header) -> Option<&'a T>,
) -> Result<&'a T, MessageError> {
    let mut found = headers(msg).filter_map(pick);
    let first = found.next().ok_or(MessageError::MissingHeader(name))?;
    if found.next().is_some() {
        return Err(MessageError::Malformed(format!("duplicate {name} header")));
    }
    Ok(first)
}

/// Via, From, To, Call-ID, CSeq; a From tag and a Via branch when `request`. Returns the
/// CSeq for the request checks.
pub(super) fn check_common_headers(
    msg: &SipMessage,
    request: bool,
) -> Result<rsipstack::sip::typed::CSeq, MessageError> {
    let via = headers(msg)
        .find_map(|h| match h {
            Header::Via(v) => Some(v),
            _ => None,
        })
        .ok_or(MessageError::MissingHeader("Via"))?;
    let top = via
        .first_value()
        .and_then(|v| v.typed())
        .map_err(|_| MessageError::BadHeader("Via"))?;
    if request && top.branch().is_none_or(|b| b.value().is_empty()) {
        return Err(MessageError::BadHeader("Via"));
    }

    let from = exactly_one(msg, "From", |h| match h {
        Header::From(v) => Some(v),
        _ => None,
    })?
    .typed()
    .map_err(|_| MessageError::BadHeader("From"))?;
    if request && from.tag().is_none_or(|t| t.value().is_empty()) {
        return Err(MessageError::BadHeader("From"));
    }
    exactly_one(msg, "To", |h| match h {
        Header::To(v) => Some(v),
        _ => None,
    })?
    .typed()
    .map_err(|_| MessageError::BadHeader("To"))?;

    let call_id = exactly_one(msg, "Call-ID", |h| match h {
        Header::CallId(v) => Some(v),
        _ => None,
    })?;
    if call_id.value().trim().is_empty() {
        return Err(MessageError::BadHeader("Call-ID"));
    }

    let cseq = exactly_one(msg, "CSeq", |h| match h {
        Header::CSeq(v) => Some(v),
        _ => None,
    })?
    .typed()
    .map_err(|_| MessageError::BadHeader("CSeq"))?;
    Ok(cseq)
}

pub(super) fn check_request_headers(method: Method, msg: &SipMessage) -> Result<(), MessageError> {
    let cseq = check_common_headers(msg, true)?;
    // RFC 3261 §8.1.1.5: the number is below 2**31 and the method is the request's.
    if cseq.seq >= 1 << 31 || cseq.method != method {
        return Err(MessageError::BadHeader("CSeq"));
    }
    let mut max_forwards = headers(msg).filter_map(|h| match h {
        Header::MaxForwards(v) => Some(v),
        _ => None,
    });
    if let Some(mf) = max_forwards.next() {
        let valid = parse_length(mf.value().as_bytes()).is_some_and(|n| n <= 255);
        if !valid || max_forwards.next().is_some() {
            return Err(MessageError::BadHeader("Max-Forwards"));
        }
    }
    Ok(())
}

/// Whether a To/From value carries a `tag` header parameter (parameters inside `<...>`
/// belong to the URI and do not count).
pub(super) fn has_header_tag(value: &str) -> bool {
    let params = match value.rfind('>') {
        Some(gt) => &value[gt + 1..],
        None => value,
    };
    params
        .split(';')
        .skip(1)
        .any(|p| p.trim().to_ascii_lowercase().starts_with("tag="))
}
