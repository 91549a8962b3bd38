//! Server side: nonces that carry their own proof, and the replay window of their counts.

use super::*;
use crate::secret::Secret;

/// Issues and checks nonces:
/// `nonce = base64url(timestamp_secs || id || HMAC-SHA256(secret, timestamp || id || realm)[..16])`,
/// where `id` numbers the nonces this keeper issued and picks the nonce's slot in the
/// count window.
#[derive(Debug)]
pub struct NonceKeeper {
    /// The HMAC key, hex-encoded (drawn at start, never shown).
    secret: Secret,
    ttl_secs: u64,
    counts: NonceCounts,
}

/// The replay window: a ring of slots, one per recently issued nonce, each holding the
/// nonce's id (high 32 bits) and the highest nonce count accepted with it (low 32
/// bits; 0 before the first). Lock-free, shared by every shard of the node: a replay
/// with another Call-ID lands on another shard. Memory is fixed: a flood of challenges
/// only makes older nonces stale sooner.
pub struct NonceCounts {
    slots: Box<[AtomicU64]>,
    next: AtomicU32,
}

impl std::fmt::Debug for NonceCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceCounts")
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl NonceCounts {
    pub fn new(slots: usize) -> Self {
        let slots = slots.next_power_of_two().max(1);
        Self {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicU32::new(0),
        }
    }

    fn slot(&self, id: u32) -> &AtomicU64 {
        &self.slots[id as usize & (self.slots.len() - 1)]
    }

    /// A new nonce id; its slot starts with no count accepted.
    fn issue(&self) -> u32 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.slot(id).store(u64::from(id) << 32, Ordering::Relaxed);
        id
    }

    /// Accepts `nc` for nonce `id` when it is above every count accepted before and the
    /// slot still belongs to the nonce.
    fn accept(&self, id: u32, nc: u32) -> bool {
        let slot = self.slot(id);
        let mut current = slot.load(Ordering::Acquire);
        loop {
            if (current >> 32) as u32 != id || nc <= current as u32 {
                return false;
            }
            let next = (u64::from(id) << 32) | u64::from(nc);
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

impl NonceKeeper {
    pub fn new(secret: [u8; 32], ttl_secs: u64) -> Self {
        Self::with_slots(secret, ttl_secs, NONCE_SLOTS)
    }

    /// A keeper whose count window has `slots` slots (rounded up to a power of two).
    pub fn with_slots(secret: [u8; 32], ttl_secs: u64, slots: usize) -> Self {
        Self {
            secret: Secret::new(hex::encode(secret)),
            ttl_secs,
            counts: NonceCounts::new(slots),
        }
    }

    /// A fresh nonce for `realm` at `now_secs`.
    pub fn nonce(&self, realm: &str, now_secs: u64) -> String {
        let ts = now_secs.to_be_bytes();
        let id = self.counts.issue().to_be_bytes();
        let mut out = Vec::with_capacity(NONCE_LEN);
        out.extend_from_slice(&ts);
        out.extend_from_slice(&id);
        out.extend_from_slice(&self.mac(&ts, &id, realm).finalize().into_bytes()[..NONCE_MAC_LEN]);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Header VALUES (not names) to send in WWW-Authenticate (401) / Proxy-Authenticate
    /// (407): one challenge per algorithm, SHA-256 first then MD5 (RFC 8760 §2.4: clients
    /// take the first they support), each with realm, nonce, algorithm, qop="auth", and
    /// stale=true when `stale`. No opaque: the nonce already carries all the state.
    pub fn challenges(&self, realm: &str, now_secs: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(realm, now_secs);
        [Algorithm::Sha256, Algorithm::Md5]
            .into_iter()
            .map(|algorithm| {
                let mut value = format!(
                    "Digest realm={}, nonce=\"{nonce}\", algorithm={algorithm}, qop=\"auth\"",
                    quote(realm)
                );
                if stale {
                    value.push_str(", stale=true");
                }
                value
            })
            .collect()
    }

    /// Checks parsed credentials against the stored HA1 for their algorithm (the caller
    /// picks the HA1 matching `creds.algorithm`). The nonce is checked against
    /// `creds.realm`, so credentials for another realm are `BadNonce`. `Stale` is only
    /// returned for a correct response (RFC 2617 §3.2.1), so a stale answer never tells
    /// an attacker to retry. A correct, fresh response is accepted once per nonce count:
    /// `Ok` records its `nc`, and the same or a lower count afterwards is `Replay`.
    pub fn verify(&self, creds: &Credentials, method: &str, ha1: &str, now_secs: u64) -> Verdict {
        let Some((issued, id)) = self.nonce_origin(&creds.nonce, &creds.realm) else {
            return Verdict::BadNonce;
        };
        let qop = match (&creds.qop, &creds.nc, &creds.cnonce) {
            (None, _, _) => None,
            (Some(qop), Some(nc), Some(cnonce)) if qop.eq_ignore_ascii_case("auth") => {
                Some((nc.as_str(), cnonce.as_str()))
            }
            // auth-int, unknown qop, or qop without nc/cnonce: nothing we can match.
            _ => return Verdict::BadResponse,
        };
        let expected = response(
            creds.algorithm,
            &ha1.to_ascii_lowercase(),
            &creds.nonce,
            method,
            &creds.uri,
            qop,
        );
        let given = creds.response.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Verdict::BadResponse;
        }
        // A nonce from the future means our clock stepped back; it is still ours.
        if now_secs.saturating_sub(issued) > self.ttl_secs {
            return Verdict::Stale;
        }
        // Without qop there is no count: the nonce is good for one request.
        let nc = match qop {
            Some((nc, _)) => match u32::from_str_radix(nc, 16) {
                Ok(nc) => nc,
                Err(_) => return Verdict::BadResponse,
            },
            None => 1,
        };
        if !self.counts.accept(id, nc) {
            return Verdict::Replay;
        }
        Verdict::Ok
    }

    fn mac(&self, ts: &[u8; 8], id: &[u8; 4], realm: &str) -> HmacSha256 {
        // new_from_slice cannot fail: HMAC accepts keys of any length.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.secret.expose().as_bytes())
            .expect("hmac accepts any key length");
        mac.update(ts);
        mac.update(id);
        mac.update(realm.as_bytes());
        mac
    }

    /// The issue time and id of a nonce we made for `realm`, or None if it is not ours.
    fn nonce_origin(&self, nonce: &str, realm: &str) -> Option<(u64, u32)> {
        // Bound the work before decoding: a real nonce is exactly 38 characters.
        if nonce.len() > 64 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        if raw.len() != NONCE_LEN {
            return None;
        }
        let ts: [u8; 8] = raw[..8].try_into().ok()?;
        let id: [u8; 4] = raw[8..12].try_into().ok()?;
        self.mac(&ts, &id, realm)
            .verify_truncated_left(&raw[12..])
            .ok()?;
        Some((u64::from_be_bytes(ts), u32::from_be_bytes(id)))
    }
}
