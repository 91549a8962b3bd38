//! The provisioned directory as an immutable, indexed snapshot. Built from the store
//! at start and rebuilt after each provisioning change; readers hold an `Arc` to the
//! snapshot they started with, so a lookup never waits for a writer.

use crate::ids::{DeviceId, TenantId, TrunkId, UserId};
use crate::model::{Device, Did, ExternalPhone, Tenant, Trunk, User};
pub use crate::source::SourceRange;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

#[derive(Debug, Default, Clone)]
pub struct Directory {
    tenants: HashMap<TenantId, Tenant>,
    tenant_by_domain: HashMap<String, TenantId>,
    users: HashMap<UserId, User>,
    user_by_extension: HashMap<(TenantId, String), UserId>,
    devices: HashMap<DeviceId, Device>,
    device_by_username: HashMap<(TenantId, String), DeviceId>,
    devices_of_user: HashMap<UserId, Vec<DeviceId>>,
    dids: HashMap<String, Did>,
    trunks: HashMap<TrunkId, Trunk>,
    trunks_of_tenant: HashMap<TenantId, Vec<TrunkId>>,
    /// Every trunk's inbound sources, most specific first (then by trunk name), so the
    /// trunk a source belongs to never depends on hash order.
    trunk_sources: Vec<(SourceRange, TrunkId)>,
    external_phones: HashMap<DeviceId, ExternalPhone>,
    external_phones_of_user: HashMap<UserId, Vec<DeviceId>>,
    /// The subscriber table: users who restricted who may watch them, with the users
    /// allowed to (see `presence::may_watch`). A user not listed: anyone of the tenant.
    allowed_watchers: HashMap<UserId, HashSet<UserId>>,
    /// Tenants with their own limit of SIP subscriptions (the others: the default).
    subscription_limits: HashMap<TenantId, u32>,
}

impl Directory {
    pub fn new(
        tenants: Vec<Tenant>,
        users: Vec<User>,
        devices: Vec<Device>,
        dids: Vec<Did>,
        trunks: Vec<Trunk>,
    ) -> Self {
        let mut d = Directory::default();
        for t in tenants {
            d.tenant_by_domain
                .insert(t.domain.to_ascii_lowercase(), t.id);
            d.tenants.insert(t.id, t);
        }
        for u in users {
            d.user_by_extension
                .insert((u.tenant_id, u.extension.clone()), u.id);
            d.users.insert(u.id, u);
        }
        for dev in devices {
            d.device_by_username
                .insert((dev.tenant_id, dev.sip_username.clone()), dev.id);
            d.devices_of_user
                .entry(dev.user_id)
                .or_default()
                .push(dev.id);
            d.devices.insert(dev.id, dev);
        }
        for did in dids {
            d.dids.insert(did.number.clone(), did);
        }
        for t in trunks {
            d.trunks_of_tenant
                .entry(t.tenant_id)
                .or_default()
                .push(t.id);
            // Stored sources were validated when written; one that no longer parses
            // matches nothing.
            d.trunk_sources.extend(
                t.inbound_sources
                    .iter()
                    .filter_map(|s| s.parse::<SourceRange>().ok())
                    .map(|r| (r, t.id)),
            );
            d.trunks.insert(t.id, t);
        }
        let trunks = &d.trunks;
        d.trunk_sources.sort_by(|(a, ta), (b, tb)| {
            b.prefix()
                .cmp(&a.prefix())
                .then_with(|| trunks[ta].name.cmp(&trunks[tb].name))
                .then_with(|| ta.cmp(tb))
        });
        d
    }

    /// The users' external phones (mobiles used as devices), added to a snapshot.
    pub fn with_external_phones(mut self, phones: Vec<ExternalPhone>) -> Self {
        for p in phones {
            self.external_phones_of_user
                .entry(p.user_id)
                .or_default()
                .push(p.id);
            self.external_phones.insert(p.id, p);
        }
        self
    }

    /// The subscriber table's restrictions, added to a snapshot: (watched user, the
    /// users allowed to watch them).
    pub fn with_watch_rules(mut self, rules: Vec<(UserId, Vec<UserId>)>) -> Self {
        for (user, allowed) in rules {
            self.allowed_watchers
                .insert(user, allowed.into_iter().collect());
        }
        self
    }

    /// The tenants' own limits of SIP subscriptions, added to a snapshot.
    pub fn with_subscription_limits(mut self, limits: Vec<(TenantId, u32)>) -> Self {
        self.subscription_limits = limits.into_iter().collect();
        self
    }

