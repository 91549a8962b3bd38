//! The registrar (RFC 3261 §10): authenticates a REGISTER, checks the address of
//! record and the expiries, and hands the binding update to the user actor, which owns
//! the bindings; the 200 lists the user's contacts.

use super::*;

impl Shard {
    pub(super) fn on_register(
        &mut self,
        req: &Request,
        v: &View,
        peer: Peer,
        key: TxKey,
        ctx: &mut Context<Self>,
    ) {
        let aor = v.to_uri();
        let domain = h::uri_host(aor).to_ascii_lowercase();
        let dir = self.ctx.directory.current();
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
        let contacts = h::all(&req.headers, "Contact");
        let (min, max) = (self.ctx.settings.min_expires, self.ctx.settings.max_expires);
        let update = match binding_update(v, &contacts, peer, min, max) {
            Ok(update) => update,
            Err(Refusal::BadRequest) => {
                self.refuse(&key, 400);
                return;
            }
            Err(Refusal::IntervalTooBrief) => {
                let min = min.to_string();
                let tag = build::token();
                self.respond(&key, 423, Some(&tag), &[("Min-Expires", &min)], None);
                return;
            }
        };
        let Some(user_addr) = self.ctx.actors.user(user.id) else {
            self.refuse(&key, 500);
            return;
        };
        let call_id = v.call_id.to_string();
        let cseq = v.cseq.unwrap_or(0);
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

/// Why a REGISTER's contacts are refused before the user actor sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `Contact: *` with other contacts or without `Expires: 0` (400).
    BadRequest,
    /// A contact asks for less than the minimum expiry (423 with Min-Expires).
    IntervalTooBrief,
}

/// The binding update a REGISTER asks for (RFC 3261 §10.3, steps 6 and 7): remove all,
/// query, or the contacts with their expiries (the contact's own `expires`, else the
/// Expires header, else 3600; capped at `max`). Pure: no directory, no actor.
pub(super) fn binding_update(
    v: &View,
    contacts: &[&str],
    received: Peer,
    min: u32,
    max: u32,
) -> Result<RegisterUpdate, Refusal> {
    if contacts.iter().any(|c| c.trim() == "*") {
        if contacts.len() != 1 || v.expires != Some(0) {
            return Err(Refusal::BadRequest);
        }
        return Ok(RegisterUpdate::RemoveAll);
    }
    if contacts.is_empty() {
        return Ok(RegisterUpdate::Query);
    }
    let mut updates = Vec::with_capacity(contacts.len());
    for c in contacts {
        let requested = h::param(c, "expires")
            .and_then(|v| v.parse::<u32>().ok())
            .or(v.expires)
            .unwrap_or(3600);
        if requested != 0 && requested < min {
            return Err(Refusal::IntervalTooBrief);
        }
        updates.push(ContactUpdate {
            contact: h::uri(c).to_string(),
            received: received.to_string(),
            expires: requested.min(max),
        });
    }
    Ok(RegisterUpdate::Contacts(updates))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// register.sip with its Contact and Expires lines replaced.
    fn register(contact: &[&str], expires: Option<&str>) -> Request {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sip/register.sip"
        );
        let text = std::fs::read_to_string(path).expect("fixture");
        let mut lines: Vec<String> = text
            .split("\r\n")
            .filter(|l| !l.starts_with("Contact:") && !l.starts_with("Expires:"))
            .map(str::to_string)
            .collect();
        let at = lines.iter().position(|l| l.starts_with("CSeq:")).unwrap() + 1;
        for c in contact.iter().rev() {
            lines.insert(at, format!("Contact: {c}"));
        }
        if let Some(e) = expires {
            lines.insert(at, format!("Expires: {e}"));
        }
        match crate::sip::message::parse(lines.join("\r\n").as_bytes(), 65_535) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn update(req: &Request) -> Result<RegisterUpdate, Refusal> {
        let contacts = h::all(&req.headers, "Contact");
        let peer: Peer = "udp:127.0.0.1:5070".parse().unwrap();
        binding_update(&View::new(&req.headers), &contacts, peer, 60, 3600)
    }

    fn expiries(u: Result<RegisterUpdate, Refusal>) -> Vec<(String, u32)> {
        match u {
            Ok(RegisterUpdate::Contacts(c)) => {
                c.into_iter().map(|c| (c.contact, c.expires)).collect()
            }
            other => panic!("not contacts: {other:?}"),
        }
    }

    #[test]
    fn the_fixture_registers_its_contact_for_the_header_expiry() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sip/register.sip"
        );
        let bytes = std::fs::read(path).unwrap();
        let Ok(SipMessage::Request(req)) = crate::sip::message::parse(&bytes, 65_535) else {
            panic!("register.sip parses");
        };
        assert_eq!(
            expiries(update(&req)),
            vec![("sip:alice@127.0.0.1:5070".to_string(), 3600)]
        );
    }

    #[test]
    fn expiries_come_from_the_contact_then_the_header_then_the_default_capped() {
        let req = register(
            &["<sip:a@127.0.0.1:5070>;expires=120", "<sip:b@127.0.0.1>"],
            Some("90"),
        );
        assert_eq!(
            expiries(update(&req)),
            vec![
                ("sip:a@127.0.0.1:5070".to_string(), 120),
                ("sip:b@127.0.0.1".to_string(), 90)
            ]
        );
        let req = register(&["<sip:a@127.0.0.1>"], None);
        assert_eq!(
            expiries(update(&req)),
            vec![("sip:a@127.0.0.1".to_string(), 3600)]
        );
        let req = register(&["<sip:a@127.0.0.1>;expires=99999"], None);
        assert_eq!(
            expiries(update(&req)),
            vec![("sip:a@127.0.0.1".to_string(), 3600)]
        );
        // 0 removes a binding whatever the minimum.
        let req = register(&["<sip:a@127.0.0.1>;expires=0"], None);
        assert_eq!(
            expiries(update(&req)),
            vec![("sip:a@127.0.0.1".to_string(), 0)]
        );
    }

    #[test]
    fn refusals_and_the_other_updates() {
        let req = register(&["<sip:a@127.0.0.1>;expires=30"], None);
        assert_eq!(update(&req).unwrap_err(), Refusal::IntervalTooBrief);
        let req = register(&["*"], Some("0"));
        assert!(matches!(update(&req), Ok(RegisterUpdate::RemoveAll)));
        let req = register(&["*"], Some("3600"));
        assert_eq!(update(&req).unwrap_err(), Refusal::BadRequest);
        let req = register(&["*", "<sip:a@127.0.0.1>"], Some("0"));
        assert_eq!(update(&req).unwrap_err(), Refusal::BadRequest);
        let req = register(&[], None);
        assert!(matches!(update(&req), Ok(RegisterUpdate::Query)));
    }
}
