//! Digest authentication as the shard applies it: asks `sip::auth` for the decision
//! and sends the challenge (401/407) or refusal itself.

use super::*;

impl Shard {
    /// Digest authentication of a request from a device of `tenant` (None: nobody hosts
    /// `realm`, which is challenged all the same). Sends the challenge or refusal itself
    /// (src/sip/auth decides) and returns None unless the device proved itself.
    pub(super) fn authenticate(
        &mut self,
        req: &Request,
        peer: Peer,
        key: &TxKey,
        realm: &str,
        tenant: Option<tsps_actors::TenantId>,
        proxy: bool,
    ) -> Option<Device> {
        let header = if proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        let request_uri = req.uri.to_string();
        // Whose phone this claims to be, for the algorithms to offer it.
        let party = if req.method == Method::Register {
            "To"
        } else {
            "From"
        };
        let claimed = h::first(&req.headers, party).and_then(|v| h::uri_user(h::uri(v)));
        let attempt = Attempt {
            method: method_name(req.method),
            request_uri: &request_uri,
            credentials: h::each(&req.headers, header),
            source: peer.addr.ip(),
            realm,
            tenant,
            claimed,
        };
        let now = self.ctx.now_ms();
        let dir = self.ctx.directory.current();
        match self.ctx.auth.decide(&attempt, &dir, now) {
            Decision::Accept(device) => Some(device),
            Decision::Challenge { stale, offer } => {
                self.challenge(key, realm, proxy, stale, &offer, now);
                None
            }
            Decision::Refuse(code) => {
                self.refuse(key, code);
                None
            }
            Decision::Ignore => {
                // Nothing is sent; the transaction goes with its retransmissions.
                self.tx(Input::Forget { key: key.clone() });
                None
            }
        }
    }

    pub(super) fn challenge(
        &mut self,
        key: &TxKey,
        realm: &str,
        proxy: bool,
        stale: bool,
        offer: &[super::digest::Algorithm],
        now_ms: u64,
    ) {
        let (code, name) = if proxy {
            (407, "Proxy-Authenticate")
        } else {
            (401, "WWW-Authenticate")
        };
        let values = self.ctx.auth.challenges(realm, now_ms, stale, offer);
        let extra: Vec<(&str, &str)> = values.iter().map(|v| (name, v.as_str())).collect();
        let tag = build::token();
        self.respond(key, code, Some(&tag), &extra, None);
    }

    pub(super) fn refuse(&mut self, key: &TxKey, code: u16) {
        let tag = build::token();
        self.respond(key, code, Some(&tag), &[], None);
    }
}
