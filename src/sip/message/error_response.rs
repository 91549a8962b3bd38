//! Error responses for requests that could not be parsed, built from their raw lines.

use super::*;

/// When `parse` fails on something that looks like a request, build the error response
/// bytes (status and reason from [`MessageError::status`]) by scanning the raw header
/// lines for Via (all), From, To, Call-ID, CSeq; add a To tag if absent. None if the start
/// line is not a request line or any of those five headers cannot be found (then the
/// caller drops the datagram), for responses (never answer a response) and for ACK (never
/// answered either). The To tag is derived from the request, so a retransmission gets the
/// same response.
pub fn error_response_for(bytes: &[u8], err: &MessageError) -> Option<Vec<u8>> {
    let bytes = &bytes[leading_crlf(bytes)..];
    let head = &bytes[..find_head_end(bytes).unwrap_or(bytes.len())];
    let mut lines = head.split(|&b| b == b'\n').map(strip_cr);
    let start = std::str::from_utf8(lines.next()?).ok()?;
    let method = request_line_method(start)?;
    if method == "ACK" {
        return None;
    }

    let mut vias: Vec<String> = Vec::new();
    let mut from = None;
    let mut to = None;
    let mut call_id = None;
    let mut cseq = None;
    // Unfold first so a folded Via or To is copied whole.
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut last_usable = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        // A line we cannot copy faithfully (not UTF-8, or a control character that a
        // peer could read as a line break) is as good as absent, and so is the header
        // it continues: half a Via is worse than none.
        let Some(line) = std::str::from_utf8(line).ok().filter(|l| !has_ctl(l)) else {
            if last_usable && matches!(line.first(), Some(b' ' | b'\t')) {
                headers.pop();
            }
            last_usable = false;
            continue;
        };
        if line.starts_with([' ', '\t']) {
            if let (true, Some((_, value))) = (last_usable, headers.last_mut()) {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        last_usable = false;
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            last_usable = true;
        }
    }
    for (name, value) in headers {
        let value = value.trim().to_owned();
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "via" | "v" => vias.push(value),
            "from" | "f" if from.is_none() => from = Some(value),
            "to" | "t" if to.is_none() => to = Some(value),
            "call-id" | "i" if call_id.is_none() => call_id = Some(value),
            "cseq" if cseq.is_none() => cseq = Some(value),
            _ => {}
        }
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if vias.is_empty() {
        return None;
    }
    let to = if has_header_tag(&to) {
        to
    } else {
        let mut hash = Sha256::new();
        for part in [&call_id, &from, &vias[0], &cseq] {
            hash.update(part.as_bytes());
            hash.update(b"\n");
        }
        format!("{to};tag={}", hex::encode(&hash.finalize()[..8]))
    };

    let (code, reason) = err.status();
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for via in &vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    out.push_str(&format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    ));
    Some(out.into_bytes())
}
