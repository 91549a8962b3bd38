//! Where a message came from or goes to: transport protocol and socket address.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn is_reliable(self) -> bool {
        self == Proto::Tcp
    }
    /// As written in a Via header.
    pub fn via_name(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub proto: Proto,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            proto: Proto::Udp,
            addr,
        }
    }
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            proto: Proto::Tcp,
            addr,
        }
    }
}

/// `udp:127.0.0.1:5062` / `tcp:[::1]:40000`: the form stored in a binding's `received`.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.proto {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        };
        write!(f, "{p}:{}", self.addr)
    }
}

impl FromStr for Peer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (p, a) = s.split_once(':').ok_or_else(|| format!("bad peer {s:?}"))?;
        let proto = match p {
            "udp" => Proto::Udp,
            "tcp" => Proto::Tcp,
            _ => return Err(format!("bad transport in {s:?}")),
        };
        let addr = a.parse().map_err(|_| format!("bad address in {s:?}"))?;
        Ok(Self { proto, addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for s in ["udp:127.0.0.1:5062", "tcp:[::1]:40000"] {
            assert_eq!(s.parse::<Peer>().unwrap().to_string(), s);
        }
        assert!("sctp:1.2.3.4:5".parse::<Peer>().is_err());
    }
}
