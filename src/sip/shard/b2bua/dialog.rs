//! Requests inside a leg's dialog or transaction: CANCEL, ACK for a 2xx, BYE,
//! re-INVITE (491 on glare), OPTIONS.

use super::*;

impl Shard {
    pub(in crate::sip::shard) fn on_cancel(&mut self, req: Arc<Request>, peer: Peer, key: TxKey) {
        let invite_key = TxKey {
            method: Method::Invite,
            ..key.clone()
        };
        self.add_server(key.clone(), peer, req);
        let Some(invite) = self.txs.get(&invite_key) else {
            self.respond(&key, 481, None, &[], None);
            return;
        };
        let (state, owner) = (invite.state(), invite.owner);
        self.respond(&key, 200, None, &[], None);
        if state == State::Proceeding {
            let tag = owner
                .and_then(|(leg, _)| self.legs.get(&leg))
                .map(|l| l.local_tag.clone());
            self.respond(&invite_key, 487, tag.as_deref(), &[], None);
            if let Some((leg, Purpose::Initial)) = owner {
                self.notify(leg, LegEventKind::Cancelled);
                self.drop_leg(leg);
            }
        }
    }

    pub(in crate::sip::shard) fn on_dialog_ack(&mut self, req: &Request, v: &View) {
        let Some(leg_id) = self.dialog_of(v) else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        // Only the first ACK for a 2xx is relayed; retransmitted ones are absorbed.
        let Some(tx_key) = leg.awaiting_ack.take() else {
            return;
        };
        self.tx(Input::AckFor2xx { key: tx_key });
        let body = body_of(&req.body);
        self.notify(leg_id, LegEventKind::Acked { body });
    }

    pub(in crate::sip::shard) fn dialog_of(&self, v: &View) -> Option<LegId> {
        let to_tag = v.to_tag?;
        self.dialogs
            .get(&DialogKey::new(v.call_id, to_tag))
            .copied()
    }

    pub(in crate::sip::shard) fn on_in_dialog(
        &mut self,
        req: &Request,
        v: &View,
        _peer: Peer,
        key: TxKey,
    ) {
        let Some(leg_id) = self.dialog_of(v) else {
            self.respond(&key, 481, None, &[], None);
            return;
        };
        let cseq = v.cseq.unwrap_or(0);
        let leg = self
            .legs
            .get_mut(&leg_id)
            .expect("dialog index points at a live leg");
        if cseq <= leg.remote_cseq && leg.remote_cseq != 0 {
            self.respond(&key, 500, None, &[("Retry-After", "1")], None);
            return;
        }
        leg.remote_cseq = cseq;
        match req.method {
            Method::Bye => {
                self.respond(&key, 200, None, &[], None);
                self.notify(leg_id, LegEventKind::Hangup);
                self.drop_leg(leg_id);
            }
            Method::Invite => {
                if leg.reinvite_in.is_some() || leg.awaiting_ack.is_some() {
                    self.respond(&key, 491, None, &[], None);
                    return;
                }
                if let Some(c) = v.contact_uri() {
                    leg.remote_target = c.to_string();
                }
                leg.reinvite_in = Some(key.clone());
                self.txs.set_owner(&key, Some((leg_id, Purpose::ReInvite)));
                self.respond(&key, 100, None, &[], None);
                self.notify(
                    leg_id,
                    LegEventKind::ReOffer {
                        body: body_of(&req.body),
                    },
                );
            }
            Method::Options => self.respond(&key, 200, None, &[("Allow", build::ALLOW)], None),
            _ => self.respond(&key, 501, None, &[], None),
        }
    }
}
