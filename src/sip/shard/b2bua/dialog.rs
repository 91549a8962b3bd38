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
        let invite = self.txs.get(&invite_key).map(|e| (e.state(), e.owner));
        let outcome = cancel_outcome(invite.map(|(state, _)| state));
        if outcome == CancelOutcome::NoTransaction {
            self.respond(&key, 481, None, &[], None);
            return;
        }
        let owner = invite.and_then(|(_, owner)| owner);
        self.respond(&key, 200, None, &[], None);
        if outcome == CancelOutcome::Cancel {
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
        if out_of_order(cseq, leg.remote_cseq) {
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
                if glare(leg.reinvite_in.is_some(), leg.awaiting_ack.is_some()) {
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

/// What a CANCEL does to the INVITE it names (RFC 3261 §9.2), by that INVITE server
/// transaction's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::sip::shard) enum CancelOutcome {
    /// No INVITE with that branch: 481 to the CANCEL.
    NoTransaction,
    /// The INVITE has its final response already (the CANCEL lost the race): 200 to
    /// the CANCEL and nothing else.
    TooLate,
    /// 200 to the CANCEL, 487 to the INVITE, the leg is cancelled.
    Cancel,
}

pub(in crate::sip::shard) fn cancel_outcome(invite: Option<State>) -> CancelOutcome {
    match invite {
        None => CancelOutcome::NoTransaction,
        Some(State::Proceeding) => CancelOutcome::Cancel,
        Some(_) => CancelOutcome::TooLate,
    }
}

/// A request inside a dialog whose CSeq is not above the last one seen (RFC 3261
/// §12.2.2): refused with 500 and Retry-After. The first request seen sets the count.
pub(in crate::sip::shard) fn out_of_order(cseq: u32, remote_cseq: u32) -> bool {
    cseq <= remote_cseq && remote_cseq != 0
}

/// A re-INVITE that crosses another INVITE transaction of the dialog (RFC 3261
/// §14.2): the peer's while the other side has not answered it, or ours (a 2xx still
/// waiting for its ACK) gets 491 Request Pending.
pub(in crate::sip::shard) fn glare(reinvite_pending: bool, awaiting_ack: bool) -> bool {
    reinvite_pending || awaiting_ack
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_races() {
        use CancelOutcome::*;
        #[rustfmt::skip]
        let table: &[(&str, Option<State>, CancelOutcome)] = &[
            ("CANCEL with no INVITE: 481", None, NoTransaction),
            ("CANCEL before the final: 200, 487 to the INVITE", Some(State::Proceeding), Cancel),
            ("CANCEL after the 2xx (race lost): 200 only", Some(State::Accepted), TooLate),
            ("CANCEL after a 486: 200 only", Some(State::Completed), TooLate),
            ("CANCEL after the 486 was ACKed: 200 only", Some(State::Confirmed), TooLate),
        ];
        for (name, state, expect) in table {
            assert_eq!(cancel_outcome(*state), *expect, "{name}");
        }
    }

    #[test]
    fn in_dialog_order_and_glare() {
        #[rustfmt::skip]
        let order: &[(&str, u32, u32, bool)] = &[
            ("first request in the dialog", 5, 0, false),
            ("next CSeq", 6, 5, false),
            ("same CSeq again: 500", 5, 5, true),
            ("older CSeq: 500", 4, 5, true),
        ];
        for (name, cseq, last, refused) in order {
            assert_eq!(out_of_order(*cseq, *last), *refused, "{name}");
        }
        #[rustfmt::skip]
        let glares: &[(&str, bool, bool, bool)] = &[
            ("re-INVITE on an idle dialog", false, false, false),
            ("re-INVITE while the peer's last one is unanswered: 491", true, false, true),
            ("re-INVITE while our 2xx waits for its ACK: 491", false, true, true),
        ];
        for (name, pending, awaiting, expect) in glares {
            assert_eq!(glare(*pending, *awaiting), *expect, "{name}");
        }
    }
}
