//! Domain model: what is provisioned (tenants, users, devices, DIDs, trunks) and what
//! is recorded (registrations, call detail records). Plain data, no I/O.

use crate::ids::{CallId, DeviceId, LegId, TenantId, TrunkId, UserId};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    /// SIP domain, lower case, e.g. `acme.example`. Unique across tenants.
    pub domain: String,
    pub name: String,
    /// IANA time zone name, e.g. `Europe/Zurich`.
    pub time_zone: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    /// Internal extension, unique within the tenant, e.g. `1001`.
    pub extension: String,
    pub display_name: String,
    /// Login name for the portal, unique within the tenant.
    pub portal_login: Option<String>,
}

/// A SIP device. Only digest HA1 values are stored, never the password
/// (RFC 8760: one HA1 per algorithm, computed over `username:realm:password`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: DeviceId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// SIP authentication user name, unique within the tenant.
    pub sip_username: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    /// The phone answers a ringing call by itself when told to (a NOTIFY with
    /// `Event: talk`, as BroadWorks, Polycom and Yealink phones do).
    #[serde(default)]
    pub remote_answer: bool,
    /// The digest algorithms this phone is challenged with, preferred first; empty: the
    /// platform's (`sip.digest_algorithms`). Some phones (baresip 1.0) fail when offered
    /// one they do not know, even beside MD5.
    #[serde(default)]
    pub digest_algorithms: Vec<DigestAlgorithm>,
}

/// A digest hash algorithm a device may be challenged with (RFC 8760).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DigestAlgorithm {
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl DigestAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    /// `MD5` or `SHA-256` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Md5, Self::Sha256]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("sip_username", &self.sip_username)
            .field("ha1", &"[redacted]")
            .field("remote_answer", &self.remote_answer)
            .field("digest_algorithms", &self.digest_algorithms)
            .finish()
    }
}

/// A phone outside tsps that a user may use as one of their devices (a mobile): rung
/// through the tenant's trunk for click-to-dial and to answer a ringing call on it.
/// Its id shares the device id space, so the API takes it wherever a device goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalPhone {
    pub id: DeviceId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// E.164 with leading `+`, normalised by the tenant's dialing rules.
    pub number: String,
    /// What the user calls it (`Mobile`); may be empty.
    pub label: String,
}

/// A direct inward dialling number routed to a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Did {
    /// E.164 with leading `+`, e.g. `+41445550100`. Unique across tenants.
    pub number: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
        })
    }
}

/// A SIP trunk toward a carrier: where outbound calls go, which source
/// addresses are trusted for inbound calls, and the credentials tsps uses
/// when the carrier challenges it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trunk {
    pub id: TrunkId,
    pub tenant_id: TenantId,
    pub name: String,
    /// Host name or IP literal of the carrier's SIP server.
    pub peer_host: String,
    pub peer_port: u16,
    pub transport: TransportKind,
    /// Outbound digest credentials (tsps is the client here, so the secret is kept).
    pub username: Option<String>,
    #[serde(with = "crate::secret::exposed_opt", default)]
    pub password: Option<Secret>,
    /// Source IP addresses (or CIDR blocks) accepted for inbound calls.
    pub inbound_sources: Vec<String>,
}

/// A registration binding (RFC 3261 §10): one contact of one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub device_id: DeviceId,
    /// The contact URI as registered, e.g. `sip:1001@192.0.2.1:5062;transport=udp`.
    pub contact: String,
    /// Where requests for this contact are actually sent (source of the REGISTER,
    /// for NAT): `udp:127.0.0.1:5062` or `tcp:127.0.0.1:40001`.
    pub received: String,
    pub expires_at: DateTime<Utc>,
    /// Call-ID and CSeq of the REGISTER that last refreshed it (RFC 3261 §10.3 step 7).
    pub call_id: String,
    pub cseq: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    /// Device to device inside one tenant.
    Internal,
    /// From a trunk to a user (by DID).
    Inbound,
    /// From a user to an outside number through the tenant's trunk.
    Outbound,
}

impl CallDirection {
    pub fn as_str(&self) -> &'static str {
        match self {
            CallDirection::Internal => "internal",
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Answered,
    Busy,
    NoAnswer,
    /// The caller hung up before answer.
    Cancelled,
    /// Nobody to ring (not found, not registered).
    Unavailable,
    Rejected,
    Failed,
}

impl CallOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Busy => "busy",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Cancelled => "cancelled",
            CallOutcome::Unavailable => "unavailable",
            CallOutcome::Rejected => "rejected",
            CallOutcome::Failed => "failed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Caller,
    Callee,
    System,
}

/// One leg of a call as recorded in the CDR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegRecord {
    pub id: LegId,
    /// `caller` for the inbound leg, `callee` for each outgoing attempt.
    pub role: Party,
    /// Who or what the leg reached: a device contact, a trunk, a caller URI.
    pub target: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Final SIP status of the leg if it failed, 200 if answered.
    pub status_code: Option<u16>,
    /// The user whose phone the leg rang (or who placed the call from it).
    #[serde(default)]
    pub user_id: Option<UserId>,
}

/// Call detail record: written once when the call ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: CallId,
    pub tenant_id: TenantId,
    pub direction: CallDirection,
    /// Caller as presented (extension or E.164 number).
    pub caller: String,
    /// Number or extension dialled.
    pub callee: String,
    pub caller_user_id: Option<UserId>,
    pub callee_user_id: Option<UserId>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub outcome: CallOutcome,
    pub hangup_by: Option<Party>,
    /// Why the call went where it went: the feature servers' reasons, in order.
    #[serde(default)]
    pub decision: Vec<String>,
    pub legs: Vec<LegRecord>,
}
