//! The B2BUA: each call's legs as SIP dialogs (early or confirmed), mapped to the call
//! actor's [`LegEvent`]s and from its [`LegCommand`]s. `incoming.rs` the leg tsps
//! answers (the UAS of its initial INVITE), `outgoing.rs` the legs it dials,
//! `dialog.rs` requests inside a dialog (ACK, BYE, re-INVITE, CANCEL), `responses.rs`
//! responses to the requests tsps sent, `leg.rs` the state of one leg.

use super::*;

mod dialog;
mod incoming;
mod leg;
mod outgoing;
mod responses;

pub(super) use leg::{non2xx_ack, DialogKey, Leg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    Initial,
    ReInvite,
    Bye,
    Cancel,
    /// NOTIFY `Event: talk` in a ringing leg's early dialog (remote answer).
    Talk,
}

pub(super) struct CallInfo {
    pub(super) max_forwards: u32,
}

impl Shard {
    pub(super) fn notify(&self, leg: LegId, kind: LegEventKind) {
        if let Some(l) = self.legs.get(&leg) {
            l.events.do_send(LegEvent { leg, kind });
        }
    }

    pub(super) fn drop_leg(&mut self, leg: LegId) {
        if let Some(l) = self.legs.remove(&leg) {
            self.dialogs
                .remove(&DialogKey::new(&l.call_id, &l.local_tag));
            if l.uas {
                self.calls.remove(&l.call);
            }
        }
    }
}

/// Where to send a request for a registered contact. A connection-oriented contact is
/// reached over the connection its REGISTER came on while that is open (the device
/// may be behind NAT), else by connecting to the Contact address. A UDP contact is
/// reached at its Contact address (falling back to the REGISTER's source).
pub(super) fn contact_peer(
    contact: &str,
    received: Option<Peer>,
    is_connected: impl Fn(std::net::SocketAddr) -> bool,
) -> Option<Peer> {
    let host: Option<std::net::IpAddr> = h::uri_host(contact).parse().ok();
    let contact_addr =
        host.map(|ip| std::net::SocketAddr::new(ip, h::uri_port(contact).unwrap_or(5060)));
    let wants_tcp = h::uri_param(contact, "transport")
        .is_some_and(|t| t.eq_ignore_ascii_case("tcp"))
        || received.is_some_and(|r| r.proto == Proto::Tcp);
    if wants_tcp {
        if let Some(r) = received.filter(|r| r.proto == Proto::Tcp && is_connected(r.addr)) {
            return Some(r);
        }
        return contact_addr.map(Peer::tcp).or(received);
    }
    contact_addr.map(Peer::udp).or(received)
}

impl Handler<LegCommand> for Shard {
    type Result = ();

    fn handle(&mut self, cmd: LegCommand, _: &mut Self::Context) {
        match cmd {
            LegCommand::Dial(d) => self.dial(*d),

            LegCommand::Progress { leg, code, body } => self.answer_incoming(leg, code, body),
            LegCommand::Answer { leg, body } => self.answer_incoming(leg, 200, body),
            LegCommand::Reject { leg, code } => self.answer_incoming(leg, code, None),
            LegCommand::Cancel { leg } => {
                let Some(l) = self.legs.get_mut(&leg) else {
                    return;
                };
                if l.answered {
                    return;
                }
                if l.provisional_seen {
                    self.send_cancel(leg);
                } else {
                    // RFC 3261 §9.1: CANCEL only once a provisional response has arrived.
                    l.cancel_pending = true;
                }
            }
            LegCommand::Hangup { leg } => self.send_bye(leg),
            LegCommand::Ack { leg, body } => self.send_ack(leg, body),
            LegCommand::ReOffer { leg, body } => {
                self.send_in_dialog(leg, "INVITE", &[], body.as_deref(), Purpose::ReInvite)
            }
            LegCommand::RemoteAnswer { leg } => self.send_talk(leg),
            LegCommand::HandOver { leg, events } => self.hand_over(leg, events),
            LegCommand::Redirect { leg, contact } => self.redirect_incoming(leg, &contact),
            LegCommand::ReAnswer { leg, code, body } => {
                let Some(l) = self.legs.get_mut(&leg) else {
                    return;
                };
                let Some(key) = l.reinvite_in.take() else {
                    return;
                };
                let tag = l.local_tag.clone();
                let contact = self.ctx.contact(l.peer.proto);
                if (200..300).contains(&code) {
                    l.awaiting_ack = Some(key.clone());
                }
                let extra: Vec<(&str, &str)> = if code < 300 {
                    vec![("Contact", contact.as_str())]
                } else {
                    vec![]
                };
                self.respond(&key, code, Some(&tag), &extra, body.as_deref());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_peer_prefers_the_live_registration_connection() {
        let reg: Peer = "tcp:127.0.0.1:40000".parse().unwrap();
        let c = "sip:1002@127.0.0.1:5070;transport=tcp";
        assert_eq!(contact_peer(c, Some(reg), |_| true), Some(reg));
        assert_eq!(
            contact_peer(c, Some(reg), |_| false),
            Some("tcp:127.0.0.1:5070".parse().unwrap())
        );
        let udp: Peer = "udp:127.0.0.9:1234".parse().unwrap();
        assert_eq!(
            contact_peer("sip:1002@127.0.0.1:5070", Some(udp), |_| false),
            Some("udp:127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(
            contact_peer("sip:1002@phone.example", Some(udp), |_| false),
            Some(udp)
        );
        assert_eq!(
            contact_peer("sip:1002@phone.example", None, |_| false),
            None
        );
    }
}
