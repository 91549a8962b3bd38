//! The SIP layer's transport ports ([`Transmit`], [`Intake`]) on [`Transports`], and
//! the transports' [`Dispatch`] on the shards.

use super::{Dispatch, Transports};
use crate::sip::ports::{Intake, Transmit};
use crate::sip::shard::ShardPool;
use crate::sip::Peer;
use bytes::Bytes;
use rsipstack::sip::SipMessage;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

impl Transmit for Arc<Transports> {
    fn send(&self, peer: Peer, data: Bytes) {
        Transports::send(self, peer, data)
    }

    fn is_connected(&self, addr: SocketAddr) -> bool {
        Transports::is_connected(self, addr)
    }

    fn keep_alive(&self, addr: SocketAddr, for_at_least: Duration) {
        Transports::keep_alive(self, addr, for_at_least)
    }
}

impl Intake for Arc<Transports> {
    fn take_udp_socket(&self, shard: usize) -> Option<std::net::UdpSocket> {
        Transports::take_udp_socket(self, shard)
    }

    fn accept_bytes(&self, bytes: &[u8], peer: Peer) -> Option<SipMessage> {
        Transports::accept_bytes(self, bytes, peer)
    }
}

impl Dispatch for ShardPool {
    fn dispatch(&self, msg: SipMessage, peer: Peer) {
        self.route(msg, peer)
    }
}
