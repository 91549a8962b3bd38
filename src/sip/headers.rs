//! Small, allocation-free accessors over rsipstack's header values. tsps reads the
//! handful of fields it routes on (tags, branch, CSeq, URIs) straight from the raw
//! values instead of building typed headers for every message.

use rsipstack::sip::{Header, Headers};

/// First value of the header named `name` (canonical name, case-insensitive).
pub fn first<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .map(Header::value)
}

/// Every value of `name`, comma-separated lists split (outside quotes and `<>`).
pub fn all<'a>(headers: &'a Headers, name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .flat_map(|h| split_list(h.value()))
        .collect()
}

/// Every value of `name` as written (no list splitting: for headers whose values
/// contain commas, such as Authorization and WWW-Authenticate).
pub fn each<'a>(headers: &'a Headers, name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .map(Header::value)
        .collect()
}

/// Splits a header list at top-level commas.
pub fn split_list(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                let part = v[start..i].trim();
                if !part.is_empty() {
                    out.push(part);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let part = v[start..].trim();
    if !part.is_empty() {
        out.push(part);
    }
    out
}

/// The header parameters of a name-addr/addr-spec value (after `>` when bracketed,
/// after the first `;` otherwise: RFC 3261 §20.10).
fn header_params(v: &str) -> &str {
    match v.rfind('>') {
        Some(i) => &v[i + 1..],
        None => match v.find(';') {
            Some(i) => &v[i..],
            None => "",
        },
    }
}

/// Value of header parameter `name` (`tag`, `expires`, `branch`, ...).
pub fn param<'a>(v: &'a str, name: &str) -> Option<&'a str> {
    param_in(header_params(v), name)
}

/// Parameter `name` in a `;a=b;c` list.
pub fn param_in<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').find_map(|p| {
        let p = p.trim();
        let (k, val) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().trim_matches('"'))
    })
}

/// The URI of a name-addr (`"Bob" <sip:b@h>;tag=1` → `sip:b@h`) or addr-spec.
pub fn uri(v: &str) -> &str {
    if let (Some(a), Some(b)) = (v.find('<'), v.rfind('>')) {
        if a < b {
            return v[a + 1..b].trim();
        }
    }
    v.split(';').next().unwrap_or(v).trim()
}

/// Display name of a name-addr, without quotes.
pub fn display_name(v: &str) -> Option<&str> {
    let i = v.find('<')?;
    let d = v[..i].trim().trim_matches('"').trim();
    (!d.is_empty()).then_some(d)
}

/// User part of a SIP URI (`sip:1001@a.test;transport=udp` → `1001`).
pub fn uri_user(u: &str) -> Option<&str> {
    let rest = strip_scheme(u);
    let at = rest.find('@')?;
    let user = &rest[..at];
    Some(
        user.split(';')
            .next()
            .unwrap_or(user)
            .split(':')
            .next()
            .unwrap_or(user),
    )
}

/// Host part of a SIP URI, without port or parameters; IPv6 brackets removed.
pub fn uri_host(u: &str) -> &str {
    let hp = uri_hostport(u);
    if let Some(stripped) = hp.strip_prefix('[') {
        return stripped.split(']').next().unwrap_or(stripped);
    }
    hp.split(':').next().unwrap_or(hp)
}

/// `host[:port]` of a SIP URI.
pub fn uri_hostport(u: &str) -> &str {
    let rest = strip_scheme(u);
    let rest = match rest.find('@') {
        Some(i) => &rest[i + 1..],
        None => rest,
    };
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    rest[..end].trim()
}

/// Port of a SIP URI if given.
pub fn uri_port(u: &str) -> Option<u16> {
    let hp = uri_hostport(u);
    let after = match hp.rfind(']') {
        Some(i) => &hp[i + 1..],
        None => hp,
    };
    after.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// URI parameter (`transport` in `sip:a@h;transport=tcp`).
pub fn uri_param<'a>(u: &'a str, name: &str) -> Option<&'a str> {
    let rest = strip_scheme(u);
    let i = rest.find(';')?;
    let params = &rest[i..];
    let params = params.split(['?', '>']).next().unwrap_or(params);
    param_in(params, name)
}

fn strip_scheme(u: &str) -> &str {
    let u = u.trim();
    u.strip_prefix("sips:")
        .or_else(|| u.strip_prefix("sip:"))
        .or_else(|| u.strip_prefix("tel:"))
        .unwrap_or(u)
}

/// `CSeq: 42 INVITE` → (42, "INVITE").
pub fn cseq(v: &str) -> Option<(u32, &str)> {
    let mut it = v.split_whitespace();
    let n = it.next()?.parse().ok()?;
    let m = it.next()?;
    Some((n, m))
}

/// The `branch` parameter of a Via value.
pub fn via_branch(v: &str) -> Option<&str> {
    param_in(v.split_once(';').map(|(_, p)| p).unwrap_or(""), "branch")
}

/// `sent-by` (host[:port]) of a Via value: `SIP/2.0/UDP 10.0.0.1:5060;branch=..`.
pub fn via_sent_by(v: &str) -> Option<&str> {
    let mut it = v.split_whitespace();
    let _proto = it.next()?;
    let rest = it.next()?;
    Some(rest.split(';').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_parts() {
        let v = r#""Bob, Jr" <sip:1002@a.test;transport=tcp>;tag=abc;expires=60"#;
        assert_eq!(uri(v), "sip:1002@a.test;transport=tcp");
        assert_eq!(param(v, "tag"), Some("abc"));
        assert_eq!(param(v, "expires"), Some("60"));
        assert_eq!(param(v, "transport"), None);
        assert_eq!(display_name(v), Some("Bob, Jr"));
        assert_eq!(uri_user(uri(v)), Some("1002"));
        assert_eq!(uri_host(uri(v)), "a.test");
        assert_eq!(uri_param(uri(v), "transport"), Some("tcp"));
        let bare = "sip:1001@127.0.0.1:5062;tag=x";
        assert_eq!(param(bare, "tag"), Some("x"));
        assert_eq!(uri(bare), "sip:1001@127.0.0.1:5062");
        assert_eq!(uri_port(uri(bare)), Some(5062));
        assert_eq!(uri_host("sip:[::1]:5060"), "::1");
        assert_eq!(uri_port("sip:[::1]:5060"), Some(5060));
        assert_eq!(uri_user("sip:a.test"), None);
    }

    #[test]
    fn lists_and_via() {
        assert_eq!(
            split_list(r#"<sip:a@h>;expires=1, "x,y" <sip:b@h>"#),
            vec!["<sip:a@h>;expires=1", r#""x,y" <sip:b@h>"#]
        );
        let via = "SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK-1";
        assert_eq!(via_branch(via), Some("z9hG4bK-1"));
        assert_eq!(via_sent_by(via), Some("127.0.0.1:5060"));
        assert_eq!(cseq("7 INVITE"), Some((7, "INVITE")));
        assert_eq!(cseq("x INVITE"), None);
    }
}
