//! How a call begins: what the SIP layer (or click-to-dial) gives a new call actor.

use crate::ids::{CallId, DeviceId, LegId, TenantId};
use crate::model::Binding;
use crate::ports::{Body, LegCommand, PartyInfo};
use crate::tenant::CallOrigin;
use actix::prelude::*;

/// Everything a call actor needs to start: created by the SIP layer for each
/// authenticated initial INVITE, or for a call tsps places itself (click-to-dial).
pub struct CallSetup {
    pub call: CallId,
    pub tenant: TenantId,
    pub start: CallStart,
    pub origin: CallOrigin,
    /// The caller as the callee should see it.
    pub caller: PartyInfo,
    /// The dialled extension, number or DID.
    pub dialled: String,
    /// Where leg commands go (the SIP shard that owns the call's legs).
    pub sip: Recipient<LegCommand>,
}

/// How a call begins.
#[derive(Clone, Debug)]
pub enum CallStart {
    /// An incoming INVITE (already answered 100 Trying by the SIP layer).
    Incoming {
        leg: LegId,
        /// Description of the caller leg for the CDR (device or trunk address).
        target: String,
        offer: Option<Body>,
    },
    /// Click-to-dial (RFC 3725 flow I): tsps first calls the user's device without an
    /// offer; the origin says whom the call is for.
    ClickToDial {
        device: DeviceId,
        reach: DeviceReach,
    },
}

/// How tsps reaches one of a user's devices.
#[derive(Clone, Debug)]
pub enum DeviceReach {
    /// A SIP device, at its registered contacts.
    Contacts(Vec<Binding>),
    /// An external phone (a mobile): this E.164 number, through the tenant's trunk.
    Number(String),
}
