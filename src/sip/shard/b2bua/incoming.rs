//! The incoming leg: an INVITE from a device or a trunk becomes a call actor; its
//! answer, rejection or redirection comes back as a response on that INVITE.

use super::*;

impl Shard {
    /// The upstream trunk and the user's extension when `peer` is the upstream.
    pub(in crate::sip::shard) fn upstream_call(&self, peer: Peer) -> Option<(TrunkId, String)> {
        let up = self.ctx.upstream.as_ref().filter(|u| u.addr == peer.addr)?;
        Some((up.trunk, up.extension.clone()))
    }

    /// 302 Moved Temporarily on the incoming leg's INVITE (RFC 3261 §8.3, §21.3.3).
    pub(in crate::sip::shard) fn redirect_incoming(&mut self, leg_id: LegId, contact: &str) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let Some(key) = leg.invite_tx.clone().filter(|_| leg.uas && !leg.answered) else {
            return;
        };
        let tag = leg.local_tag.clone();
        let contact = format!("<{contact}>");
        self.respond(&key, 302, Some(&tag), &[("Contact", &contact)], None);
        self.drop_leg(leg_id);
    }
}

impl Shard {
    pub(in crate::sip::shard) fn on_invite(
        &mut self,
        req: &Request,
        v: &View,
        peer: Peer,
        key: TxKey,
    ) {
        let dir = self.ctx.directory.current();
        let from = v.from.to_string();
        let to = v.to.to_string();
        let ruri = req.uri.to_string();
        let dialled = h::uri_user(&ruri)
            .or_else(|| h::uri_user(h::uri(&to)))
            .unwrap_or("")
            .to_string();
        let upstream = self.upstream_call(peer);
        let dialled = upstream.as_ref().map_or(dialled, |(_, x)| x.clone());
        let trunk = upstream.and_then(|(t, _)| dir.trunk(t));

        // Credentials for a hosted realm make the request a device's, whatever its
        // address: a trunk's source range never takes a phone's call that way.
        let claims_device = ["Proxy-Authorization", "Authorization"]
            .iter()
            .flat_map(|name| h::each(&req.headers, name))
            .filter_map(|v| crate::sip::digest::parse_credentials(v).ok())
            .any(|c| dir.tenant_by_domain(&c.realm).is_some());
        let by_source = || {
            (!claims_device)
                .then(|| dir.trunk_by_source(peer.addr.ip()))
                .flatten()
        };
        let (tenant, origin, caller, caller_target) = if let Some(trunk) = trunk.or_else(by_source)
        {
            let Some(tenant) = dir.tenant(trunk.tenant_id).cloned() else {
                self.refuse(&key, 403);
                return;
            };
            let caller = PartyInfo {
                user: h::uri_user(h::uri(&from))
                    .unwrap_or("anonymous")
                    .to_string(),
                display_name: h::display_name(&from).map(str::to_string),
                domain: tenant.domain.clone(),
            };
            let origin = CallOrigin::Trunk {
                trunk: trunk.id,
                did: dialled.clone(),
            };
            (tenant, origin, caller, format!("trunk:{}", trunk.name))
        } else {
            let domain = h::uri_host(h::uri(&from)).to_ascii_lowercase();
            let Some(tenant) = dir.tenant_by_domain(&domain).cloned() else {
                self.authenticate(req, peer, &key, &domain, None, true);
                return;
            };
            let Some(device) =
                self.authenticate(req, peer, &key, &tenant.domain, Some(tenant.id), true)
            else {
                return;
            };
            // The Request-URI may name another tenant's domain: tsps routes a device's
            // call inside its own tenant only, so that is nobody it can reach.
            let target = h::uri_host(&ruri).to_ascii_lowercase();
            if dir
                .tenant_by_domain(&target)
                .is_some_and(|t| t.id != tenant.id)
            {
                self.refuse(&key, 404);
                return;
            }
            let Some(user) = dir.user(device.user_id).cloned() else {
                self.refuse(&key, 403);
                return;
            };
            let caller = PartyInfo {
                user: user.extension.clone(),
                display_name: Some(user.display_name.clone()),
                domain: tenant.domain.clone(),
            };
            let origin = CallOrigin::User {
                user: user.id,
                dialled: dialled.clone(),
            };
            (
                tenant,
                origin,
                caller,
                format!("device:{}", device.sip_username),
            )
        };

        self.respond(&key, 100, None, &[], None);
        let call = CallId::new();
        let a_leg = LegId::new();
        let local_tag = build::token();
        let call_id = v.call_id.to_string();
        let remote_cseq = v.cseq.unwrap_or(1);
        let max_forwards = v.max_forwards.unwrap_or(70).min(70);
        let remote_target = v.contact_uri().unwrap_or(v.from_uri()).to_string();
        let route_set: Vec<String> = h::all(&req.headers, "Record-Route")
            .into_iter()
            .map(str::to_string)
            .collect();
        let Some(me) = self.me.clone() else { return };
        let setup = CallSetup {
            call,
            tenant: tenant.id,
            start: CallStart::Incoming {
                leg: a_leg,
                target: caller_target,
                offer: body_of(&req.body),
            },
            origin,
            caller,
            dialled,
            sip: me,
        };
        // The call actor runs on this shard's Arbiter: its commands come back here
        // without crossing threads.
        let events = self.ctx.actors.start_call(setup);
        self.calls.insert(
            call,
            CallInfo {
                max_forwards: max_forwards.saturating_sub(1),
            },
        );
        self.txs.set_owner(&key, Some((a_leg, Purpose::Initial)));
        self.dialogs
            .insert(DialogKey::new(&call_id, &local_tag), a_leg);
        self.legs.insert(
            a_leg,
            Leg {
                call,
                events,
                uas: true,
                call_id,
                local_tag,
                remote_tag: v.from_tag.map(str::to_string),
                local_party: build::strip_tag(&to),
                remote_party: build::strip_tag(&from),
                local_cseq: 0,
                remote_cseq,
                remote_target,
                route_set,
                peer,
                confirmed: false,
                invite_tx: Some(key),
                awaiting_ack: None,
                reinvite_in: None,
                ack_cseq: None,
                reinvite_via: String::new(),
                last_ack: None,
                answered: false,
                request_uri: ruri,
                invite_via: String::new(),
                invite_body: None,
                provisional_seen: false,
                cancel_pending: false,
                trunk: None,
                auth_tried: false,
                max_forwards,
            },
        );
        debug!(%call, %a_leg, "call started");
    }
}

impl Shard {
    /// A response on the initial INVITE of the incoming leg.
    pub(in crate::sip::shard) fn answer_incoming(
        &mut self,
        leg_id: LegId,
        code: u16,
        body: Option<Body>,
    ) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(key) = leg.invite_tx.clone() else {
            return;
        };
        let tag = leg.local_tag.clone();
        let contact = self.ctx.contact(leg.peer.proto);
        if (200..300).contains(&code) {
            leg.confirmed = true;
            leg.answered = true;
            leg.awaiting_ack = Some(key.clone());
        }
        let extra: Vec<(&str, &str)> = if code < 300 {
            vec![("Contact", contact.as_str())]
        } else {
            vec![]
        };
        self.respond(&key, code, Some(&tag), &extra, body.as_deref());
        if code >= 300 {
            self.drop_leg(leg_id);
        }
    }
}
