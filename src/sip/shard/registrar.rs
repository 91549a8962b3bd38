//! The registrar (RFC 3261 §10): authenticates a REGISTER, checks the address of
//! record and the expiries, and hands the binding update to the user actor, which owns
//! the bindings; the 200 lists the user's contacts.

use super::*;

impl Shard {
    pub(super) fn on_register(
        &mut self,
        req: &Request,
        peer: Peer,
        key: TxKey,
        ctx: &mut Context<Self>,
    ) {
        let to = h::first(&req.headers, "To").unwrap_or("");
        let aor = h::uri(to);
        let domain = h::uri_host(aor).to_ascii_lowercase();
        let dir = self.ctx.directory.get();
        // A domain nobody hosts is challenged like a hosted one (no answer can pass): an
        // outsider cannot tell which domains are hosted here.
        let Some(tenant) = dir.tenant_by_domain(&domain).cloned() else {
            self.authenticate(req, peer, &key, &domain, None, false);
            return;
        };
        let Some(device) =
            self.authenticate(req, peer, &key, &tenant.domain, Some(tenant.id), false)
        else {
            return;
        };
        if let Some(trunk) = dir.foreign_trunk_by_source(tenant.id, peer.addr.ip()) {
            // Calls from this address are another tenant's carrier's: a phone here would
            // be taken for it.
            warn!(%peer, device = %device.id, trunk = %trunk.id,
                "REGISTER refused: the source is another tenant's trunk address");
            self.refuse(&key, 403);
            return;
        }
        let Some(user) = dir.user(device.user_id).cloned() else {
            self.refuse(&key, 404);
            return;
        };
        let aor_user = h::uri_user(aor).unwrap_or("");
        if aor_user != user.extension && aor_user != device.sip_username {
            // A device may only register its own user's address of record.
            self.refuse(&key, 403);
            return;
        }
        let header_expires =
            h::first(&req.headers, "Expires").and_then(|v| v.trim().parse::<u32>().ok());
        let contacts = h::all(&req.headers, "Contact");
        let update = if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                self.refuse(&key, 400);
                return;
            }
            RegisterUpdate::RemoveAll
        } else if contacts.is_empty() {
            RegisterUpdate::Query
        } else {
            let mut updates = Vec::with_capacity(contacts.len());
            for c in contacts {
                let requested = h::param(c, "expires")
                    .and_then(|v| v.parse::<u32>().ok())
                    .or(header_expires)
                    .unwrap_or(3600);
                if requested != 0 && requested < self.ctx.settings.min_expires {
                    let min = self.ctx.settings.min_expires.to_string();
                    let tag = build::token();
                    self.respond(&key, 423, Some(&tag), &[("Min-Expires", &min)], None);
                    return;
                }
                updates.push(ContactUpdate {
                    contact: h::uri(c).to_string(),
                    received: peer.to_string(),
                    expires: requested.min(self.ctx.settings.max_expires),
                });
            }
            RegisterUpdate::Contacts(updates)
        };
        let Some(user_addr) = self.ctx.actors.user(user.id) else {
            self.refuse(&key, 500);
            return;
        };
        let call_id = h::first(&req.headers, "Call-ID").unwrap_or("").to_string();
        let cseq = h::first(&req.headers, "CSeq")
            .and_then(h::cseq)
            .map(|c| c.0)
            .unwrap_or(0);
        let msg = Register {
            device: device.id,
            call_id,
            cseq,
            update,
        };
        user_addr
            .send(msg)
            .into_actor(self)
            .map(move |res, act, _| {
                let tag = build::token();
                match res {
                    Ok(Ok(bindings)) => {
                        if peer.proto == Proto::Tcp {
                            // The phone is reachable only through this connection.
                            let longest = bindings.iter().map(|(_, left)| *left).max();
                            if let Some(left) = longest {
                                act.ctx.transports.keep_alive(
                                    peer.addr,
                                    Duration::from_secs(u64::from(left) + 32),
                                );
                            }
                        }
                        let values: Vec<String> = bindings
                            .iter()
                            .map(|(b, left)| format!("<{}>;expires={left}", b.contact))
                            .collect();
                        let extra: Vec<(&str, &str)> =
                            values.iter().map(|v| ("Contact", v.as_str())).collect();
                        act.respond(&key, 200, Some(&tag), &extra, None);
                    }
                    Ok(Err(RegisterError::OutOfOrder { .. })) => {
                        act.respond(&key, 500, Some(&tag), &[("Retry-After", "1")], None)
                    }
                    Err(e) => {
                        warn!(error = %e, "user actor unavailable for REGISTER");
                        act.respond(&key, 500, Some(&tag), &[("Retry-After", "5")], None);
                    }
                }
            })
            .spawn(ctx);
    }
}
