//! The provisioned directory as an immutable, indexed snapshot. Built from the store
//! at start and rebuilt after each provisioning change; readers hold an `Arc` to the
//! snapshot they started with, so a lookup never waits for a writer.

use crate::ids::{DeviceId, TenantId, TrunkId, UserId};
use crate::model::{Device, Did, ExternalPhone, Tenant, Trunk, User};
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
    external_phones: HashMap<DeviceId, ExternalPhone>,
    external_phones_of_user: HashMap<UserId, Vec<DeviceId>>,
    /// The subscriber table: users who restricted who may watch them, with the users
    /// allowed to (see `presence::may_watch`). A user not listed: anyone of the tenant.
    allowed_watchers: HashMap<UserId, HashSet<UserId>>,
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
            d.trunks.insert(t.id, t);
        }
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
    pub fn trunks_of_tenant(&self, tenant: TenantId) -> impl Iterator<Item = &Trunk> {
        self.trunks_of_tenant
            .get(&tenant)
            .into_iter()
            .flatten()
            .filter_map(|id| self.trunks.get(id))
    }
    /// The trunk whose accepted inbound sources contain `ip` (an address or a CIDR block).
    pub fn trunk_by_source(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks
            .values()
            .find(|t| t.inbound_sources.iter().any(|s| source_matches(s, ip)))
    }
}

/// `s` is an IP address (`192.0.2.1`) or a CIDR block (`192.0.2.0/24`, `::1/128`).
pub fn source_matches(s: &str, ip: IpAddr) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, p.parse::<u8>().ok()),
        None => (s, None),
    };
    let Ok(net) = addr.trim().parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = prefix.unwrap_or(32).min(32) as u32;
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(n) & mask) == (u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = prefix.unwrap_or(128).min(128) as u32;
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(n) & mask) == (u128::from(i) & mask)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_and_plain_sources() {
        let ip: IpAddr = "127.0.0.5".parse().unwrap();
        assert!(source_matches("127.0.0.0/8", ip));
        assert!(source_matches("127.0.0.5", ip));
        assert!(!source_matches("127.0.0.6", ip));
        assert!(!source_matches("::1", ip));
        assert!(source_matches("::1/128", "::1".parse().unwrap()));
        assert!(!source_matches("garbage", ip));
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