    /// The tenant's own limit of SIP subscriptions, if the operator set one.
    pub fn subscription_limit(&self, tenant: TenantId) -> Option<u32> {
        self.subscription_limits.get(&tenant).copied()
    }

    /// Who may watch `user`, when the user is restricted (None: anyone of the tenant).
    pub fn allowed_watchers(&self, user: UserId) -> Option<&HashSet<UserId>> {
        self.allowed_watchers.get(&user)
    }

    pub fn tenant(&self, id: TenantId) -> Option<&Tenant> {
        self.tenants.get(&id)
    }
    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }
    pub fn tenant_by_domain(&self, domain: &str) -> Option<&Tenant> {
        let id = self.tenant_by_domain.get(&domain.to_ascii_lowercase())?;
        self.tenants.get(id)
    }
    pub fn user(&self, id: UserId) -> Option<&User> {
        self.users.get(&id)
    }
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }
    pub fn user_by_extension(&self, tenant: TenantId, extension: &str) -> Option<&User> {
        let id = self
            .user_by_extension
            .get(&(tenant, extension.to_string()))?;
        self.users.get(id)
    }
    pub fn device(&self, id: DeviceId) -> Option<&Device> {
        self.devices.get(&id)
    }
    pub fn device_by_username(&self, tenant: TenantId, username: &str) -> Option<&Device> {
        let id = self
            .device_by_username
            .get(&(tenant, username.to_string()))?;
        self.devices.get(id)
    }
    pub fn devices_of_user(&self, user: UserId) -> impl Iterator<Item = &Device> {
        self.devices_of_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.devices.get(id))
    }
    pub fn external_phone(&self, id: DeviceId) -> Option<&ExternalPhone> {
        self.external_phones.get(&id)
    }
    pub fn external_phones_of_user(&self, user: UserId) -> impl Iterator<Item = &ExternalPhone> {
        self.external_phones_of_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.external_phones.get(id))
    }
    /// The DID for an E.164 number (with or without the leading `+`).
    pub fn did(&self, number: &str) -> Option<&Did> {
        if let Some(d) = self.dids.get(number) {
            return Some(d);
        }
        if number.starts_with('+') {
            None
        } else {
            self.dids.get(&format!("+{number}"))
        }
    }
    pub fn trunk(&self, id: TrunkId) -> Option<&Trunk> {
        self.trunks.get(&id)
    }
    pub fn all_trunks(&self) -> impl Iterator<Item = &Trunk> {
        self.trunks.values()
    }
    pub fn trunks_of_tenant(&self, tenant: TenantId) -> impl Iterator<Item = &Trunk> {
        self.trunks_of_tenant
            .get(&tenant)
            .into_iter()
            .flatten()
            .filter_map(|id| self.trunks.get(id))
    }
    /// The trunk whose accepted inbound sources contain `ip`: the most specific range
    /// wins. Ranges of different tenants never overlap (see [`source_conflicts`]).
    pub fn trunk_by_source(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunk_sources
            .iter()
            .find(|(r, _)| r.contains(ip))
            .and_then(|(_, t)| self.trunks.get(t))
    }

    /// The trunk of another tenant than `tenant` whose sources contain `ip`.
    pub fn foreign_trunk_by_source(&self, tenant: TenantId, ip: IpAddr) -> Option<&Trunk> {
        self.trunk_sources
            .iter()
            .filter(|(r, _)| r.contains(ip))
            .filter_map(|(_, t)| self.trunks.get(t))
            .find(|t| t.tenant_id != tenant)
    }
}

/// Why a trunk's inbound sources cannot be assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceConflict {
    /// The range overlaps a range of another tenant's trunk.
    OtherTenant {
        range: SourceRange,
        other: SourceRange,
    },
    /// The range holds an address a phone of another tenant registered from.
    RegisteredPhone { range: SourceRange, address: IpAddr },
}

impl std::fmt::Display for SourceConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OtherTenant { range, other } => write!(
                f,
                "{range} overlaps {other}, an inbound source of another tenant's trunk"
            ),
            Self::RegisteredPhone { range, address } => write!(
                f,
                "{range} holds {address}, where a phone of another tenant is registered"
            ),
        }
    }
}

