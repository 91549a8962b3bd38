//! Typed identifiers. Each wraps a UUID so that a tenant can never be passed where a
//! user is expected; the store maps them to plain UUID columns.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered identifier (UUID v7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// A stable identifier for tests: `for_test(1) != for_test(2)`.
            pub const fn for_test(n: u128) -> Self {
                Self(Uuid::from_u128(n))
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::from_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

typed_id!(
    /// A tenant: one customer organisation with its own SIP domain.
    TenantId
);
typed_id!(
    /// A user (person) inside a tenant.
    UserId
);
typed_id!(
    /// A SIP device (phone, softphone) belonging to a user.
    DeviceId
);
typed_id!(
    /// A SIP trunk of a tenant (carrier interconnect).
    TrunkId
);
typed_id!(
    /// One call through the platform (one call actor, one call detail record).
    CallId
);
typed_id!(
    /// One leg of a call (the caller side or one callee attempt).
    LegId
);
