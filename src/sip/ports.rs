//! The ports of the SIP layer: what `src/sip` needs from the rest of tsps, as traits.
//! The shards see the actors only through [`Actors`] (implemented once, in
//! `platform.rs`), so the shape of the actor registry can change without touching the
//! SIP core; the sockets through [`Transmit`] and [`Intake`] (implemented in
//! `src/transport/ports.rs`); the provisioned directory through [`DirectorySource`].

use super::Peer;
use actix::prelude::*;
use bytes::Bytes;
use rsipstack::sip::SipMessage;
use std::net::SocketAddr;
use std::time::Duration;
use tsps_actors::call::CallSetup;
use tsps_actors::ports::LegEvent;
use tsps_actors::presence::PresenceActor;
use tsps_actors::user::UserActor;
use tsps_actors::{TenantId, UserId};

/// The provisioned directory, read as an immutable snapshot (the actors' port).
pub use tsps_actors::tenant::DirectorySource;

/// The actors the SIP layer talks to: users (registrations, bindings, watched state),
/// each tenant's presence actor, and new calls.
pub trait Actors: Send + Sync {
    /// The live actor of a user (None: not provisioned, or gone).
    fn user(&self, id: UserId) -> Option<Addr<UserActor>>;
    /// The presence actor of a tenant.
    fn presence(&self, tenant: TenantId) -> Addr<PresenceActor>;
    /// Starts a call actor on the current Arbiter (the caller's shard thread, so that
    /// its leg commands come back without crossing threads); returns where its leg
    /// events go.
    fn start_call(&self, setup: CallSetup) -> Recipient<LegEvent>;
}

/// Sending SIP bytes to a peer, and what the SIP layer may know of connections. The
/// transports (`src/transport`) implement it; no SIP state machine sends by itself.
pub trait Transmit: Send + Sync {
    /// Sends without waiting (callable from any thread).
    fn send(&self, peer: Peer, data: Bytes);
    /// A stream connection to `addr` is open.
    fn is_connected(&self, addr: SocketAddr) -> bool;
    /// Keeps the connection from `addr` open for at least this long (a registration
    /// that can only be reached through it).
    fn keep_alive(&self, addr: SocketAddr, for_at_least: Duration);
}

/// A shard's intake: its own UDP socket (read on the shard's thread) and the checks
/// every received message passes before a shard sees it (parse, limits, stateless
/// error answers).
pub trait Intake: Transmit {
    /// The UDP socket of shard `shard`, once (None: taken, or no UDP).
    fn take_udp_socket(&self, shard: usize) -> Option<std::net::UdpSocket>;
    /// Parses received bytes; malformed input is answered or dropped here.
    fn accept_bytes(&self, bytes: &[u8], peer: Peer) -> Option<SipMessage>;
}
