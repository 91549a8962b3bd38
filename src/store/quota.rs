//! Per-tenant quotas: how many contacts, devices and SIP subscriptions a tenant may
//! hold, so that no tenant (or user) can exhaust a node's memory or database. The
//! platform's defaults come from `[quotas]`; the operator may set a tenant's own.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A tenant's own limits, each overriding the platform default when set. Stored per
/// tenant; a tenant with none stored has the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantQuotas {
    /// Contacts of the tenant: shared and every user's personal ones.
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295u64)]
    pub contacts: Option<u32>,
    /// Personal contacts of one user.
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295u64)]
    pub contacts_per_user: Option<u32>,
    /// SIP devices (phones) of the tenant.
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295u64)]
    pub devices: Option<u32>,
    /// SIP subscriptions (SUBSCRIBE) the tenant's phones may hold at once, per node.
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295u64)]
    pub subscriptions: Option<u32>,
}

/// The platform's defaults, and the limits in force for a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quotas {
    pub contacts: u32,
    pub contacts_per_user: u32,
    pub devices: u32,
    pub subscriptions: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            contacts: 50_000,
            contacts_per_user: 5_000,
            devices: 1_000,
            subscriptions: 10_000,
        }
    }
}

impl Quotas {
    /// The limits of a tenant with `own` limits, over these defaults.
    pub fn with(self, own: TenantQuotas) -> Self {
        Self {
            contacts: own.contacts.unwrap_or(self.contacts),
            contacts_per_user: own.contacts_per_user.unwrap_or(self.contacts_per_user),
            devices: own.devices.unwrap_or(self.devices),
            subscriptions: own.subscriptions.unwrap_or(self.subscriptions),
        }
    }
}
