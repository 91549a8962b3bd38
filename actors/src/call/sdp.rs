//! The little SDP the call actor needs: is an offer a hold, and the user's session
//! description with another media direction (hold and resume that tsps makes itself).
//! Everything else in a body is relayed unchanged.

use crate::ports::Body;
use std::sync::Arc;

/// True when the SDP puts the media on hold (RFC 3264 §8.4).
pub fn sdp_is_hold(sdp: &[u8]) -> bool {
    let text = String::from_utf8_lossy(sdp);
    text.lines().any(|l| {
        let l = l.trim();
        l == "a=sendonly" || l == "a=inactive" || l.starts_with("c=IN IP4 0.0.0.0")
    })
}

const DIRECTIONS: [&str; 4] = ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"];

/// `sdp` with every direction attribute set to `direction` (`sendonly`, `sendrecv`),
/// or one added at session level when it has none, and the origin's session version
/// raised by `bump` (RFC 3264 §8: a changed description has a higher version).
pub fn with_direction(sdp: &[u8], direction: &str, bump: u64) -> Body {
    let text = String::from_utf8_lossy(sdp);
    let has_direction = text.lines().any(|l| DIRECTIONS.contains(&l.trim()));
    let mut out = String::with_capacity(text.len() + 16);
    let mut added = false;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let eol = &line[content.len()..];
        let eol = if eol.is_empty() { "\r\n" } else { eol };
        if !has_direction && !added && content.starts_with("m=") {
            out.push_str(&format!("a={direction}{eol}"));
            added = true;
        }
        if DIRECTIONS.contains(&content.trim()) {
            out.push_str(&format!("a={direction}{eol}"));
        } else if let Some(origin) = content.strip_prefix("o=") {
            out.push_str(&format!("o={}{eol}", bump_version(origin, bump)));
        } else {
            out.push_str(line);
        }
    }
    if !has_direction && !added {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str("\r\n");
        }
        out.push_str(&format!("a={direction}\r\n"));
    }
    Arc::from(out.into_bytes())
}

/// `username sess-id sess-version nettype addrtype address` with the version raised.
fn bump_version(origin: &str, bump: u64) -> String {
    let mut parts: Vec<String> = origin.split(' ').map(str::to_string).collect();
    if let Some(v) = parts.get_mut(2) {
        if let Ok(n) = v.parse::<u64>() {
            *v = n.wrapping_add(bump).to_string();
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 10 20 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

    #[test]
    fn hold_detection() {
        assert!(sdp_is_hold(b"v=0\r\na=sendonly\r\n"));
        assert!(sdp_is_hold(b"v=0\r\nc=IN IP4 0.0.0.0\r\n"));
        assert!(!sdp_is_hold(b"v=0\r\na=sendrecv\r\n"));
    }

    #[test]
    fn direction_is_replaced_and_the_version_raised() {
        let held = with_direction(OFFER.as_bytes(), "sendonly", 1);
        let held = std::str::from_utf8(&held).unwrap();
        assert_eq!(
            held,
            OFFER
                .replace("a=sendrecv", "a=sendonly")
                .replace("o=- 10 20", "o=- 10 21")
        );
        assert!(sdp_is_hold(held.as_bytes()));
        let resumed = with_direction(held.as_bytes(), "sendrecv", 2);
        assert!(std::str::from_utf8(&resumed)
            .unwrap()
            .contains("o=- 10 23 "));
        assert!(!sdp_is_hold(&resumed));
    }

    #[test]
    fn direction_is_added_before_the_media_when_absent() {
        let plain = OFFER.replace("a=sendrecv\r\n", "");
        let held = with_direction(plain.as_bytes(), "sendonly", 1);
        let held = std::str::from_utf8(&held).unwrap();
        assert!(held.contains("t=0 0\r\na=sendonly\r\nm=audio"), "{held}");
        // Bare LF line ends stay as they are.
        let lf = with_direction(b"v=0\nm=audio 1 RTP/AVP 0\na=recvonly\n", "sendonly", 0);
        assert_eq!(&lf[..], b"v=0\nm=audio 1 RTP/AVP 0\na=sendonly\n");
    }
}
