//! Outgoing legs: dialling a target (a registered contact, a URI, a trunk with its
//! digest credentials), CANCEL, BYE, ACK, re-INVITE and the talk NOTIFY.

use super::*;

impl Shard {
    pub(in crate::sip::shard) fn dial(&mut self, d: Dial) {
        let Dial {
            call,
            leg: leg_id,
            target,
            caller,
            callee,
            body,
            events,
            ..
        } = d;
        let dir = self.ctx.directory.current();
        let (request_uri, peer, to, trunk) = match &target {
            DialTarget::Contact(b) => {
                let received: Option<Peer> = b.received.parse().ok();
                let peer = contact_peer(&b.contact, received, |addr| {
                    self.ctx.transports.is_connected(addr)
                });
                let to = format!("<sip:{}@{}>", callee.user, callee.domain);
                (b.contact.clone(), peer, to, None)
            }
            DialTarget::Uri(uri) => {
                let tcp =
                    h::uri_param(uri, "transport").is_some_and(|t| t.eq_ignore_ascii_case("tcp"));
                let host: Option<std::net::IpAddr> = h::uri_host(uri).parse().ok();
                let peer = host.map(|ip| {
                    let addr = std::net::SocketAddr::new(ip, h::uri_port(uri).unwrap_or(5060));
                    if tcp {
                        Peer::tcp(addr)
                    } else {
                        Peer::udp(addr)
                    }
                });
                (uri.clone(), peer, format!("<{uri}>"), None)
            }
            DialTarget::Trunk { trunk_id, number } => match dir.trunk(*trunk_id) {
                Some(t) => {
                    let proto = match t.transport {
                        tsps_actors::model::TransportKind::Udp => Proto::Udp,
                        tsps_actors::model::TransportKind::Tcp => Proto::Tcp,
                    };
                    let peer = t.peer_host.parse::<std::net::IpAddr>().ok().map(|ip| Peer {
                        proto,
                        addr: std::net::SocketAddr::new(ip, t.peer_port),
                    });
                    let uri = format!("sip:{number}@{}:{}", t.peer_host, t.peer_port);
                    let to = format!("<sip:{number}@{}>", t.peer_host);
                    (uri, peer, to, Some(t.id))
                }
                None => (String::new(), None, String::new(), None),
            },
        };
        let Some(peer) = peer else {
            warn!(%call, target = %target.describe(), "cannot reach dial target (host must be an IP literal)");
            events.do_send(LegEvent {
                leg: leg_id,
                kind: LegEventKind::Failed { code: 503 },
            });
            return;
        };
        let max_forwards = self.calls.get(&call).map(|c| c.max_forwards).unwrap_or(69);
        if max_forwards == 0 {
            events.do_send(LegEvent {
                leg: leg_id,
                kind: LegEventKind::Failed { code: 483 },
            });
            return;
        }
        let display = caller
            .display_name
            .as_deref()
            .map(|d| format!("\"{}\" ", d.replace('"', "")))
            .unwrap_or_default();
        let local_party = format!("{display}<sip:{}@{}>", caller.user, caller.domain);
        let call_id = format!("tsps{}.{}", self.idx, uuid::Uuid::new_v4().simple());
        let leg = Leg {
            call,
            events,
            uas: false,
            call_id: call_id.clone(),
            local_tag: build::token(),
            remote_tag: None,
            local_party,
            remote_party: to,
            local_cseq: 1,
            remote_cseq: 0,
            remote_target: request_uri.clone(),
            route_set: Vec::new(),
            peer,
            confirmed: false,
            invite_tx: None,
            awaiting_ack: None,
            reinvite_in: None,
            ack_cseq: None,
            reinvite_via: String::new(),
            last_ack: None,
            answered: false,
            request_uri,
            invite_via: String::new(),
            invite_body: body,
            provisional_seen: false,
            cancel_pending: false,
            trunk,
            auth_tried: false,
            max_forwards,
        };
        self.dialogs
            .insert(DialogKey::new(&call_id, &leg.local_tag), leg_id);
        self.legs.insert(leg_id, leg);
        self.send_initial_invite(leg_id, None);
    }

