//! The transaction layer of one shard (RFC 3261 §17), sans-IO: the table of live
//! transactions and their timers, driven by [`Layer::handle`]`(now, input)`, which
//! returns what to transmit and what to deliver to the transaction user (the shard's
//! registrar, B2BUA and notifier). It owns no socket, task or clock: `now` comes in.
//!
//! Memory: a transaction that has sent or received its final response keeps only what
//! a retransmission needs: its compact key, the last response's bytes (server) or the
//! ACK of a non-2xx final (INVITE client), and the few bytes of its state. The request
//! a server transaction answers is dropped at its final response, a client's request
//! at the first final response, and an INVITE server's 2xx once its ACK has arrived.
//! Timers hold the key shared (`Rc`), not a copy, in a wheel of 10 ms slots
//! (`wheel.rs`).

use super::wheel::Wheel;
use super::{Action, Actions, Kind, State, Timer, Transaction};
use crate::sip::Peer;
use bytes::Bytes;
use rsipstack::sip::{Method, Request};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use tokio::time::Instant;

/// Bytes a transaction keeps (a response, a request, an ACK), in an allocation of
/// their exact size: the writers reserve room to grow, which a kept message must not
/// hold for the 32 s of its timers.
pub fn kept_bytes(bytes: Vec<u8>) -> Bytes {
    Bytes::from(bytes.into_boxed_slice())
}

/// A transaction's identity (RFC 3261 §17.1.3, §17.2.3): the top Via branch, the
/// method (ACK and CANCEL keep their own: ACK matches its INVITE's key, CANCEL has
/// its own transaction) and the side.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TxKey {
    pub branch: Box<str>,
    pub method: Method,
    pub server: bool,
}

impl TxKey {
    pub fn server(branch: &str, method: Method) -> Self {
        Self {
            branch: branch.into(),
            method,
            server: true,
        }
    }

    pub fn client(branch: &str, method: Method) -> Self {
        Self {
            branch: branch.into(),
            method,
            server: false,
        }
    }
}

/// One live transaction. `O` is what the transaction user tags it with (who owns it).
#[derive(Debug)]
pub struct Entry<O> {
    pub tx: Transaction,
    pub peer: Peer,
    gen: u64,
    pub owner: O,
    /// Server transactions: the request, to build responses from (until the final).
    pub request: Option<Arc<Request>>,
}

struct TimerRef {
    key: Rc<TxKey>,
    /// The transaction's generation (low 32 bits: a key reused within 2^32
    /// transactions of one shard, inside a timer's 32 s, cannot happen).
    gen: u32,
    timer: Timer,
}

/// What the transaction user or the network asks of the layer.
#[derive(Debug)]
pub enum Input<O> {
    /// A request arrived. A retransmission (or the ACK of a non-2xx final) of a
    /// transaction in the table is absorbed here; otherwise [`Output::Unmatched`].
    Request { key: TxKey, ack: bool },
    /// The TU takes a request that matched nothing: a new server transaction.
    NewServer {
        key: TxKey,
        peer: Peer,
        request: Arc<Request>,
        owner: O,
    },
    /// The TU sends a request: a new client transaction.
    NewClient {
        key: TxKey,
        kind: Kind,
        bytes: Bytes,
        peer: Peer,
        owner: O,
    },
    /// The TU answers on a server transaction (`bytes` built from its request).
    Respond { key: TxKey, code: u16, bytes: Bytes },
    /// A response arrived for a client transaction; `ack` is the ACK to send if it is a
    /// non-2xx final of an INVITE.
    Response {
        key: TxKey,
        code: u16,
        ack: Option<Bytes>,
    },
    /// The ACK for a 2xx this INVITE server transaction sent (matched by dialog).
    AckFor2xx { key: TxKey },
    /// Forget a server transaction without answering (a source that is ignored).
    Forget { key: TxKey },
    /// Time passed: fire the timers due at `now`.
    Tick,
}

/// What the shard must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Output<O> {
    Transmit {
        peer: Peer,
        bytes: Bytes,
    },
    /// A request that matched no transaction: the TU decides.
    Unmatched,
    /// A response for the TU (client transactions).
    Deliver {
        key: TxKey,
        owner: O,
        code: u16,
    },
    /// No final response in time (Timer B or F).
    Timeout {
        key: TxKey,
        owner: O,
    },
    /// Our 2xx was never acknowledged (Timer L without ACK).
    AckTimeout {
        owner: O,
    },
}

pub type Outputs<O> = Vec<Output<O>>;

/// The transactions of one shard.
pub struct Layer<O> {
    txs: HashMap<Rc<TxKey>, Entry<O>>,
    timers: Wheel<TimerRef>,
    gen: u64,
}

impl<O> Default for Layer<O> {
    fn default() -> Self {
        Self {
            txs: HashMap::new(),
            timers: Wheel::default(),
            gen: 0,
        }
    }
}

