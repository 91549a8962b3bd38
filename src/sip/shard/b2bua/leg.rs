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
    kept_bytes(build::request(&RequestSpec {
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

#[cfg(test)]
mod tests {
    //! Memory held per live call on its shard (issue 12: ≤ 4 KB for both legs' dialog
    //! state). The strings' heap is counted by capacity; docs/benchmarks.md
    //! ("Memory per object") has the figure and tests/sip_memory.rs the transactions'.
    use super::*;

    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<LegEvent> for Sink {
        type Result = ();
        fn handle(&mut self, _: LegEvent, _: &mut Context<Self>) {}
    }

    /// Heap bytes a leg holds (strings by capacity, shared bytes by length).
    fn heap(leg: &Leg) -> usize {
        let s = |x: &String| x.capacity();
        let key = |k: &Option<TxKey>| k.as_ref().map_or(0, |k| k.branch.len());
        s(&leg.call_id)
            + s(&leg.local_tag)
            + leg.remote_tag.as_ref().map_or(0, s)
            + s(&leg.local_party)
            + s(&leg.remote_party)
            + s(&leg.remote_target)
            + leg.route_set.capacity() * std::mem::size_of::<String>()
            + leg.route_set.iter().map(s).sum::<usize>()
            + key(&leg.invite_tx)
            + key(&leg.awaiting_ack)
            + key(&leg.reinvite_in)
            + s(&leg.reinvite_via)
            + leg.last_ack.as_ref().map_or(0, |b| b.len() + 32)
            + s(&leg.request_uri)
            + s(&leg.invite_via)
            + leg.invite_body.as_ref().map_or(0, |b| b.len() + 16)
            // The boxed sender behind `events`.
            + 32
    }

    fn leg(events: Recipient<LegEvent>, uas: bool) -> Leg {
        let call_id = if uas {
            "a84b4c76e66710@127.0.0.1".to_string()
        } else {
            format!("tsps0.{}", uuid::Uuid::new_v4().simple())
        };
        let branch = build::branch();
        let via = format!("SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport");
        let mut leg = Leg {
            call: CallId::new(),
            events,
            uas,
            call_id,
            local_tag: build::token(),
            remote_tag: Some(build::token()),
            local_party: "\"Alice\" <sip:1001@tsps.test>".to_string(),
            remote_party: "<sip:1002@tsps.test>".to_string(),
            local_cseq: 1,
            remote_cseq: 314159,
            remote_target: "sip:1002@192.0.2.10:5062;transport=udp".to_string(),
            route_set: Vec::new(),
            peer: "udp:192.0.2.10:5062".parse().unwrap(),
            confirmed: true,
            invite_tx: Some(TxKey::client(&branch, Method::Invite)),
            awaiting_ack: None,
            reinvite_in: None,
            ack_cseq: None,
            reinvite_via: String::new(),
            last_ack: None,
            answered: true,
            request_uri: "sip:1002@192.0.2.10:5062;transport=udp".to_string(),
            invite_via: if uas { String::new() } else { via.clone() },
            invite_body: None,
            provisional_seen: true,
            cancel_pending: false,
            trunk: None,
            auth_tried: false,
            max_forwards: 69,
        };
        if !uas {
            // tsps ACKed the B leg's 2xx and keeps the ACK for its retransmissions.
            let ack = build::request(&RequestSpec {
                method: "ACK",
                uri: &leg.remote_target,
                via: &via,
                from: &leg.local_value(),
                to: &leg.remote_value(),
                call_id: &leg.call_id,
                cseq: 1,
                max_forwards: 70,
                contact: None,
                routes: &[],
                extra: &[],
                body: None,
            });
            leg.last_ack = Some(kept_bytes(ack));
        }
        leg
    }

    #[test]
    fn a_live_call_holds_under_4_kib_on_its_shard() {
        let sys = actix::System::new();
        sys.block_on(async {
            let sink = Sink.start();
            let legs = [
                leg(sink.clone().recipient(), true),
                leg(sink.recipient(), false),
            ];
            // Each leg: its table entry (id + leg), its dialog entry (key + id, the key's
            // strings), its heap; the call's entry once.
            let per_leg =
                std::mem::size_of::<(LegId, Leg)>() + std::mem::size_of::<(DialogKey, LegId)>();
            let dialog_heap: usize = legs
                .iter()
                .map(|l| l.call_id.len() + l.local_tag.len())
                .sum();
            let total = 2 * per_leg
                + legs.iter().map(heap).sum::<usize>()
                + dialog_heap
                + std::mem::size_of::<(CallId, CallInfo)>();
            println!(
                "live call: {total} B (Leg {} B inline, heap {} + {} B)",
                std::mem::size_of::<Leg>(),
                heap(&legs[0]),
                heap(&legs[1])
            );
            assert!(total <= 4096, "{total} B per live call");
        });
    }
}
