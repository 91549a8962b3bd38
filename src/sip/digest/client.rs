//! Client side: tsps answering a carrier trunk's challenge.

use super::*;

/// Client side (tsps authenticating toward a carrier trunk): given a WWW-/Proxy-Authenticate
/// header value, return the Authorization header value. Supports MD5 and SHA-256, qop=auth
/// or none. `nc` is the count of requests sent with this nonce, starting at 1.
pub fn answer_challenge(
    challenge: &str,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, DigestError> {
    let ch = parse_challenge(challenge)?;
    let use_qop = if ch.qop.is_empty() {
        false
    } else if ch.qop.iter().any(|q| q.eq_ignore_ascii_case("auth")) {
        true
    } else {
        return Err(DigestError::UnsupportedQop(clip(&ch.qop.join(","))));
    };
    let ha1 = ch.algorithm.ha1(username, &ch.realm, password);
    let nc = format!("{nc:08x}");
    let digest = response(
        ch.algorithm,
        &ha1,
        &ch.nonce,
        method,
        uri,
        use_qop.then_some((nc.as_str(), cnonce)),
    );
    let mut value = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{digest}\", algorithm={}",
        quote(username),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(uri),
        ch.algorithm,
    );
    if use_qop {
        value.push_str(&format!(", qop=auth, nc={nc}, cnonce={}", quote(cnonce)));
    }
    if let Some(opaque) = &ch.opaque {
        value.push_str(&format!(", opaque={}", quote(opaque)));
    }
    Ok(value)
}

/// RFC 3261 quoted-string. Control characters are dropped rather than escaped: a CR or
/// LF inside a header value would split the header.
pub(super) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