    /// Sends (or re-sends with credentials) the initial INVITE of an outgoing leg.
    pub(in crate::sip::shard) fn send_initial_invite(
        &mut self,
        leg_id: LegId,
        authorization: Option<(&str, String)>,
    ) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let branch = build::branch();
        let via = self.ctx.via(leg.peer.proto, &branch);
        let contact = self.ctx.contact(leg.peer.proto);
        let extra: Vec<(&str, String)> = authorization.into_iter().collect();
        let from = leg.local_value();
        let to = leg.remote_party.clone();
        let bytes = build::request(&RequestSpec {
            method: "INVITE",
            uri: &leg.request_uri,
            via: &via,
            from: &from,
            to: &to,
            call_id: &leg.call_id,
            cseq: leg.local_cseq,
            max_forwards: leg.max_forwards,
            contact: Some(&contact),
            routes: &[],
            extra: &extra,
            body: leg.invite_body.as_deref(),
        });
        leg.invite_via = via;
        let key = TxKey {
            branch: branch.into(),
            method: Method::Invite,
            server: false,
        };
        leg.invite_tx = Some(key.clone());
        let peer = leg.peer;
        self.start_client(
            key,
            Kind::InviteClient,
            bytes,
            peer,
            Some((leg_id, Purpose::Initial)),
        );
    }

    pub(in crate::sip::shard) fn retry_with_auth(
        &mut self,
        leg_id: LegId,
        resp: &Response,
        code: u16,
    ) {
        let dir = self.ctx.directory.current();
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let creds = leg
            .trunk
            .and_then(|t| dir.trunk(t))
            .and_then(|t| Some((t.username.clone()?, t.password.clone()?)));
        let challenge_name = if code == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let answer = creds.and_then(|(user, pass)| {
            // Prefer the strongest challenge we can answer.
            let challenges = h::each(&resp.headers, challenge_name);
            let pick = challenges
                .iter()
                .find(|c| c.to_ascii_uppercase().contains("SHA-256"))
                .or(challenges.first())?;
            digest::answer_challenge(
                pick,
                "INVITE",
                &leg.request_uri,
                &user,
                pass.expose(),
                &build::token(),
                1,
            )
            .ok()
        });
        match answer {
            Some(value) => {
                leg.local_cseq += 1;
                let name = if code == 407 {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                };
                self.send_initial_invite(leg_id, Some((name, value)));
            }
            None => {
                self.notify(leg_id, LegEventKind::Failed { code });
                self.drop_leg(leg_id);
            }
        }
    }

    pub(in crate::sip::shard) fn send_cancel(&mut self, leg_id: LegId) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let Some(invite_key) = leg.invite_tx.clone() else {
            return;
        };
        let bytes = build::request(&RequestSpec {
            method: "CANCEL",
            uri: &leg.request_uri,
            via: &leg.invite_via,
            from: &leg.local_value(),
            to: &leg.remote_party,
            call_id: &leg.call_id,
            cseq: leg.local_cseq,
            max_forwards: 70,
            contact: None,
            routes: &[],
            extra: &[],
            body: None,
        });
        let key = TxKey {
            branch: invite_key.branch,
            method: Method::Cancel,
            server: false,
        };
        let peer = leg.peer;
        self.start_client(
            key,
            Kind::NonInviteClient,
            bytes,
            peer,
            Some((leg_id, Purpose::Cancel)),
        );
    }

    /// Sends an in-dialog request (BYE, re-INVITE, NOTIFY) on a leg.
    pub(in crate::sip::shard) fn send_in_dialog(
        &mut self,
        leg_id: LegId,
        method: &str,
        extra: &[(&str, String)],
        body: Option<&[u8]>,
        purpose: Purpose,
    ) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.local_cseq += 1;
        let branch = build::branch();
        let via = self.ctx.via(leg.peer.proto, &branch);
        let contact = self.ctx.contact(leg.peer.proto);
        let (from, to) = if leg.uas {
            (leg.local_value(), leg.remote_value())
        } else {
            (leg.header_from(), leg.header_to())
        };
        let bytes = build::request(&RequestSpec {
            method,
            uri: &leg.remote_target,
            via: &via,
            from: &from,
            to: &to,
            call_id: &leg.call_id,
            cseq: leg.local_cseq,
            max_forwards: 70,
            contact: (method != "BYE").then_some(contact.as_str()),
            routes: &leg.route_set,
            extra,
            body,
        });
        let m = match method {
            "INVITE" => Method::Invite,
            "NOTIFY" => Method::Notify,
            _ => Method::Bye,
        };
        let kind = if m == Method::Invite {
            Kind::InviteClient
        } else {
            Kind::NonInviteClient
        };
        if m == Method::Invite {
            leg.reinvite_via = via.clone();
        }
        let peer = leg.peer;
        self.start_client(
            TxKey {
                branch: branch.into(),
                method: m,
                server: false,
            },
            kind,
            bytes,
            peer,
            Some((leg_id, purpose)),
        );
    }

    pub(in crate::sip::shard) fn send_bye(&mut self, leg_id: LegId) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.uas && !leg.confirmed && !leg.answered {
            self.drop_leg(leg_id);
            return;
        }
        self.send_in_dialog(leg_id, "BYE", &[], None, Purpose::Bye);
    }

    pub(in crate::sip::shard) fn send_ack(&mut self, leg_id: LegId, body: Option<Body>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(cseq) = leg.ack_cseq.take() else {
            return;
        };
        let via = self.ctx.via(leg.peer.proto, &build::branch());
        let (from, to) = if leg.uas {
            (leg.local_value(), leg.remote_value())
        } else {
            (leg.header_from(), leg.header_to())
        };
        let bytes = kept_bytes(build::request(&RequestSpec {
            method: "ACK",
            uri: &leg.remote_target,
            via: &via,
            from: &from,
            to: &to,
            call_id: &leg.call_id,
            cseq,
            max_forwards: 70,
            contact: None,
            routes: &leg.route_set,
            extra: &[],
            body: body.as_deref(),
        }));
        leg.last_ack = Some(bytes.clone());
        self.ctx.transports.send(leg.peer, bytes);
    }

    /// Remote answer (the BroadWorks `talk` event that Polycom, Yealink and other
    /// phones act on): a NOTIFY with `Event: talk` to the ringing device's contact, in
    /// the early dialog of our INVITE (its Call-ID, our From tag, the To tag of the
    /// device's 180), so that a phone which matches it to the ringing call finds it
    /// and one that takes it out of dialog still sees the event. Only for an outgoing
    /// leg that has not been answered.
    pub(in crate::sip::shard) fn send_talk(&mut self, leg_id: LegId) {
        match self.legs.get(&leg_id) {
            Some(l) if !l.uas && !l.answered => {}
            _ => return,
        }
        let extra = [
            ("Event", "talk".to_string()),
            ("Subscription-State", "terminated".to_string()),
        ];
        self.send_in_dialog(leg_id, "NOTIFY", &extra, None, Purpose::Talk);
    }

    /// A consultative transfer moved the leg into another call: its events go to that
    /// call's actor from now on. A re-INVITE the old owner never answered is refused
    /// (the peer may retry); a leg that ended meanwhile is reported ended to the new
    /// owner, and a new owner that is already gone gets the leg ended.
    pub(in crate::sip::shard) fn hand_over(&mut self, leg_id: LegId, events: Recipient<LegEvent>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            events.do_send(LegEvent {
                leg: leg_id,
                kind: LegEventKind::Hangup,
            });
            return;
        };
        leg.events = events;
        let alive = leg.events.connected();
        let pending = leg.reinvite_in.take();
        if let Some(key) = pending {
            let tag = leg.local_tag.clone();
            self.respond(&key, 491, Some(&tag), &[], None);
        }
        if !alive {
            self.send_bye(leg_id);
        }
    }
}