/// Checks inbound sources for a trunk of `tenant` against the other tenants' trunks and
/// the addresses their phones registered from: a source address names one tenant, and
/// never one whose phones would be taken for a carrier. Pure: the caller gathers both.
pub fn source_conflicts<'a>(
    tenant: TenantId,
    ranges: &[SourceRange],
    trunks: impl IntoIterator<Item = &'a Trunk>,
    registered: &[(TenantId, IpAddr)],
) -> Vec<SourceConflict> {
    let others: Vec<SourceRange> = trunks
        .into_iter()
        .filter(|t| t.tenant_id != tenant)
        .flat_map(|t| t.inbound_sources.iter())
        .filter_map(|s| s.parse().ok())
        .collect();
    let mut out = Vec::new();
    for range in ranges {
        if let Some(other) = others.iter().find(|o| o.overlaps(range)) {
            out.push(SourceConflict::OtherTenant {
                range: *range,
                other: *other,
            });
        }
        if let Some((_, address)) = registered
            .iter()
            .find(|(t, ip)| *t != tenant && range.contains(*ip))
        {
            out.push(SourceConflict::RegisteredPhone {
                range: *range,
                address: *address,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(tenant: TenantId, n: u128, name: &str, sources: &[&str]) -> Trunk {
        Trunk {
            id: TrunkId::for_test(n),
            tenant_id: tenant,
            name: name.into(),
            peer_host: "192.0.2.1".into(),
            peer_port: 5060,
            transport: crate::model::TransportKind::Udp,
            username: None,
            password: None,
            inbound_sources: sources.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_most_specific_source_wins_whatever_the_order() {
        let a = TenantId::for_test(1);
        let wide = trunk(a, 1, "wide", &["192.0.2.0/24"]);
        let narrow = trunk(a, 2, "narrow", &["192.0.2.7"]);
        for trunks in [
            vec![wide.clone(), narrow.clone()],
            vec![narrow.clone(), wide.clone()],
        ] {
            let d = Directory::new(vec![], vec![], vec![], vec![], trunks);
            let ip = |s: &str| s.parse::<IpAddr>().unwrap();
            assert_eq!(d.trunk_by_source(ip("192.0.2.7")).unwrap().name, "narrow");
            assert_eq!(d.trunk_by_source(ip("192.0.2.8")).unwrap().name, "wide");
            assert!(d.trunk_by_source(ip("192.0.3.1")).is_none());
        }
    }

    #[test]
    fn sources_may_not_cross_tenants_or_cover_their_phones() {
        let (a, b) = (TenantId::for_test(1), TenantId::for_test(2));
        let trunks = [trunk(a, 1, "carrier", &["127.0.0.2"])];
        let r = |s: &str| s.parse::<SourceRange>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let phones = [(a, ip("127.0.0.1"))];
        // B may not take A's carrier address, nor the address A's phone registered from.
        assert_eq!(
            source_conflicts(b, &[r("127.0.0.0/8")], &trunks, &phones).len(),
            2
        );
        assert_eq!(
            source_conflicts(b, &[r("127.0.0.1")], &trunks, &phones),
            vec![SourceConflict::RegisteredPhone {
                range: r("127.0.0.1"),
                address: ip("127.0.0.1")
            }]
        );
        assert!(source_conflicts(b, &[r("127.0.0.3")], &trunks, &phones).is_empty());
        // Within a tenant, ranges may overlap (the most specific wins).
        assert!(source_conflicts(a, &[r("127.0.0.0/8")], &trunks, &phones).is_empty());
    }

    #[test]
    fn extensions_are_per_tenant() {
        let a = TenantId::for_test(1);
        let b = TenantId::for_test(2);
        let t = |id, domain: &str| Tenant {
            id,
            domain: domain.into(),
            name: domain.into(),
            time_zone: "UTC".into(),
        };
        let u = |n, tenant_id| User {
            id: UserId::for_test(n),
            tenant_id,
            extension: "1001".into(),
            display_name: format!("u{n}"),
            portal_login: None,
        };
        let d = Directory::new(
            vec![t(a, "a.example"), t(b, "B.example")],
            vec![u(1, a), u(2, b)],
            vec![],
            vec![],
            vec![],
        );
        assert_eq!(
            d.user_by_extension(a, "1001").unwrap().id,
            UserId::for_test(1)
        );
        assert_eq!(
            d.user_by_extension(b, "1001").unwrap().id,
            UserId::for_test(2)
        );
        assert_eq!(d.tenant_by_domain("b.EXAMPLE").unwrap().id, b);
    }
}
