//! Parsing the digest header values (credentials and challenges).

use super::*;

/// Parses an Authorization / Proxy-Authorization header value (`Digest username="..", ...`).
/// A missing `algorithm` means MD5 (RFC 2617); `qop` requires `nc` (8 hex digits) and
/// `cnonce`.
pub fn parse_credentials(value: &str) -> Result<Credentials, DigestError> {
    let params = AuthParams::parse(value)?;
    let algorithm = match params.get("algorithm") {
        Some(a) => Algorithm::from_param(a)?,
        None => Algorithm::Md5,
    };
    let qop = params.get("qop").map(str::to_owned);
    let nc = params.get("nc").map(str::to_owned);
    let cnonce = params.get("cnonce").map(str::to_owned);
    if qop.is_some() {
        let nc = nc.as_deref().ok_or(DigestError::MissingParam("nc"))?;
        if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DigestError::InvalidParam("nc"));
        }
        if cnonce.is_none() {
            return Err(DigestError::MissingParam("cnonce"));
        }
    }
    Ok(Credentials {
        username: params.require("username")?.to_owned(),
        realm: params.require("realm")?.to_owned(),
        nonce: params.require("nonce")?.to_owned(),
        uri: params.require("uri")?.to_owned(),
        response: params.require("response")?.to_owned(),
        algorithm,
        qop,
        nc,
        cnonce,
        opaque: params.get("opaque").map(str::to_owned),
    })
}

/// Parses a WWW-Authenticate / Proxy-Authenticate header value holding one digest
/// challenge. A missing `algorithm` means MD5.
pub fn parse_challenge(value: &str) -> Result<Challenge, DigestError> {
    let params = AuthParams::parse(value)?;
    let algorithm = match params.get("algorithm") {
        Some(a) => Algorithm::from_param(a)?,
        None => Algorithm::Md5,
    };
    let qop = params
        .get("qop")
        .map(|q| {
            q.split(',')
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Challenge {
        realm: params.require("realm")?.to_owned(),
        nonce: params.require("nonce")?.to_owned(),
        algorithm,
        qop,
        opaque: params.get("opaque").map(str::to_owned),
        stale: params
            .get("stale")
            .is_some_and(|s| s.eq_ignore_ascii_case("true")),
    })
}

/// Attacker-controlled text going into an error: keep it short.
pub(super) fn clip(value: &str) -> String {
    value.chars().take(32).collect()
}

/// Parameter names whose repetition makes a header ambiguous, so it is refused.
pub(super) const SINGLE_PARAMS: [&str; 12] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "qop",
    "nc",
    "cnonce",
    "opaque",
    "stale",
    "domain",
];

/// `Digest` followed by comma-separated `name=value` pairs; names lowercased, values
/// unquoted.
pub(super) struct AuthParams(Vec<(String, String)>);

impl AuthParams {
    fn parse(value: &str) -> Result<Self, DigestError> {
        let value = value.trim_start();
        let scheme_end = value
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(value.len());
        let scheme = &value[..scheme_end];
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest(clip(scheme)));
        }
        let rest = &value[scheme_end..];
        let bytes = rest.as_bytes();
        let mut params = Vec::new();
        let mut i = 0;
        // Each round consumes at least one byte or returns, so the loop is bounded by
        // the input length.
        loop {
            i = skip_ws(bytes, i);
            if i == bytes.len() {
                break;
            }
            let start = i;
            while i < bytes.len() && is_token(bytes[i]) {
                i += 1;
            }
            if i == start {
                return Err(DigestError::Syntax("expected a parameter name"));
            }
            let name = rest[start..i].to_ascii_lowercase();
            i = skip_ws(bytes, i);
            if bytes.get(i) != Some(&b'=') {
                return Err(DigestError::Syntax("expected '=' after a parameter name"));
            }
            i = skip_ws(bytes, i + 1);
            let value = if bytes.get(i) == Some(&b'"') {
                let (value, used) = unquote(&rest[i + 1..])?;
                i += 1 + used;
                value
            } else {
                let start = i;
                // Lenient token: anything up to a delimiter, so unquoted URIs still parse.
                while i < bytes.len() && !matches!(bytes[i], b',' | b'"') && !is_ws(bytes[i]) {
                    i += 1;
                }
                if i == start {
                    return Err(DigestError::Syntax("expected a parameter value"));
                }
                rest[start..i].to_owned()
            };
            params.push((name, value));
            i = skip_ws(bytes, i);
            match bytes.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => return Err(DigestError::Syntax("expected ',' between parameters")),
            }
        }
        for name in SINGLE_PARAMS {
            if params.iter().filter(|(n, _)| n == name).count() > 1 {
                return Err(DigestError::DuplicateParam(name));
            }
        }
        Ok(Self(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &'static str) -> Result<&str, DigestError> {
        self.get(name).ok_or(DigestError::MissingParam(name))
    }
}

pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(super) fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_ws(bytes[i]) {
        i += 1;
    }
    i
}

/// RFC 3261 token characters.
pub(super) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Reads a quoted-string body (after the opening quote): the unescaped value and the
/// number of bytes used, closing quote included.
pub(super) fn unquote(s: &str) -> Result<(String, usize), DigestError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((idx, c)) = chars.next() {
        match c {
            '"' => return Ok((out, idx + 1)),
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(DigestError::Syntax("unterminated quoted string"))
}
