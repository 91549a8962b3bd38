//! Address ranges: a trunk's inbound sources, the guard's trusted sources. Parsed once
//! from `192.0.2.1`, `192.0.2.0/24` or `2001:db8::/32`; the host bits of a block are
//! cleared, so two spellings of one block are equal.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceRange {
    net: IpAddr,
    prefix: u8,
}

impl SourceRange {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, String> {
        let max = Self::max_prefix(addr);
        if prefix > max {
            return Err(format!("prefix must be 0 to {max}"));
        }
        Ok(Self {
            net: mask(addr, prefix),
            prefix,
        })
    }

    /// One address.
    pub fn host(addr: IpAddr) -> Self {
        Self {
            net: addr,
            prefix: Self::max_prefix(addr),
        }
    }

    fn max_prefix(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.net.is_ipv4()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }

    /// Whether some address is in both.
    pub fn overlaps(&self, other: &SourceRange) -> bool {
        if self.net.is_ipv4() != other.net.is_ipv4() {
            return false;
        }
        let shorter = self.prefix.min(other.prefix);
        mask(self.net, shorter) == mask(other.net, shorter)
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for SourceRange {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let (addr, prefix) = match value.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (value.trim(), None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{value:?} is not an ip address or cidr block"))?;
        match prefix {
            None => Ok(Self::host(ip)),
            Some(p) => {
                let bits = p.parse::<u8>().map_err(|_| {
                    format!("{value:?}: prefix must be 0 to {}", Self::max_prefix(ip))
                })?;
                Self::new(ip, bits).map_err(|e| format!("{value:?}: {e}"))
            }
        }
    }
}

impl fmt::Display for SourceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == Self::max_prefix(self.net) {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.prefix)
        }
    }
}

impl Serialize for SourceRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SourceRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> SourceRange {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_blocks() {
        assert!(r("127.0.0.0/8").contains(ip("127.0.0.5")));
        assert!(r("127.0.0.5").contains(ip("127.0.0.5")));
        assert!(!r("127.0.0.6").contains(ip("127.0.0.5")));
        assert!(!r("::1").contains(ip("127.0.0.1")));
        assert!(r("::1/128").contains(ip("::1")));
        assert!(r("0.0.0.0/0").contains(ip("198.51.100.1")));
        assert!(r("192.0.2.0/24").contains(ip("::ffff:192.0.2.9")));
        assert!("garbage".parse::<SourceRange>().is_err());
        assert!("10.0.0.0/33".parse::<SourceRange>().is_err());
        assert!("10.0.0.0/x".parse::<SourceRange>().is_err());
    }

    #[test]
    fn host_bits_are_cleared_and_printed_back() {
        assert_eq!(r("192.0.2.77/24"), r("192.0.2.0/24"));
        assert_eq!(r("192.0.2.77/24").to_string(), "192.0.2.0/24");
        assert_eq!(r("192.0.2.77").to_string(), "192.0.2.77");
        assert_eq!(r("2001:db8::1/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn overlap() {
        assert!(r("127.0.0.0/8").overlaps(&r("127.0.0.1")));
        assert!(r("127.0.0.1").overlaps(&r("127.0.0.0/8")));
        assert!(r("0.0.0.0/0").overlaps(&r("203.0.113.5")));
        assert!(!r("127.0.0.1").overlaps(&r("127.0.0.2")));
        assert!(!r("192.0.2.0/25").overlaps(&r("192.0.2.128/25")));
        assert!(!r("::/0").overlaps(&r("127.0.0.1")));
    }
}
