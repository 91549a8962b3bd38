//! The shard's side of the transaction layer (`sip::transaction::layer`, sans-IO):
//! feeds it inputs at the current time, transmits what it says, and hands its
//! deliveries and timeouts to the transaction users here (registrar, B2BUA, notifier).

use super::b2bua::{non2xx_ack, Purpose};
use super::*;
pub(super) use crate::sip::transaction::layer::{kept_bytes, Input, Layer, Output, TxKey};

/// Who owns a transaction on this shard: a leg and why, or nobody (the registrar's
/// and the notifier's transactions, which are found by their key).
pub(super) type Owner = Option<(LegId, Purpose)>;

impl Shard {
    /// Feeds the transaction layer at the current time, transmits what it says and
    /// returns the rest (deliveries, timeouts, unmatched requests).
    pub(super) fn tx(&mut self, input: Input<Owner>) -> Vec<Output<Owner>> {
        let outputs = self.txs.handle(Instant::now(), input);
        let mut rest = Vec::new();
        for o in outputs {
            match o {
                Output::Transmit { peer, bytes } => self.ctx.transports.send(peer, bytes),
                other => rest.push(other),
            }
        }
        rest
    }

    /// A server transaction for a request no transaction matched.
    pub(super) fn add_server(&mut self, key: TxKey, peer: Peer, request: Arc<Request>) {
        self.tx(Input::NewServer {
            key,
            peer,
            request,
            owner: None,
        });
    }

    pub(super) fn start_client(
        &mut self,
        key: TxKey,
        kind: Kind,
        bytes: Vec<u8>,
        peer: Peer,
        owner: Owner,
    ) {
        self.tx(Input::NewClient {
            key,
            kind,
            bytes: kept_bytes(bytes),
            peer,
            owner,
        });
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
        let Some(entry) = self.txs.get(key) else {
            return;
        };
        let Some(req) = entry.request.clone() else {
            return;
        };
        let bytes = build::response(&req, Some(entry.peer.addr), code, to_tag, extra, body);
        let rest = self.tx(Input::Respond {
            key: key.clone(),
            code,
            bytes: kept_bytes(bytes),
        });
        debug_assert!(rest.is_empty());
    }

    /// A response sent without a transaction (483, 482 and other refusals).
    pub(super) fn respond_stateless(&self, req: &Request, peer: Peer, code: u16) {
        self.respond_stateless_with(req, peer, code, &[]);
    }

    /// The same with extra header lines (503 with Retry-After).
    pub(super) fn respond_stateless_with(
        &self,
        req: &Request,
        peer: Peer,
        code: u16,
        extra: &[(&str, &str)],
    ) {
        let tag = build::token();
        let bytes = build::response(req, Some(peer.addr), code, Some(&tag), extra, None);
        self.ctx.transports.send(peer, Bytes::from(bytes));
    }

    pub(super) fn on_tick(&mut self) {
        self.subscriptions_tick();
        for event in self.tx(Input::Tick) {
            match event {
                Output::Timeout { key, owner: None } => self.on_uac_timeout(&key),
                Output::Timeout { owner, .. } => self.on_client_timeout(owner),
                Output::AckTimeout {
                    owner: Some((leg, Purpose::Initial)),
                } => {
                    info!(%leg, "no ACK for our 2xx: ending the leg");
                    self.notify(leg, LegEventKind::Hangup);
                    self.send_bye(leg);
                }
                _ => {}
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
        let key = TxKey::client(branch, method);
        let Some(entry) = self.txs.get(&key) else {
            // A 2xx retransmitted after the transaction ended: ACK it again.
            if method == Method::Invite && (200..300).contains(&code) {
                self.reack(&v);
            }
            return;
        };
        // The ACK of a non-2xx final to an INVITE (RFC 3261 §17.1.1.3), built from the
        // leg it belongs to; the transaction sends it, and again for each
        // retransmission of that final.
        let ack = (method == Method::Invite && code >= 300).then(|| {
            entry
                .owner
                .and_then(|(leg, purpose)| Some((self.legs.get(&leg)?, purpose)))
                .map(|(l, purpose)| non2xx_ack(l, purpose, &v, cseq))
                .unwrap_or_default()
        });
        for event in self.tx(Input::Response { key, code, ack }) {
            if let Output::Deliver { key, owner, code } = event {
                if owner.is_none() {
                    self.on_uac_response(&key, code);
                }
                self.on_client_response(owner, &resp, &v, code, cseq);
            }
        }
    }
}
