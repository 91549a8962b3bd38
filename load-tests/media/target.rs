//! What the clients send to, one of three per measurement:
//! - `blackhole`: one socket nobody reads (the kernel drops what overflows its buffer):
//!   the generator's cost alone;
//! - `echo`: per participant a socket and a task on the engine's runtime that sends every
//!   packet back (no decode, no mix, no timer): the cost of moving the packets alone;
//! - `bridge`: conferences on tsps's `MediaEngine`, each participant answering the
//!   bridge's offer with PCMU, as a phone does after the re-INVITE.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tsps::media::sdp::{self, SdpError};
use tsps::media::MediaEngine;
use tsps_actors::ids::{CallId, LegId, TenantId};
use tsps_actors::ports::{Bridge, Media, MediaError};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How long a teardown may take before the run gives up on it.
const TEARDOWN_LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Blackhole,
    Echo,
    Bridge,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Blackhole => "blackhole",
            Mode::Echo => "echo",
            Mode::Bridge => "bridge",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    #[error("bridge: {0}")]
    Media(#[from] MediaError),
    #[error("the bridge's offer: {0}")]
    Offer(#[from] SdpError),
    #[error("{what} still running {limit:?} after the teardown")]
    Teardown { what: &'static str, limit: Duration },
}

pub struct Target {
    /// Where client `i` sends.
    pub addresses: Vec<SocketAddr>,
    held: Held,
}

enum Held {
    /// Kept open: with no socket on the port, each packet would cost an ICMP error.
    Sink {
        _socket: std::net::UdpSocket,
    },
    Echo {
        tasks: JoinSet<()>,
        cancel: CancellationToken,
    },
    Bridges(Vec<Box<dyn Bridge>>),
}

/// Sets up `mode` for clients on `client_ports`, `per_conference` to a conference.
/// `io` is the engine's runtime (the echo's tasks run there too).
pub fn setup(
    mode: Mode,
    client_ports: &[u16],
    per_conference: usize,
    io: &Handle,
    engine: &MediaEngine,
) -> Result<Target, TargetError> {
    match mode {
        Mode::Blackhole => {
            let sink = std::net::UdpSocket::bind((LOCAL, 0))?;
            let address = sink.local_addr()?;
            Ok(Target {
                addresses: vec![address; client_ports.len()],
                held: Held::Sink { _socket: sink },
            })
        }
        Mode::Echo => {
            let cancel = CancellationToken::new();
            let mut tasks = JoinSet::new();
            let mut addresses = Vec::with_capacity(client_ports.len());
            for _ in client_ports {
                let socket = std::net::UdpSocket::bind((LOCAL, 0))?;
                socket.set_nonblocking(true)?;
                addresses.push(socket.local_addr()?);
                let socket = {
                    let _in_io = io.enter();
                    UdpSocket::from_std(socket)?
                };
                tasks.spawn_on(echo(socket, cancel.clone()), io);
            }
            Ok(Target {
                addresses,
                held: Held::Echo { tasks, cancel },
            })
        }
        Mode::Bridge => {
            let mut bridges = Vec::new();
            let mut addresses = Vec::with_capacity(client_ports.len());
            for conference in client_ports.chunks(per_conference.max(1)) {
                let mut bridge = engine.open_bridge(TenantId::for_test(1), CallId::new())?;
                for client_port in conference {
                    let leg = LegId::new();
                    let offer = bridge.offer(leg)?;
                    let port = sdp::parse(&offer)?.port;
                    bridge.answer(leg, answer(*client_port).as_bytes())?;
                    addresses.push(SocketAddr::new(engine.settings().address, port));
                }
                bridges.push(bridge);
            }
            Ok(Target {
                addresses,
                held: Held::Bridges(bridges),
            })
        }
    }
}

/// A phone's answer to the bridge's offer: PCMU (and telephone-event), sendrecv.
fn answer(port: u16) -> String {
    format!(
        "v=0\r\no=load 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// Sends every datagram back to where it came from.
async fn echo(socket: UdpSocket, cancel: CancellationToken) {
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(_) => {
                    tokio::task::yield_now().await;
                    continue;
                }
            },
        };
        // As the bridge does: a full socket buffer loses the packet, nothing waits.
        let _ = socket.try_send_to(&buf[..n], from);
    }
}

impl Target {
    /// Closes everything and waits (bounded) until its tasks have ended.
    pub async fn teardown(self, engine: &MediaEngine) -> Result<(), TargetError> {
        let deadline = Instant::now() + TEARDOWN_LIMIT;
        match self.held {
            Held::Sink { .. } => Ok(()),
            Held::Echo { mut tasks, cancel } => {
                cancel.cancel();
                while let Ok(Some(_)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
                }
                if tasks.is_empty() {
                    Ok(())
                } else {
                    tasks.abort_all();
                    Err(TargetError::Teardown {
                        what: "echo tasks",
                        limit: TEARDOWN_LIMIT,
                    })
                }
            }
            Held::Bridges(bridges) => {
                drop(bridges);
                // The bridges' tasks notice their cancellation within a tick.
                while engine.tasks() > 0 {
                    if Instant::now() >= deadline {
                        return Err(TargetError::Teardown {
                            what: "bridge tasks",
                            limit: TEARDOWN_LIMIT,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_pcmu_to_the_clients_port() {
        let peer = sdp::parse(answer(40002).as_bytes()).unwrap();
        assert_eq!(peer.port, 40002);
        assert_eq!(peer.address, LOCAL);
        assert_eq!(peer.codec(), Some(tsps::media::g711::Codec::Pcmu));
        assert_eq!(peer.telephone_event, Some(101));
    }
}
