//! The ports between the call logic and the edges. The SIP layer implements
//! [`LegCommand`] (it turns commands into SIP) and sends [`LegEvent`]s to call actors;
//! durable writes leave through [`Persistence`]; time comes from a [`Clock`].

use crate::ids::{CallId, LegId, TenantId, TrunkId, UserId};
use crate::model::{Binding, CallRecord};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// An opaque session description (SDP bytes, relayed unchanged).
pub type Body = Arc<[u8]>;

/// Who is calling or being called, as shown to the other side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartyInfo {
    /// User part to present: an extension (`1001`) or an E.164 number.
    pub user: String,
    pub display_name: Option<String>,
    /// Domain to present (the tenant's SIP domain).
    pub domain: String,
}

/// Where an outgoing leg goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialTarget {
    /// A registered contact of a device.
    Contact(Binding),
    /// An outside number through a trunk.
    Trunk { trunk_id: TrunkId, number: String },
    /// A SIP URI (a user's external feature server).
    Uri(String),
}

impl DialTarget {
    pub fn describe(&self) -> String {
        match self {
            DialTarget::Contact(b) => b.contact.clone(),
            DialTarget::Trunk { number, .. } => format!("trunk:{number}"),
            DialTarget::Uri(u) => u.clone(),
        }
    }
}

/// What happened on a leg, reported by the SIP layer to the leg's call actor.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct LegEvent {
    pub leg: LegId,
    pub kind: LegEventKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegEventKind {
    /// The far end is ringing or sends early media (180/183).
    Progress { code: u16, body: Option<Body> },
    /// The far end answered (2xx to the initial INVITE).
    Answered { body: Option<Body> },
    /// The initial INVITE failed with this final status (or 408 on timeout).
    Failed { code: u16 },
    /// The far end redirected the call (3xx) to these targets, most preferred first.
    Redirected {
        code: u16,
        targets: Vec<RedirectTarget>,
    },
    /// The caller cancelled before answer (A-leg only).
    Cancelled,
    /// ACK for a 2xx we sent (initial or re-INVITE), possibly carrying an SDP answer.
    Acked { body: Option<Body> },
    /// A re-INVITE arrived on this leg (hold, resume, new offer).
    ReOffer { body: Option<Body> },
    /// The answer to a re-INVITE we relayed on this leg.
    ReAnswer { code: u16, body: Option<Body> },
    /// BYE received, or the dialog died (ACK never came, transport failed).
    Hangup,
}

/// An outgoing leg to start. Events for it go to `events`.
#[derive(Clone, Debug)]
pub struct Dial {
    pub call: CallId,
    pub leg: LegId,
    pub tenant: TenantId,
    pub target: DialTarget,
    pub caller: PartyInfo,
    pub callee: PartyInfo,
    pub body: Option<Body>,
    pub events: Recipient<LegEvent>,
}

/// One Contact of a 3xx response, with the parts routing needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectTarget {
    pub uri: String,
    pub user: Option<String>,
    pub host: String,
}

/// What a call actor asks the SIP layer to do on one leg.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub enum LegCommand {
    /// Start an outgoing leg (boxed: it is much larger than the other commands).
    Dial(Box<Dial>),
    /// Send a provisional response on the incoming leg.
    Progress {
        leg: LegId,
        code: u16,
        body: Option<Body>,
    },
    /// Answer the incoming leg with 200.
    Answer { leg: LegId, body: Option<Body> },
    /// Reject the incoming leg with a final status.
    Reject { leg: LegId, code: u16 },
    /// Cancel an outgoing leg not yet answered.
    Cancel { leg: LegId },
    /// End an established leg (BYE).
    Hangup { leg: LegId },
    /// Acknowledge a 2xx received on an outgoing leg (carries the SDP answer in a delayed offer).
    Ack { leg: LegId, body: Option<Body> },
    /// Relay a re-INVITE offer onto this leg.
    ReOffer { leg: LegId, body: Option<Body> },
    /// Answer a re-INVITE received on this leg.
    ReAnswer {
        leg: LegId,
        code: u16,
        body: Option<Body>,
    },
    /// Ask the device ringing on this outgoing leg to answer by itself (a NOTIFY with
    /// `Event: talk` in the leg's early dialog).
    RemoteAnswer { leg: LegId },
    /// From now on this leg's events go to another call actor, which also sends its
    /// commands (a consultative transfer moves the leg into another call).
    HandOver {
        leg: LegId,
        events: Recipient<LegEvent>,
    },
    /// Answer the incoming INVITE of this leg with 302 to `contact` (personal mode: a
    /// forward to a number is left to the upstream tenant).
    Redirect { leg: LegId, contact: String },
}

impl LegCommand {
    pub fn leg(&self) -> LegId {
        match self {
            LegCommand::Dial(d) => d.leg,
            LegCommand::Progress { leg, .. }
            | LegCommand::Answer { leg, .. }
            | LegCommand::Reject { leg, .. }
            | LegCommand::Cancel { leg }
            | LegCommand::Hangup { leg }
            | LegCommand::Ack { leg, .. }
            | LegCommand::ReOffer { leg, .. }
            | LegCommand::ReAnswer { leg, .. }
            | LegCommand::RemoteAnswer { leg }
            | LegCommand::HandOver { leg, .. }
            | LegCommand::Redirect { leg, .. } => *leg,
        }
    }
}