impl<O: Copy> Layer<O> {
    /// The one entry point: feeds `input` at `now`, returns what to do.
    pub fn handle(&mut self, now: Instant, input: Input<O>) -> Outputs<O> {
        self.timers.start(now);
        let mut out = Vec::new();
        match input {
            Input::Request { key, ack } => match self.txs.get_mut(&key) {
                Some(entry) => {
                    let actions = if ack {
                        entry.tx.on_ack()
                    } else {
                        entry.tx.on_retransmission()
                    };
                    self.run(now, &key, actions, &mut out);
                }
                None => out.push(Output::Unmatched),
            },
            Input::NewServer {
                key,
                peer,
                request,
                owner,
            } => {
                let kind = if key.method == Method::Invite {
                    Kind::InviteServer
                } else {
                    Kind::NonInviteServer
                };
                let tx = Transaction::server(kind, peer.proto.is_reliable());
                self.insert(key, tx, peer, owner, Some(request));
            }
            Input::NewClient {
                key,
                kind,
                bytes,
                peer,
                owner,
            } => {
                let (tx, actions) = Transaction::client(kind, bytes, peer.proto.is_reliable());
                let key = self.insert(key, tx, peer, owner, None);
                self.run(now, &key, actions, &mut out);
            }
            Input::Respond { key, code, bytes } => {
                if let Some(entry) = self.txs.get_mut(&key) {
                    let actions = entry.tx.respond(code, bytes);
                    if code >= 200 {
                        // The transaction lingers for its timers but only ever resends
                        // the response bytes it keeps: the parsed request goes now.
                        entry.request = None;
                    }
                    self.run(now, &key, actions, &mut out);
                }
            }
            Input::Response { key, code, ack } => {
                if let Some(entry) = self.txs.get_mut(&key) {
                    let actions = entry.tx.on_response(code, || ack.unwrap_or_default());
                    self.run(now, &key, actions, &mut out);
                } else {
                    out.push(Output::Unmatched);
                }
            }
            Input::AckFor2xx { key } => {
                if let Some(entry) = self.txs.get_mut(&key) {
                    let actions = entry.tx.on_ack();
                    self.run(now, &key, actions, &mut out);
                }
            }
            Input::Forget { key } => {
                self.txs.remove(&key);
            }
            Input::Tick => {
                for t in self.timers.expired(now) {
                    let Some(entry) = self.txs.get_mut(&*t.key) else {
                        continue;
                    };
                    if entry.gen as u32 != t.gen {
                        continue;
                    }
                    let actions = entry.tx.on_timer(t.timer);
                    self.run(now, &t.key, actions, &mut out);
                }
            }
        }
        out
    }

    fn insert(
        &mut self,
        key: TxKey,
        tx: Transaction,
        peer: Peer,
        owner: O,
        request: Option<Arc<Request>>,
    ) -> Rc<TxKey> {
        self.gen += 1;
        let key = Rc::new(key);
        self.txs.insert(
            key.clone(),
            Entry {
                tx,
                peer,
                gen: self.gen,
                owner,
                request,
            },
        );
        key
    }

    /// Executes a transaction's actions: transmissions and deliveries become outputs,
    /// timers go into the queue, a terminated transaction leaves the table.
    fn run(&mut self, now: Instant, key: &TxKey, actions: Actions, out: &mut Outputs<O>) {
        let Some((shared, entry)) = self.txs.get_key_value(key) else {
            return;
        };
        let (peer, gen, owner, shared) = (entry.peer, entry.gen, entry.owner, shared.clone());
        for a in actions {
            match a {
                Action::Transmit(bytes) => out.push(Output::Transmit { peer, bytes }),
                Action::Schedule(timer, d) => self.timers.schedule(
                    now + d,
                    TimerRef {
                        key: shared.clone(),
                        gen: gen as u32,
                        timer,
                    },
                ),
                Action::Terminated => {
                    self.txs.remove(key);
                }
                Action::Deliver { code } => out.push(Output::Deliver {
                    key: key.clone(),
                    owner,
                    code,
                }),
                Action::Timeout => out.push(Output::Timeout {
                    key: key.clone(),
                    owner,
                }),
                Action::AckTimeout => out.push(Output::AckTimeout { owner }),
            }
        }
    }

    /// A live transaction, for the TU to read (its state, owner, request, peer).
    pub fn get(&self, key: &TxKey) -> Option<&Entry<O>> {
        self.txs.get(key)
    }

    /// Re-tags a live transaction (the TU found out who owns it).
    pub fn set_owner(&mut self, key: &TxKey, owner: O) {
        if let Some(e) = self.txs.get_mut(key) {
            e.owner = owner;
        }
    }

    /// Live transactions and pending timers (for metrics and tests).
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn timers(&self) -> usize {
        self.timers.len()
    }
}

impl<O> Entry<O> {
    pub fn state(&self) -> State {
        self.tx.state
    }
}

#[cfg(test)]
mod tests;
