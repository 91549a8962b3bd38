//! The shard's transaction plumbing: the table of live transactions (RFC 3261 §17,
//! the state machines in `sip::transaction`), executing their actions (transmit,
//! schedule, terminate), matching responses to client transactions, and the timer tick.

use super::b2bua::{non2xx_ack, Purpose};
use super::*;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct TxKey {
    pub(super) branch: String,
    pub(super) method: Method,
    pub(super) server: bool,
}

pub(super) struct TxEntry {
    pub(super) tx: Transaction,
    pub(super) peer: Peer,
    pub(super) gen: u64,
    pub(super) owner: Option<(LegId, Purpose)>,
    /// Server transactions: the request, to build responses from.
    pub(super) request: Option<Arc<Request>>,
}

pub(super) struct TimerRef {
    pub(super) key: TxKey,
    pub(super) gen: u64,
    pub(super) timer: Timer,
}

impl Shard {
    pub(super) fn add_tx(
        &mut self,
        key: TxKey,
        tx: Transaction,
        peer: Peer,
        owner: Option<(LegId, Purpose)>,
        request: Option<Arc<Request>>,
    ) -> u64 {
        self.gen += 1;
        let gen = self.gen;
        self.txs.insert(
            key,
            TxEntry {
                tx,
                peer,
                gen,
                owner,
                request,
            },
        );
        gen
    }

    /// Executes transmissions and timers; returns what the owner must handle.
    pub(super) fn run(&mut self, key: &TxKey, actions: Actions) -> Vec<Action> {
        let Some(entry) = self.txs.get(key) else {
            return Vec::new();
        };
        let (peer, gen) = (entry.peer, entry.gen);
        let now = Instant::now();
        let mut rest = Vec::new();
        for a in actions {
            match a {
                Action::Transmit(b) => self.ctx.transports.send(peer, b),
                Action::Schedule(timer, d) => self.timers.schedule(
                    now + d,
                    TimerRef {
                        key: key.clone(),
                        gen,
                        timer,
                    },
                ),
                Action::Terminated => {
                    self.txs.remove(key);
                }
                other => rest.push(other),
            }
        }
        rest
    }

    pub(super) fn start_client(
        &mut self,
        key: TxKey,
        kind: Kind,
        bytes: Vec<u8>,
        peer: Peer,
        owner: Option<(LegId, Purpose)>,
    ) {
        let (tx, actions) = Transaction::client(kind, Bytes::from(bytes), peer.proto.is_reliable());
        self.add_tx(key.clone(), tx, peer, owner, None);
        self.run(&key, actions);
    }

    /// Sends a response on a server transaction.
    pub(super) fn respond(
        &mut self,
        key: &TxKey,
        code: u16,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) {
        let Some(entry) = self.txs.get_mut(key) else {
            return;
        };
        let Some(req) = entry.request.clone() else {
            return;
        };
        let bytes = build::response(&req, Some(entry.peer.addr), code, to_tag, extra, body);
        let actions = entry.tx.respond(code, Bytes::from(bytes));
        if code >= 200 {
            // The transaction lingers for its timers (up to 64*T1) but only ever resends
            // the response bytes it keeps: the parsed request can go now.
            entry.request = None;
        }
        let rest = self.run(key, actions);
        debug_assert!(rest.is_empty());
    }

    /// A response sent without a transaction (483, 482 and other refusals).
    pub(super) fn respond_stateless(&self, req: &Request, peer: Peer, code: u16) {
        let tag = build::token();
        let bytes = build::response(req, Some(peer.addr), code, Some(&tag), &[], None);
        self.ctx.transports.send(peer, Bytes::from(bytes));
    }

    pub(super) fn on_tick(&mut self) {
        self.subscriptions_tick();
        for t in self.timers.expired(Instant::now()) {
            let Some(entry) = self.txs.get_mut(&t.key) else {
                continue;
            };
            if entry.gen != t.gen {
                continue;
            }
            let owner = entry.owner;
            let actions = entry.tx.on_timer(t.timer);
            for event in self.run(&t.key, actions) {
                match event {
                    Action::Timeout if owner.is_none() => self.on_uac_timeout(&t.key),
                    Action::Timeout => self.on_client_timeout(owner),
                    Action::AckTimeout => {
                        if let Some((leg, Purpose::Initial)) = owner {
                            info!(%leg, "no ACK for our 2xx: ending the leg");
                            self.notify(leg, LegEventKind::Hangup);
                            self.send_bye(leg);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Shard {
    pub(super) fn on_response(&mut self, resp: Response) {
        let v = View::new(&resp.headers);
        let Some(branch) = v.branch else {
            return;
        };
        let (Some(cseq), Some(method)) = (v.cseq, v.method()) else {
            return;
        };
        let code = resp.status_code.code();
        let key = TxKey {
            branch: branch.to_string(),
            method,
            server: false,
        };
        let Some(entry) = self.txs.get_mut(&key) else {
            // A 2xx retransmitted after the transaction ended: ACK it again.
            if method == Method::Invite && (200..300).contains(&code) {
                self.reack(&v);
            }
            return;
        };
        let owner = entry.owner;
        let ack = || {
            owner
                .and_then(|(leg, purpose)| Some((self.legs.get(&leg)?, purpose)))
                .map(|(l, purpose)| non2xx_ack(l, purpose, &v, cseq))
                .unwrap_or_default()
        };
        let actions = entry.tx.on_response(code, ack);
        for event in self.run(&key, actions) {
            if let Action::Deliver { code } = event {
                if owner.is_none() {
                    self.on_uac_response(&key, code);
                }
                self.on_client_response(owner, &resp, &v, code, cseq);
            }
        }
    }
}
