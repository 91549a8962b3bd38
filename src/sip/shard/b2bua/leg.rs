//! The SIP side of one leg and the requests built from its dialog state.

use super::*;

/// A leg's dialog as its shard finds it (RFC 3261 §12): the Call-ID and tsps's own
/// tag, which is the To tag of the requests a peer sends in it and the From tag of
/// the responses to tsps's requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(in crate::sip::shard) struct DialogKey {
    call_id: Box<str>,
    local_tag: Box<str>,
}

impl DialogKey {
    pub(in crate::sip::shard) fn new(call_id: &str, local_tag: &str) -> Self {
        Self {
            call_id: call_id.into(),
            local_tag: local_tag.into(),
        }
    }
}

/// The SIP side of one leg: a dialog (early or confirmed) and its pending transactions.
pub(in crate::sip::shard) struct Leg {
    pub(in crate::sip::shard) call: CallId,
    pub(in crate::sip::shard) events: Recipient<LegEvent>,
    /// True for the incoming leg (tsps is the UAS of its initial INVITE).
    pub(in crate::sip::shard) uas: bool,
    pub(in crate::sip::shard) call_id: String,
    pub(in crate::sip::shard) local_tag: String,
    pub(in crate::sip::shard) remote_tag: Option<String>,
    /// Our From (UAC) or To (UAS) value, without tag.
    pub(in crate::sip::shard) local_party: String,
    pub(in crate::sip::shard) remote_party: String,
    pub(in crate::sip::shard) local_cseq: u32,
    pub(in crate::sip::shard) remote_cseq: u32,
    pub(in crate::sip::shard) remote_target: String,
    pub(in crate::sip::shard) route_set: Vec<String>,
    pub(in crate::sip::shard) peer: Peer,
    pub(in crate::sip::shard) confirmed: bool,
    /// The initial INVITE transaction.
    pub(in crate::sip::shard) invite_tx: Option<TxKey>,
    /// A 2xx we sent waits for its ACK on this server transaction.
    pub(in crate::sip::shard) awaiting_ack: Option<TxKey>,
    /// A re-INVITE received on this leg, waiting for the other side's answer.
    pub(in crate::sip::shard) reinvite_in: Option<TxKey>,
    /// CSeq of the INVITE whose 2xx we must ACK (outgoing initial or re-INVITE).
    pub(in crate::sip::shard) ack_cseq: Option<u32>,
    /// Via of our last re-INVITE on this leg (the ACK for its non-2xx answer reuses it).
    pub(in crate::sip::shard) reinvite_via: String,
    pub(in crate::sip::shard) last_ack: Option<Bytes>,
    pub(in crate::sip::shard) answered: bool,
    // Outgoing initial INVITE only:
    pub(in crate::sip::shard) request_uri: String,
    pub(in crate::sip::shard) invite_via: String,
    pub(in crate::sip::shard) invite_body: Option<Body>,
    pub(in crate::sip::shard) provisional_seen: bool,
    pub(in crate::sip::shard) cancel_pending: bool,
    pub(in crate::sip::shard) trunk: Option<TrunkId>,
    pub(in crate::sip::shard) auth_tried: bool,
    pub(in crate::sip::shard) max_forwards: u32,
}

impl Leg {
    pub(in crate::sip::shard) fn header_from(&self) -> String {
        if self.uas {
            self.remote_value()
        } else {
            format!("{};tag={}", self.local_party, self.local_tag)
        }
    }
    pub(in crate::sip::shard) fn header_to(&self) -> String {
        if self.uas {
            format!("{};tag={}", self.local_party, self.local_tag)
        } else {
            self.remote_value()
        }
    }
    pub(in crate::sip::shard) fn remote_value(&self) -> String {
        match &self.remote_tag {
            Some(t) => format!("{};tag={t}", self.remote_party),
            None => self.remote_party.clone(),
        }
    }
    /// Our side's From value for requests we send in this dialog.
    pub(in crate::sip::shard) fn local_value(&self) -> String {
        format!("{};tag={}", self.local_party, self.local_tag)
    }
}

/// The ACK of a non-2xx final response: same Request-URI, top Via and Route set as the
/// INVITE it answers (RFC 3261 §17.1.1.3), the initial one or a re-INVITE.
pub(in crate::sip::shard) fn non2xx_ack(
    leg: &Leg,
    purpose: Purpose,
    resp: &View,
    cseq: u32,
) -> Bytes {
    let to = Some(resp.to)
        .filter(|t| !t.is_empty())
        .unwrap_or(&leg.remote_party);
    let (uri, via, routes) = match purpose {
        Purpose::ReInvite => (&leg.remote_target, &leg.reinvite_via, &leg.route_set[..]),
        _ => (&leg.request_uri, &leg.invite_via, &[][..]),
    };
    Bytes::from(build::request(&RequestSpec {
        method: "ACK",
        uri,
        via,
        from: &leg.local_value(),
        to,
        call_id: &leg.call_id,
        cseq,
        max_forwards: 70,
        contact: None,
        routes,
        extra: &[],
        body: None,
    }))
}