/// Registration changes and call records leave the actors through this port. It must
/// not block: implementations queue the write and retry, so a slow or failing
/// database never stalls a call and never loses the record.
pub trait Persistence: Send + Sync + 'static {
    fn binding_saved(&self, binding: &Binding);
    fn binding_removed(&self, tenant: TenantId, user: UserId, binding: &Binding);
    fn call_ended(&self, record: CallRecord);
}

/// One number of a contact the user can see (personal or tenant-shared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactEntry {
    /// E.164, as normalised when the contact was saved.
    pub number: String,
    pub name: String,
    pub handling_code: Option<String>,
    pub shared: bool,
}

/// What a user actor needs to decide calls.
#[derive(Clone, Debug, Default)]
pub struct UserFeatures {
    pub profile: crate::feature::Profile,
    pub presence: crate::feature::Presence,
    pub contacts: Vec<ContactEntry>,
}

pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Why features could not be loaded. Actors keep deciding on what they already know
/// and load again later, whichever it is; the kinds differ in what the log says.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FeatureError {
    /// The store did not answer (down, timed out, a connection error).
    #[error("the feature store is unavailable: {0}")]
    Unavailable(String),
    /// The store answered with something that cannot be used (a row that does not
    /// decode, a profile that no longer validates).
    #[error("stored features are unusable: {0}")]
    Invalid(String),
}

/// The tenant tier's word on calls for one user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TenantPolicy {
    /// On to the user's feature server in tsps.
    #[default]
    Accept,
    /// Refused at the tenant (a suspended user).
    Reject,
    /// On to the user's own feature server at this SIP URI.
    External(String),
}

/// Where user and tenant actors load their features from (the store). Called off the
/// hot path: at start and after each change; a call never waits on it longer than the
/// actor's time budget.
pub trait FeatureSource: Send + Sync + 'static {
    fn load(&self, tenant: TenantId, user: UserId)
        -> BoxFuture<Result<UserFeatures, FeatureError>>;

    /// Users of `tenant` whose policy is not the default `Accept`.
    fn tenant_policies(
        &self,
        _tenant: TenantId,
    ) -> BoxFuture<Result<std::collections::HashMap<UserId, TenantPolicy>, FeatureError>> {
        Box::pin(async { Ok(Default::default()) })
    }
}

/// Features for users with nothing stored: the default profile.
pub struct DefaultFeatures;

impl FeatureSource for DefaultFeatures {
    fn load(&self, _: TenantId, _: UserId) -> BoxFuture<Result<UserFeatures, FeatureError>> {
        Box::pin(async { Ok(UserFeatures::default()) })
    }
}

/// Wall-clock time (registrations expire at wall-clock instants that survive a restart).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A persistence port that keeps nothing (unit tests, benchmarks of pure logic).
#[derive(Default)]
pub struct NoPersistence;

impl Persistence for NoPersistence {
    fn binding_saved(&self, _: &Binding) {}
    fn binding_removed(&self, _: TenantId, _: UserId, _: &Binding) {}
    fn call_ended(&self, _: CallRecord) {}
}

/// tsps's own media engine (src/media): conference bridges that mix the participants'
/// audio. The call logic sees session descriptions as opaque bodies: the bridge writes
/// its offers and answers and reads the participants'.
pub trait Media: Send + Sync + 'static {
    /// A new, empty bridge for `call`. Dropping the returned bridge closes it and frees
    /// its ports.
    fn open_bridge(&self, tenant: TenantId, call: CallId) -> Result<Box<dyn Bridge>, MediaError>;
}

/// One conference bridge: one RTP port per participant leg, each participant hears the
/// sum of the others (not itself).
pub trait Bridge: Send + 'static {
    /// Adds the participant on `leg` (or offers again to one already there, keeping its
    /// port): tsps's SDP offer for it, to send in a re-INVITE.
    fn offer(&mut self, leg: LegId) -> Result<Body, MediaError>;
    /// The participant's answer to [`Bridge::offer`] (in a 2xx or an ACK): where to send
    /// its audio and in which codec. Mixing for it starts now.
    fn answer(&mut self, leg: LegId, sdp: &[u8]) -> Result<(), MediaError>;
    /// A new offer from the participant (its own re-INVITE: hold, resume, a new
    /// address): tsps's answer. A participant that holds the conference
    /// (`sendonly`/`inactive`) is answered `inactive`: it is neither heard nor sent to.
    fn reoffer(&mut self, leg: LegId, sdp: &[u8]) -> Result<Body, MediaError>;
    /// The participant left: its port is closed.
    fn remove(&mut self, leg: LegId);
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    #[error("this node has no media bridge")]
    Unavailable,
    #[error("no free RTP port")]
    NoPort,
    #[error("no codec in common (the bridge mixes PCMU and PCMA)")]
    NoCommonCodec,
    #[error("unusable session description: {0}")]
    BadSdp(String),
    #[error("no such participant on the bridge")]
    UnknownLeg,
}

/// No media engine (unit tests of the call logic that do not conference).
pub struct NoMedia;

impl Media for NoMedia {
    fn open_bridge(&self, _: TenantId, _: CallId) -> Result<Box<dyn Bridge>, MediaError> {
        Err(MediaError::Unavailable)
    }
}
