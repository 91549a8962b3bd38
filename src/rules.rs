//! Field rules shared by the provisioning document and the REST API. Each returns the
//! value to store (normalised where that is harmless, e.g. a lower-case domain) or a
//! reason in lower case. Pure: no I/O, no imports of the layers that use them.

use std::net::IpAddr;
use tsps_actors::model::DigestAlgorithm;

const MAX_NAME: usize = 200;

fn plain_text(value: &str, max: usize) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err("must not be empty".into());
    }
    if v.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if v.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(v.to_string())
}

/// A display name, tenant name or similar label.
pub fn name(value: &str) -> Result<String, String> {
    plain_text(value, MAX_NAME)
}

/// A DNS name: letters, digits and hyphens in dot-separated labels; lower-cased.
pub fn domain(value: &str) -> Result<String, String> {
    let v = value.trim().trim_end_matches('.').to_ascii_lowercase();
    if v.is_empty() || v.len() > 253 {
        return Err("must be a domain name of 1 to 253 characters".into());
    }
    for label in v.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(format!("{value:?} is not a valid domain name"));
        }
    }
    Ok(v)
}

pub fn time_zone(value: &str) -> Result<String, String> {
    value
        .parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_string())
        .map_err(|_| format!("{value:?} is not an IANA time zone name"))
}

/// 1 to 15 digits (an extension is dialled, so nothing else).
pub fn extension(value: &str) -> Result<String, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be digits".into());
    }
    if value.len() > 15 {
        return Err("must be at most 15 digits".into());
    }
    Ok(value.to_string())
}

/// A SIP user name usable unescaped in a URI: letters, digits and `-_.+`.
pub fn sip_username(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
    {
        return Err("may contain only letters, digits and - _ . +".into());
    }
    Ok(value.to_string())
}

pub fn portal_login(value: &str) -> Result<String, String> {
    sip_username(value)
}

/// Device passwords guard registrations and calls: at least 8 characters.
pub fn device_password(value: &str) -> Result<String, String> {
    if value.chars().count() < 8 {
        return Err("must be at least 8 characters".into());
    }
    if value.chars().count() > 128 {
        return Err("must be at most 128 characters".into());
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(value.to_string())
}

/// Portal passwords: the same length rule as device passwords.
pub fn portal_password(value: &str) -> Result<String, String> {
    device_password(value)
}

/// A platform operator's login: letters, digits and `-_.@`, 1 to 64 characters;
/// lower-cased (logins are matched in any case).
pub fn operator_login(value: &str) -> Result<String, String> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() || v.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    {
        return Err("may contain only letters, digits and - _ . @".into());
    }
    Ok(v)
}

/// An operator may do everything on the platform: 12 to 128 characters, no control
/// characters.
pub fn operator_password(value: &str) -> Result<String, String> {
    if value.chars().count() < 12 {
        return Err("must be at least 12 characters".into());
    }
    device_password(value)
}

/// E.164: `+`, a non-zero digit, then up to 14 more digits.
pub fn e164(value: &str) -> Result<String, String> {
    let digits = value
        .strip_prefix('+')
        .ok_or("must be E.164 and start with +")?;
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if !ok {
        return Err("must be E.164: + and 2 to 15 digits, not starting with 0".into());
    }
    Ok(value.to_string())
}

/// A trunk name: letters, digits and `-_.`.
pub fn trunk_name(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err("may contain only letters, digits and - _ .".into());
    }
    Ok(value.to_string())
}

/// An IP literal or a DNS name.
pub fn host(value: &str) -> Result<String, String> {
    let v = value.trim();
    if let Ok(ip) = v
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(ip.to_string());
    }
    domain(v).map_err(|_| format!("{value:?} is neither an ip address nor a host name"))
}

pub fn port(value: u16) -> Result<u16, String> {
    if value == 0 {
        Err("must be 1 to 65535".into())
    } else {
        Ok(value)
    }
}

/// An IP address or a CIDR block (`192.0.2.0/24`, `2001:db8::/48`), written back in
/// its canonical form. A trunk's sources name a carrier's servers, not a network:
/// blocks wider than /16 (IPv4) or /32 (IPv6), and the unspecified address, are
/// refused (`0.0.0.0/0` would take every call for one tenant).
pub fn source(value: &str) -> Result<String, String> {
    use tsps_actors::directory::SourceRange;
    let range: SourceRange = value.parse()?;
    let widest = if range.is_ipv4() { 16 } else { 32 };
    if range.prefix() < widest {
        return Err(format!(
            "{value:?} is too wide: a trunk's sources are its carrier's servers, at most a /{widest}"
        ));
    }
    if range.prefix() == if range.is_ipv4() { 32 } else { 128 }
        && value.split('/').next().is_some_and(|a| {
            a.trim()
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified())
        })
    {
        return Err(format!("{value:?} is no source address"));
    }
    Ok(range.to_string())
}

/// Digest algorithms for a device: each `MD5` or `SHA-256`, once; empty means the
/// platform's list.
pub fn digest_algorithms(list: &[String]) -> Result<Vec<DigestAlgorithm>, String> {
    let mut out = Vec::with_capacity(list.len());
    for name in list {
        let a = DigestAlgorithm::parse(name)
            .ok_or_else(|| format!("{name:?} is not a digest algorithm: MD5 or SHA-256"))?;
        if out.contains(&a) {
            return Err(format!("{} is listed twice", a.name()));
        }
        out.push(a);
    }
    Ok(out)
}

/// Outbound trunk credentials come as a pair.
pub fn credentials(username: Option<&str>, password: Option<&str>) -> Result<(), String> {
    match (username, password) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Ok(()),
        (None, None) => Ok(()),
        _ => Err("username and password must be given together, both non-empty".into()),
    }
}
