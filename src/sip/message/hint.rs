//! The Call-ID of a raw message, read from its header lines without parsing it, so
//! that a datagram can be handed to the shard that owns its Call-ID before the work of
//! parsing is spent (one source's datagrams all arrive on one shard's socket). A hint
//! only: the parsed message is routed again by its parsed Call-ID.

/// The value of the first `Call-ID` (or compact `i`) header line, trimmed; None if
/// there is none in the header section or it is not UTF-8.
pub fn call_id_hint(bytes: &[u8]) -> Option<&str> {
    let head = match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &bytes[..end],
        None => bytes,
    };
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            let value = std::str::from_utf8(line[colon + 1..].trim_ascii()).ok()?;
            return (!value.is_empty()).then_some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::headers as h;
    use rsipstack::sip::SipMessage;

    /// On every fixture that parses, the hint is the parsed Call-ID.
    #[test]
    fn the_hint_is_the_parsed_call_id() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sip");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let Ok(msg) = super::super::parse(&bytes, 65_535) else {
                continue;
            };
            let headers = match &msg {
                SipMessage::Request(r) => &r.headers,
                SipMessage::Response(r) => &r.headers,
            };
            assert_eq!(
                call_id_hint(&bytes),
                h::first(headers, "Call-ID"),
                "{}",
                path.display()
            );
            checked += 1;
        }
        assert!(checked >= 8, "{checked} fixtures");
    }

    #[test]
    fn compact_form_and_garbage() {
        assert_eq!(
            call_id_hint(b"INVITE sip:a@b SIP/2.0\r\ni:  abc@h \r\nVia: x\r\n\r\nCall-ID: body"),
            Some("abc@h")
        );
        assert_eq!(
            call_id_hint(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"),
            None
        );
        assert_eq!(call_id_hint(b""), None);
        assert_eq!(call_id_hint(b"Call-ID: on the start line\r\n"), None);
        assert_eq!(call_id_hint(b"X\r\nCall-ID:\r\n\r\n"), None);
    }
}
