//! Declarative provisioning: one document (YAML, TOML or JSON) describes tenants with
//! their users, devices, DIDs and trunks, and [`apply`] makes the store match it.
//!
//! Applying is idempotent. Every entity is matched by its natural key (tenant domain,
//! (tenant, extension), (tenant, SIP user name), DID number, (tenant, trunk name)),
//! created if missing, updated if different, and left alone if equal; entities that
//! the document does not mention are never touched, so a file can describe a part of
//! the platform. Device passwords are turned into digest HA1s here and then dropped:
//! the store never sees them. A user's portal `password` is stored as an argon2id
//! hash; applying the same password again verifies it against the stored hash and
//! leaves the hash alone. A user's `role` and `password`, when omitted, are left as
//! they are (a password the user chose in the portal survives the next apply).
//!
//! The whole document is validated before the first write, so a typo writes nothing.
//! A store error half-way (a DID number taken by another tenant, say) leaves what was
//! applied before it; fixing the document and applying again completes the rest.

use crate::config::Secret;
use crate::password::{self, PasswordError};
use crate::rules;
use crate::sip::digest::{ha1_md5, ha1_sha256};
use crate::store::{OperatorAccount, Store, StoreError, UserRole};
use crate::web::rule_schemas;
use chrono::Timelike;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tsps_actors::directory::{SourceConflict, SourceRange};
use tsps_actors::model::{Device, Did, Tenant, TransportKind, Trunk, User};
use tsps_actors::{DeviceId, TenantId, TrunkId, UserId};
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot tell the format of {}: use .yaml, .yml, .toml or .json", .0.display())]
    UnknownFormat(PathBuf),
    #[error("invalid {format} document: {message}")]
    Parse { format: DocFormat, message: String },
    /// A value breaks a rule; `path` names the element, e.g. `tenants[0].users[1].extension`.
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    /// The store refused a write for the element at `path`.
    #[error("{path}: {source}")]
    Store {
        path: String,
        #[source]
        source: StoreError,
    },
    /// Hashing or checking the portal password of the user at `path` failed.
    #[error("{path}: {source}")]
    Password {
        path: String,
        #[source]
        source: PasswordError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocFormat {
    Yaml,
    Toml,
    Json,
}

impl DocFormat {
    /// By file extension: `.yaml`/`.yml`, `.toml`, `.json`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Some(DocFormat::Yaml),
            "toml" => Some(DocFormat::Toml),
            "json" => Some(DocFormat::Json),
            _ => None,
        }
    }
}

impl fmt::Display for DocFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DocFormat::Yaml => "yaml",
            DocFormat::Toml => "toml",
            DocFormat::Json => "json",
        })
    }
}

/// The provisioning document.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionDoc {
    #[serde(default)]
    pub tenants: Vec<TenantSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// SIP domain and digest realm; the natural key of the tenant.
    #[schema(schema_with = rule_schemas::domain)]
    pub domain: String,
    #[schema(schema_with = rule_schemas::name)]
    pub name: String,
    #[serde(default = "default_time_zone")]
    #[schema(schema_with = rule_schemas::time_zone)]
    pub time_zone: String,
    #[serde(default)]
    pub users: Vec<UserSpec>,
    #[serde(default)]
    pub dids: Vec<DidSpec>,
    #[serde(default)]
    pub trunks: Vec<TrunkSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    #[serde(deserialize_with = "string_or_integer")]
    #[schema(schema_with = rule_schemas::provisioned_extension)]
    pub extension: String,
    #[schema(schema_with = rule_schemas::name)]
    pub display_name: String,
    /// Another name to log in to the portal with: 1 to 64 letters, digits, `-`, `_`,
    /// `.` or `+`; unique within the tenant.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._+-]{1,64}$")]
    pub portal_login: Option<String>,
    /// `user` or `tenant_admin`; omitted: unchanged (`user` for a new user).
    #[serde(default)]
    pub role: Option<UserRole>,
    #[serde(default)]
    #[schema(schema_with = rule_schemas::optional_password)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    #[serde(deserialize_with = "string_or_integer")]
    #[schema(schema_with = rule_schemas::provisioned_sip_username)]
    pub sip_username: String,
    /// Only its HA1s are stored.
    #[schema(schema_with = rule_schemas::password)]
    pub password: Secret,
    #[serde(default)]
    #[schema(schema_with = rule_schemas::digest_algorithms)]
    pub digest_algorithms: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DidSpec {
    /// E.164 (`+`, then 2 to 15 digits, not starting with 0), unique across all
    /// tenants.
    #[schema(example = "+41445550100", pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub number: String,
    /// The user the number rings: in this document or already provisioned.
    #[serde(deserialize_with = "string_or_integer")]
    #[schema(schema_with = rule_schemas::provisioned_extension)]
    pub extension: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkSpec {
    /// 1 to 64 letters, digits, `-`, `_` or `.`; unique within the tenant.
    #[schema(example = "carrier", pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    #[schema(schema_with = rule_schemas::host)]
    pub peer_host: String,
    /// 5060 when omitted.
    #[serde(default = "default_sip_port")]
    #[schema(minimum = 1, maximum = 65535)]
    pub peer_port: u16,
    /// `udp` when omitted.
    #[serde(default = "default_transport")]
    #[schema(value_type = crate::web::model_schema::TransportDoc)]
    pub transport: TransportKind,
    /// Outbound digest credentials; both or neither, neither empty.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub username: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1)]
    pub password: Option<Secret>,
    #[serde(default)]
    #[schema(schema_with = rule_schemas::provisioned_sources)]
    pub inbound_sources: Vec<String>,
}

fn default_time_zone() -> String {
    "UTC".into()
}
fn default_sip_port() -> u16 {
    5060
}
fn default_transport() -> TransportKind {
    TransportKind::Udp
}

/// YAML and TOML read `1001` as a number; an extension is a string of digits, so take
/// either (a leading zero must be quoted to survive, as in any YAML).
fn string_or_integer<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        U(u64),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::S(s) => s,
        Raw::U(n) => n.to_string(),
    })
}

/// What [`apply`] did, per kind of entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApplySummary {
    pub tenants: Counts,
    pub users: Counts,
    pub devices: Counts,
    pub dids: Counts,
    pub trunks: Counts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counts {
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
}

impl Counts {
    fn add(&mut self, change: Change) {
        match change {
            Change::Created => self.created += 1,
            Change::Updated => self.updated += 1,
            Change::Unchanged => self.unchanged += 1,
        }
    }
}

impl ApplySummary {
    fn all(&self) -> [(&'static str, Counts); 5] {
        [
            ("tenants", self.tenants),
            ("users", self.users),
            ("devices", self.devices),
            ("dids", self.dids),
            ("trunks", self.trunks),
        ]
    }
    /// Entities created, all kinds together.
    pub fn created(&self) -> u32 {
        self.all().iter().map(|(_, c)| c.created).sum()
    }
    /// Entities updated, all kinds together.
    pub fn updated(&self) -> u32 {
        self.all().iter().map(|(_, c)| c.updated).sum()
    }
}

impl fmt::Display for ApplySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (kind, c)) in self.all().into_iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(
                f,
                "{kind:<8} {} created, {} updated, {} unchanged",
                c.created, c.updated, c.unchanged
            )?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Change {
    Created,
    Updated,
    Unchanged,
}

/// Parses a document; nothing is validated beyond its shape (see [`validate`]).
pub fn parse(text: &str, format: DocFormat) -> Result<ProvisionDoc, ProvisionError> {
    let parsed = match format {
        DocFormat::Yaml => serde_norway::from_str(text).map_err(|e| e.to_string()),
        DocFormat::Toml => toml::from_str(text).map_err(|e| e.to_string()),
        DocFormat::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
    };
    parsed.map_err(|message| ProvisionError::Parse {
        format,
        message: message.trim_end().to_string(),
    })
}

/// Reads and parses the file at `path`, choosing the format by its extension.
pub fn load_file(path: &Path) -> Result<ProvisionDoc, ProvisionError> {
    let format =
        DocFormat::from_path(path).ok_or_else(|| ProvisionError::UnknownFormat(path.into()))?;
    let text = std::fs::read_to_string(path).map_err(|source| ProvisionError::Read {
        path: path.into(),
        source,
    })?;
    parse(&text, format)
}

/// The demo tenant `demo.tsps.local`: users 1001 Alice, 1002 Bob and 1003 Carol, each
/// with one device whose SIP user name is the extension and whose password is
/// `demo<extension>` (`demo1001`). The portal password is the same (log in with
/// domain `demo.tsps.local`, login `1001`, password `demo1001`); Alice is the
/// tenant admin, Bob and Carol are users.
pub fn demo_document() -> ProvisionDoc {
    let user = |extension: &str, name: &str, role: UserRole| UserSpec {
        extension: extension.into(),
        display_name: name.into(),
        portal_login: Some(name.to_ascii_lowercase()),
        role: Some(role),
        password: Some(Secret(format!("demo{extension}"))),
        devices: vec![DeviceSpec {
            sip_username: extension.into(),
            password: Secret(format!("demo{extension}")),
            // What every softphone knows: baresip 1.0, the most common one on Linux,
            // fails when SHA-256 is offered beside it.
            digest_algorithms: Some(vec!["MD5".into()]),
        }],
    };
    ProvisionDoc {
        tenants: vec![TenantSpec {
            domain: "demo.tsps.local".into(),
            name: "Demo".into(),
            time_zone: "UTC".into(),
            users: vec![
                user("1001", "Alice", UserRole::TenantAdmin),
                user("1002", "Bob", UserRole::User),
                user("1003", "Carol", UserRole::User),
            ],
            dids: vec![],
            trunks: vec![],
        }],
    }
}

// ---------------------------------------------------------------------------------
// Platform operators: `tsps operator add|remove|list` and the demo's. They are kept
// out of the document on purpose: an operator's password is typed once, not filed.

/// The `--demo` platform operator: login `operator`, password `demo-operator`.
pub const DEMO_OPERATOR: (&str, &str) = ("operator", "demo-operator");

/// Creates the operator `login` (lower-cased) with an argon2id hash of `password`.
/// `login` and `password` must follow [`rules::operator_login`] and
/// [`rules::operator_password`]; a login taken is a store error `AlreadyExists`.
pub async fn add_operator(
    store: &dyn Store,
    login: &str,
    password: &str,
) -> Result<OperatorAccount, ProvisionError> {
    let login = rules::operator_login(login).map_err(|e| invalid("login", e))?;
    rules::operator_password(password).map_err(|e| invalid("password", e))?;
    let hash = password::hash(password)
        .await
        .map_err(|source| ProvisionError::Password {
            path: "password".into(),
            source,
        })?;
    // Whole microseconds: what both databases keep, so the answer is what a list shows.
    let now = chrono::Utc::now();
    let account = OperatorAccount {
        login,
        created_at: now
            .with_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now),
    };
    store
        .create_operator(&account, &hash)
        .await
        .map_err(|source| ProvisionError::Store {
            path: format!("operator {}", account.login),
            source,
        })?;
    Ok(account)
}

/// Removes the operator `login` and ends its sessions.
pub async fn remove_operator(store: &dyn Store, login: &str) -> Result<(), ProvisionError> {
    let login = rules::operator_login(login).map_err(|e| invalid("login", e))?;
    store
        .delete_operator(&login)
        .await
        .map_err(|source| ProvisionError::Store {
            path: format!("operator {login}"),
            source,
        })
}

/// Applies the demo document ([`demo_document`]) and creates the demo operator
/// ([`DEMO_OPERATOR`]) unless an operator of that login exists (its password is then
/// left as it is).
pub async fn apply_demo(store: &dyn Store) -> Result<ApplySummary, ProvisionError> {
    let summary = apply(store, &demo_document()).await?;
    let (login, password) = DEMO_OPERATOR;
    let existing = store
        .find_operator(login)
        .await
        .map_err(|source| ProvisionError::Store {
            path: format!("operator {login}"),
            source,
        })?;
    if existing.is_none() {
        add_operator(store, login, password).await?;
    }
    Ok(summary)
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> ProvisionError {
    ProvisionError::Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Checks every rule, and that natural keys are unique within the document, before
/// anything is written. Returns the document with normalised values.
pub fn validate(doc: &ProvisionDoc) -> Result<ProvisionDoc, ProvisionError> {
    let check = |path: String, r: Result<String, String>| r.map_err(|e| invalid(path, e));
    let mut out = doc.clone();
    let mut domains = HashSet::new();
    let mut numbers = HashSet::new();
    for (ti, t) in out.tenants.iter_mut().enumerate() {
        let tp = format!("tenants[{ti}]");
        t.domain = check(format!("{tp}.domain"), rules::domain(&t.domain))?;
        if !domains.insert(t.domain.clone()) {
            return Err(invalid(
                format!("{tp}.domain"),
                format!("{} appears twice", t.domain),
            ));
        }
        t.name = check(format!("{tp}.name"), rules::name(&t.name))?;
        t.time_zone = check(format!("{tp}.time_zone"), rules::time_zone(&t.time_zone))?;

        let mut extensions = HashSet::new();
        let mut logins = HashSet::new();
        let mut usernames = HashSet::new();
        for (ui, u) in t.users.iter_mut().enumerate() {
            let up = format!("{tp}.users[{ui}]");
            u.extension = check(format!("{up}.extension"), rules::extension(&u.extension))?;
            if !extensions.insert(u.extension.clone()) {
                return Err(invalid(
                    format!("{up}.extension"),
                    format!("{} appears twice in this tenant", u.extension),
                ));
            }
            u.display_name = check(format!("{up}.display_name"), rules::name(&u.display_name))?;
            if let Some(login) = &u.portal_login {
                let login = check(format!("{up}.portal_login"), rules::portal_login(login))?;
                if !logins.insert(login.clone()) {
                    return Err(invalid(
                        format!("{up}.portal_login"),
                        format!("{login} appears twice in this tenant"),
                    ));
                }
                u.portal_login = Some(login);
            }
            if let Some(pw) = &u.password {
                rules::portal_password(pw.expose())
                    .map_err(|e| invalid(format!("{up}.password"), e))?;
            }
            for (di, d) in u.devices.iter_mut().enumerate() {
                let dp = format!("{up}.devices[{di}]");
                d.sip_username = check(
                    format!("{dp}.sip_username"),
                    rules::sip_username(&d.sip_username),
                )?;
                if !usernames.insert(d.sip_username.clone()) {
                    return Err(invalid(
                        format!("{dp}.sip_username"),
                        format!("{} appears twice in this tenant", d.sip_username),
                    ));
                }
                if let Some(list) = &d.digest_algorithms {
                    rules::digest_algorithms(list)
                        .map_err(|e| invalid(format!("{dp}.digest_algorithms"), e))?;
                }
                d.password = Secret::new(check(
                    format!("{dp}.password"),
                    rules::device_password(d.password.expose()),
                )?);
            }
        }
        for (ni, n) in t.dids.iter_mut().enumerate() {
            let np = format!("{tp}.dids[{ni}]");
            n.number = check(format!("{np}.number"), rules::e164(&n.number))?;
            if !numbers.insert(n.number.clone()) {
                return Err(invalid(
                    format!("{np}.number"),
                    format!("{} appears twice", n.number),
                ));
            }
            n.extension = check(format!("{np}.extension"), rules::extension(&n.extension))?;
        }
        let mut trunk_names = HashSet::new();
        for (ri, r) in t.trunks.iter_mut().enumerate() {
            let rp = format!("{tp}.trunks[{ri}]");
            r.name = check(format!("{rp}.name"), rules::trunk_name(&r.name))?;
            if !trunk_names.insert(r.name.clone()) {
                return Err(invalid(
                    format!("{rp}.name"),
                    format!("{} appears twice in this tenant", r.name),
                ));
            }
            r.peer_host = check(format!("{rp}.peer_host"), rules::host(&r.peer_host))?;
            rules::port(r.peer_port).map_err(|e| invalid(format!("{rp}.peer_port"), e))?;
            rules::credentials(
                r.username.as_deref(),
                r.password.as_ref().map(Secret::expose),
            )
            .map_err(|e| invalid(format!("{rp}.username"), e))?;
            for (si, s) in r.inbound_sources.iter_mut().enumerate() {
                *s = check(format!("{rp}.inbound_sources[{si}]"), rules::source(s))?;
            }
        }
    }
    Ok(out)
}

/// Makes the store match `doc` (see the module docs); returns what changed.
pub async fn apply(store: &dyn Store, doc: &ProvisionDoc) -> Result<ApplySummary, ProvisionError> {
    let doc = validate(doc)?;
    let mut summary = ApplySummary::default();
    for (ti, spec) in doc.tenants.iter().enumerate() {
        let tp = format!("tenants[{ti}]");
        let at = |path: String| move |source| ProvisionError::Store { path, source };
        let (tenant, change) = apply_tenant(store, spec).await.map_err(at(tp.clone()))?;
        summary.tenants.add(change);

        for (ui, u) in spec.users.iter().enumerate() {
            let up = format!("{tp}.users[{ui}]");
            let (user, change) = apply_user(store, &tenant, u)
                .await
                .map_err(at(up.clone()))?;
            let account_changed =
                apply_account(store, &user, u, change)
                    .await
                    .map_err(|e| match e {
                        AccountError::Store(source) => ProvisionError::Store {
                            path: up.clone(),
                            source,
                        },
                        AccountError::Password(source) => ProvisionError::Password {
                            path: format!("{up}.password"),
                            source,
                        },
                    })?;
            summary.users.add(match change {
                Change::Unchanged if account_changed => Change::Updated,
                other => other,
            });
            for (di, d) in u.devices.iter().enumerate() {
                let change = apply_device(store, &tenant, &user, d)
                    .await
                    .map_err(at(format!("{up}.devices[{di}]")))?;
                summary.devices.add(change);
            }
        }
        for (ni, n) in spec.dids.iter().enumerate() {
            let np = format!("{tp}.dids[{ni}]");
            let user = store
                .find_user_by_extension(tenant.id, &n.extension)
                .await
                .map_err(at(np.clone()))?
                .ok_or_else(|| {
                    invalid(
                        format!("{np}.extension"),
                        format!("no user {} in tenant {}", n.extension, tenant.domain),
                    )
                })?;
            let change = apply_did(store, &tenant, &user, n).await.map_err(at(np))?;
            summary.dids.add(change);
        }
        for (ri, r) in spec.trunks.iter().enumerate() {
            let change = apply_trunk(store, &tenant, r)
                .await
                .map_err(at(format!("{tp}.trunks[{ri}]")))?;
            summary.trunks.add(change);
        }
    }
    Ok(summary)
}

async fn apply_tenant(
    store: &dyn Store,
    spec: &TenantSpec,
) -> Result<(Tenant, Change), StoreError> {
    let Some(existing) = store.find_tenant_by_domain(&spec.domain).await? else {
        let tenant = Tenant {
            id: TenantId::new(),
            domain: spec.domain.clone(),
            name: spec.name.clone(),
            time_zone: spec.time_zone.clone(),
        };
        store.create_tenant(&tenant).await?;
        return Ok((tenant, Change::Created));
    };
    let wanted = Tenant {
        name: spec.name.clone(),
        time_zone: spec.time_zone.clone(),
        ..existing.clone()
    };
    if wanted == existing {
        return Ok((existing, Change::Unchanged));
    }
    store.update_tenant(&wanted).await?;
    Ok((wanted, Change::Updated))
}

async fn apply_user(
    store: &dyn Store,
    tenant: &Tenant,
    spec: &UserSpec,
) -> Result<(User, Change), StoreError> {
    let Some(existing) = store
        .find_user_by_extension(tenant.id, &spec.extension)
        .await?
    else {
        let user = User {
            id: UserId::new(),
            tenant_id: tenant.id,
            extension: spec.extension.clone(),
            display_name: spec.display_name.clone(),
            portal_login: spec.portal_login.clone(),
        };
        store.create_user(tenant.id, &user).await?;
        return Ok((user, Change::Created));
    };
    let wanted = User {
        display_name: spec.display_name.clone(),
        portal_login: spec.portal_login.clone(),
        ..existing.clone()
    };
    if wanted == existing {
        return Ok((existing, Change::Unchanged));
    }
    store.update_user(tenant.id, &wanted).await?;
    Ok((wanted, Change::Updated))
}

enum AccountError {
    Store(StoreError),
    Password(PasswordError),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The portal side of a user: role and password, when the document names them.
/// Returns whether anything was written.
async fn apply_account(
    store: &dyn Store,
    user: &User,
    spec: &UserSpec,
    change: Change,
) -> Result<bool, AccountError> {
    let mut changed = false;
    if let Some(role) = spec.role {
        let current = match change {
            Change::Created => UserRole::default(),
            _ => store.get_user_account(user.tenant_id, user.id).await?.role,
        };
        if role != current {
            store.set_user_role(user.tenant_id, user.id, role).await?;
            changed = true;
        }
    }
    if let Some(wanted) = &spec.password {
        let stored = store.get_password_hash(user.tenant_id, user.id).await?;
        // A fresh salt would make every apply a change: check the stored hash instead.
        let same = match stored.as_deref() {
            Some(h) => password::verify(wanted.expose(), Some(h))
                .await
                .map_err(AccountError::Password)?,
            None => false,
        };
        if !same {
            let hash = password::hash(wanted.expose())
                .await
                .map_err(AccountError::Password)?;
            store
                .set_password_hash(user.tenant_id, user.id, Some(&hash))
                .await?;
            changed = true;
        }
    }
    Ok(changed)
}

async fn apply_device(
    store: &dyn Store,
    tenant: &Tenant,
    user: &User,
    spec: &DeviceSpec,
) -> Result<Change, StoreError> {
    // The realm is the tenant's SIP domain (see `Store::update_tenant`).
    let password = spec.password.expose();
    let ha1_md5 = ha1_md5(&spec.sip_username, &tenant.domain, password);
    let ha1_sha256 = ha1_sha256(&spec.sip_username, &tenant.domain, password);
    let existing = store
        .find_device_by_username(tenant.id, &spec.sip_username)
        .await?;
    let wanted = Device {
        id: existing
            .as_ref()
            .map(|d| d.id)
            .unwrap_or_else(DeviceId::new),
        tenant_id: tenant.id,
        user_id: user.id,
        sip_username: spec.sip_username.clone(),
        ha1_md5,
        ha1_sha256,
        // Not in the document: set through the devices API, kept by an apply.
        remote_answer: existing.as_ref().is_some_and(|d| d.remote_answer),
        digest_algorithms: match &spec.digest_algorithms {
            // Checked by `validate`.
            Some(list) => rules::digest_algorithms(list).unwrap_or_default(),
            None => existing
                .as_ref()
                .map(|d| d.digest_algorithms.clone())
                .unwrap_or_default(),
        },
    };
    match existing {
        None => {
            store.create_device(tenant.id, &wanted).await?;
            Ok(Change::Created)
        }
        Some(existing) if existing == wanted => Ok(Change::Unchanged),
        Some(_) => {
            store.update_device(tenant.id, &wanted).await?;
            Ok(Change::Updated)
        }
    }
}

async fn apply_did(
    store: &dyn Store,
    tenant: &Tenant,
    user: &User,
    spec: &DidSpec,
) -> Result<Change, StoreError> {
    let wanted = Did {
        number: spec.number.clone(),
        tenant_id: tenant.id,
        user_id: user.id,
    };
    match store.get_did(tenant.id, &spec.number).await {
        // Not in this tenant: create; if another tenant holds it, that fails with
        // AlreadyExists, which is the right answer.
        Err(StoreError::NotFound { .. }) => {
            store.create_did(tenant.id, &wanted).await?;
            Ok(Change::Created)
        }
        Err(e) => Err(e),
        Ok(existing) if existing == wanted => Ok(Change::Unchanged),
        Ok(_) => {
            store.update_did(tenant.id, &wanted).await?;
            Ok(Change::Updated)
        }
    }
}

/// The inbound sources of a trunk of `tenant` that it may not take, by their index in
/// `sources`: a range overlapping another tenant's trunk sources, or holding an address
/// a phone of another tenant registered from. A source address names one tenant's
/// carrier (docs/security.md). Sources that do not parse are for [`rules::source`].
pub async fn source_conflicts(
    store: &dyn Store,
    tenant: TenantId,
    sources: &[String],
) -> Result<Vec<(usize, SourceConflict)>, StoreError> {
    let ranges: Vec<(usize, SourceRange)> = sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.parse().ok()?)))
        .collect();
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let dir = store.load_directory().await?;
    let registered: Vec<(TenantId, IpAddr)> = store
        .load_bindings(chrono::Utc::now())
        .await?
        .iter()
        .filter_map(|b| Some((b.tenant_id, received_ip(&b.received)?)))
        .collect();
    let mut out = Vec::new();
    for (i, range) in ranges {
        for c in tsps_actors::directory::source_conflicts(
            tenant,
            &[range],
            dir.all_trunks(),
            &registered,
        ) {
            out.push((i, c));
        }
    }
    Ok(out)
}

/// The IP of a binding's `received` (`udp:192.0.2.1:5060`, `tcp:[2001:db8::1]:5060`).
fn received_ip(received: &str) -> Option<IpAddr> {
    let addr = received.split_once(':')?.1;
    addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

async fn apply_trunk(
    store: &dyn Store,
    tenant: &Tenant,
    spec: &TrunkSpec,
) -> Result<Change, StoreError> {
    if let Some((i, c)) = source_conflicts(store, tenant.id, &spec.inbound_sources)
        .await?
        .into_iter()
        .next()
    {
        return Err(StoreError::Conflict(format!("inbound_sources[{i}]: {c}")));
    }
    let existing = store.find_trunk_by_name(tenant.id, &spec.name).await?;
    let wanted = Trunk {
        id: existing.as_ref().map(|t| t.id).unwrap_or_else(TrunkId::new),
        tenant_id: tenant.id,
        name: spec.name.clone(),
        peer_host: spec.peer_host.clone(),
        peer_port: spec.peer_port,
        transport: spec.transport,
        username: spec.username.clone(),
        password: spec.password.clone(),
        inbound_sources: spec.inbound_sources.clone(),
    };
    match existing {
        None => {
            store.create_trunk(tenant.id, &wanted).await?;
            Ok(Change::Created)
        }
        Some(existing) if existing == wanted => Ok(Change::Unchanged),
        Some(_) => {
            store.update_trunk(tenant.id, &wanted).await?;
            Ok(Change::Updated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, DynStore};

    const EXAMPLE_YAML: &str = r#"
tenants:
  - domain: a.test
    name: Tenant A
    time_zone: Europe/Zurich        # validated with chrono-tz
    users:
      - extension: "1001"
        display_name: Alice
        portal_login: alice          # optional
        devices:
          - sip_username: "1001"
            password: secret1001     # HA1s computed; the password is not stored
      - extension: 1002
        display_name: Bob
        devices:
          - sip_username: 1002
            password: secret1002
    dids:
      - number: "+41445550100"      # E.164, validated
        extension: "1001"
    trunks:
      - name: carrier
        peer_host: 127.0.0.2
        peer_port: 5070
        transport: udp              # udp | tcp
        username: tsps              # optional, outbound digest auth
        password: trunkpw           # optional
        inbound_sources: ["127.0.0.2"]
"#;

    const EXAMPLE_TOML: &str = r#"
[[tenants]]
domain = "a.test"
name = "Tenant A"
time_zone = "Europe/Zurich"

[[tenants.users]]
extension = "1001"
display_name = "Alice"
portal_login = "alice"
devices = [{ sip_username = "1001", password = "secret1001" }]

[[tenants.users]]
extension = "1002"
display_name = "Bob"
devices = [{ sip_username = "1002", password = "secret1002" }]

[[tenants.dids]]
number = "+41445550100"
extension = "1001"

[[tenants.trunks]]
name = "carrier"
peer_host = "127.0.0.2"
peer_port = 5070
transport = "udp"
username = "tsps"
password = "trunkpw"
inbound_sources = ["127.0.0.2"]
"#;

    async fn memory_store() -> DynStore {
        store::open("sqlite::memory:", 1).await.unwrap()
    }

    fn example() -> ProvisionDoc {
        parse(EXAMPLE_YAML, DocFormat::Yaml).unwrap()
    }

    fn invalid_path(doc: &ProvisionDoc) -> String {
        match validate(doc) {
            Err(ProvisionError::Invalid { path, .. }) => path,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn yaml_and_toml_say_the_same() {
        let yaml = example();
        let toml = parse(EXAMPLE_TOML, DocFormat::Toml).unwrap();
        assert_eq!(yaml, toml);
        let t = &yaml.tenants[0];
        assert_eq!(t.users[1].extension, "1002");
        assert_eq!(t.users[1].devices[0].sip_username, "1002");
        assert_eq!(t.users[1].portal_login, None);
        assert_eq!(t.trunks[0].transport, TransportKind::Udp);
        assert_eq!(t.trunks[0].inbound_sources, ["127.0.0.2"]);
    }

    #[test]
    fn shape_errors_are_parse_errors() {
        let e = parse("tenants:\n  - domian: a.test\n", DocFormat::Yaml).unwrap_err();
        assert!(matches!(&e, ProvisionError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("domian"), "{e}");
        let e = parse("[[tenants]]\ndomain = 3\n", DocFormat::Toml).unwrap_err();
        assert!(e.to_string().starts_with("invalid toml document"), "{e}");
        assert!(parse("{", DocFormat::Json).is_err());
    }

    #[test]
    fn validation_names_the_element() {
        let mut doc = example();
        doc.tenants[0].users[1].extension = "10a2".into();
        assert_eq!(invalid_path(&doc), "tenants[0].users[1].extension");
        assert_eq!(
            validate(&doc).unwrap_err().to_string(),
            "tenants[0].users[1].extension: must be digits"
        );

        let mut doc = example();
        doc.tenants[0].time_zone = "Mars/Olympus".into();
        assert_eq!(invalid_path(&doc), "tenants[0].time_zone");

        let mut doc = example();
        doc.tenants[0].dids[0].number = "0445550100".into();
        assert_eq!(invalid_path(&doc), "tenants[0].dids[0].number");

        let mut doc = example();
        doc.tenants[0].users[0].devices[0].password = "short".into();
        assert_eq!(
            invalid_path(&doc),
            "tenants[0].users[0].devices[0].password"
        );

        let mut doc = example();
        doc.tenants[0].users[1].devices[0].sip_username = "1001".into();
        assert_eq!(
            invalid_path(&doc),
            "tenants[0].users[1].devices[0].sip_username"
        );

        let mut doc = example();
        doc.tenants[0].trunks[0]
            .inbound_sources
            .push("127.0.0.0/33".into());
        assert_eq!(
            invalid_path(&doc),
            "tenants[0].trunks[0].inbound_sources[1]"
        );

        let mut doc = example();
        doc.tenants[0].trunks[0].password = None;
        assert_eq!(invalid_path(&doc), "tenants[0].trunks[0].username");

        let mut doc = example();
        doc.tenants.push(doc.tenants[0].clone());
        doc.tenants[1].domain = "A.TEST".into();
        assert_eq!(invalid_path(&doc), "tenants[1].domain");
    }

    #[test]
    fn validation_normalises() {
        let mut doc = example();
        doc.tenants[0].domain = "A.Test.".into();
        assert_eq!(validate(&doc).unwrap().tenants[0].domain, "a.test");
    }

    #[test]
    fn files_pick_their_format_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("p.yml");
        std::fs::write(&yaml, EXAMPLE_YAML).unwrap();
        let toml = dir.path().join("p.toml");
        std::fs::write(&toml, EXAMPLE_TOML).unwrap();
        assert_eq!(load_file(&yaml).unwrap(), load_file(&toml).unwrap());
        let txt = dir.path().join("p.txt");
        std::fs::write(&txt, EXAMPLE_YAML).unwrap();
        assert!(matches!(
            load_file(&txt),
            Err(ProvisionError::UnknownFormat(_))
        ));
        assert!(matches!(
            load_file(&dir.path().join("missing.yaml")),
            Err(ProvisionError::Read { .. })
        ));
    }

    #[tokio::test]
    async fn apply_creates_then_changes_nothing() {
        let store = memory_store().await;
        let doc = example();
        let first = apply(&*store, &doc).await.unwrap();
        assert_eq!(first.tenants.created, 1);
        assert_eq!(first.users.created, 2);
        assert_eq!(first.devices.created, 2);
        assert_eq!(first.dids.created, 1);
        assert_eq!(first.trunks.created, 1);

        let second = apply(&*store, &doc).await.unwrap();
        assert_eq!(second.created(), 0);
        assert_eq!(second.updated(), 0);
        assert_eq!(second.users.unchanged, 2);
        assert_eq!(second.devices.unchanged, 2);

        let dir = store.load_directory().await.unwrap();
        let t = dir.tenant_by_domain("a.test").unwrap();
        assert_eq!(t.time_zone, "Europe/Zurich");
        let alice = dir.user_by_extension(t.id, "1001").unwrap();
        assert_eq!(alice.portal_login.as_deref(), Some("alice"));
        let dev = dir.device_by_username(t.id, "1001").unwrap();
        assert_eq!(dev.ha1_md5, ha1_md5("1001", "a.test", "secret1001"));
        assert_eq!(dev.ha1_sha256, ha1_sha256("1001", "a.test", "secret1001"));
        assert_eq!(dir.did("+41445550100").unwrap().user_id, alice.id);
        let trunk = dir.trunks_of_tenant(t.id).next().unwrap();
        assert_eq!(trunk.password.as_ref().map(|p| p.expose()), Some("trunkpw"));
    }

    #[tokio::test]
    async fn apply_updates_what_differs_and_leaves_the_rest() {
        let store = memory_store().await;
        apply(&*store, &example()).await.unwrap();
        let t = store
            .find_tenant_by_domain("a.test")
            .await
            .unwrap()
            .unwrap();
        // Something the file does not mention.
        let carol = User {
            id: UserId::new(),
            tenant_id: t.id,
            extension: "1003".into(),
            display_name: "Carol".into(),
            portal_login: None,
        };
        store.create_user(t.id, &carol).await.unwrap();

        let mut doc = example();
        doc.tenants[0].users[0].devices[0].password = "another-secret".into();
        doc.tenants[0].users[1].display_name = "Robert".into();
        doc.tenants[0].dids[0].extension = "1002".into();
        doc.tenants[0].trunks[0].peer_port = 5080;
        doc.tenants[0].users.truncate(2);
        let s = apply(&*store, &doc).await.unwrap();
        assert_eq!(s.created(), 0);
        assert_eq!(s.devices.updated, 1);
        assert_eq!(s.users.updated, 1);
        assert_eq!(s.dids.updated, 1);
        assert_eq!(s.trunks.updated, 1);
        assert_eq!(s.tenants.unchanged, 1);

        let users = store.list_users(t.id).await.unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(users[2], carol);
        let dev = store
            .find_device_by_username(t.id, "1001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(dev.ha1_md5, ha1_md5("1001", "a.test", "another-secret"));
    }

    #[tokio::test]
    async fn a_did_to_an_unknown_extension_is_refused_with_its_path() {
        let store = memory_store().await;
        let mut doc = example();
        doc.tenants[0].dids[0].extension = "1999".into();
        let e = apply(&*store, &doc).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "tenants[0].dids[0].extension: no user 1999 in tenant a.test"
        );
    }

    #[tokio::test]
    async fn a_number_of_another_tenant_is_a_store_error_with_its_path() {
        let store = memory_store().await;
        apply(&*store, &example()).await.unwrap();
        let mut doc = example();
        doc.tenants[0].domain = "b.test".into();
        doc.tenants[0].trunks.clear();
        let e = apply(&*store, &doc).await.unwrap_err();
        match e {
            ProvisionError::Store { path, source } => {
                assert_eq!(path, "tenants[0].dids[0]");
                assert!(matches!(
                    source,
                    StoreError::AlreadyExists { entity: "did", .. }
                ));
            }
            other => panic!("expected a store error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn demo_document_is_valid_and_idempotent() {
        let store = memory_store().await;
        let doc = demo_document();
        let first = apply(&*store, &doc).await.unwrap();
        assert_eq!(first.users.created, 3);
        assert_eq!(first.devices.created, 3);
        assert_eq!(apply(&*store, &doc).await.unwrap().created(), 0);
        let dir = store.load_directory().await.unwrap();
        let t = dir.tenant_by_domain("demo.tsps.local").unwrap();
        for (ext, name) in [("1001", "Alice"), ("1002", "Bob"), ("1003", "Carol")] {
            assert_eq!(dir.user_by_extension(t.id, ext).unwrap().display_name, name);
            let dev = dir.device_by_username(t.id, ext).unwrap();
            assert_eq!(
                dev.digest_algorithms,
                [tsps_actors::model::DigestAlgorithm::Md5]
            );
            let password = format!("demo{ext}");
            assert_eq!(dev.ha1_md5, ha1_md5(ext, "demo.tsps.local", &password));
            let login = store.find_login(t.id, ext).await.unwrap().unwrap();
            let hash = login.password_hash.unwrap();
            assert!(password::verify(&password, Some(hash.expose()))
                .await
                .unwrap());
            let admin = ext == "1001";
            assert_eq!(login.account.role == UserRole::TenantAdmin, admin, "{ext}");
        }
    }

    #[tokio::test]
    async fn the_demo_has_an_operator_created_once() {
        let store = memory_store().await;
        apply_demo(&*store).await.unwrap();
        let (login, password) = DEMO_OPERATOR;
        let op = store.find_operator(login).await.unwrap().unwrap();
        assert!(password::verify(password, Some(op.password_hash.expose()))
            .await
            .unwrap());
        // Again: the operator is left as it is (same hash, no error).
        apply_demo(&*store).await.unwrap();
        let again = store.find_operator(login).await.unwrap().unwrap();
        assert_eq!(again, op);
        assert_eq!(store.list_operators().await.unwrap(), [op.account]);
    }

    #[tokio::test]
    async fn operators_are_added_by_rule_and_removed() {
        let store = memory_store().await;
        let added = add_operator(&*store, " Ops@Example ", "twelve-chars")
            .await
            .unwrap();
        assert_eq!(added.login, "ops@example");
        assert_eq!(
            store.list_operators().await.unwrap(),
            std::slice::from_ref(&added),
            "the answer is what is stored"
        );
        let err = |r: Result<OperatorAccount, ProvisionError>| r.unwrap_err().to_string();
        assert_eq!(
            err(add_operator(&*store, "ops2", "eleven-char").await),
            "password: must be at least 12 characters"
        );
        assert_eq!(
            err(add_operator(&*store, "ops 2", "twelve-chars").await),
            "login: may contain only letters, digits and - _ . @"
        );
        assert!(matches!(
            add_operator(&*store, "OPS@example", "another-password").await,
            Err(ProvisionError::Store {
                source: StoreError::AlreadyExists { .. },
                ..
            })
        ));
        remove_operator(&*store, "Ops@Example").await.unwrap();
        assert_eq!(store.list_operators().await.unwrap(), []);
        assert!(matches!(
            remove_operator(&*store, "ops@example").await,
            Err(ProvisionError::Store {
                source: StoreError::NotFound { .. },
                ..
            })
        ));
    }

    #[test]
    fn operator_rules() {
        assert_eq!(rules::operator_login("Ops.1_x-y@A").unwrap(), "ops.1_x-y@a");
        assert!(rules::operator_login("").is_err());
        assert!(rules::operator_login(&"a".repeat(65)).is_err());
        assert!(rules::operator_login("a/b").is_err());
        assert!(rules::operator_password("12345678901").is_err());
        assert!(rules::operator_password("123456789012").is_ok());
        assert!(rules::operator_password(&"x".repeat(129)).is_err());
        assert!(rules::operator_password("abcdefghijk\u{7}").is_err());
    }

    #[tokio::test]
    async fn portal_passwords_and_roles_apply_once() {
        let store = memory_store().await;
        let mut doc = example();
        doc.tenants[0].users[0].password = Some(Secret("portal-secret".into()));
        doc.tenants[0].users[0].role = Some(UserRole::TenantAdmin);
        apply(&*store, &doc).await.unwrap();
        let t = store
            .find_tenant_by_domain("a.test")
            .await
            .unwrap()
            .unwrap();
        let alice = store.find_login(t.id, "1001").await.unwrap().unwrap();
        assert_eq!(alice.account.role, UserRole::TenantAdmin);
        let hash = alice.password_hash.clone().unwrap();
        assert!(hash.expose().starts_with("$argon2id$"), "{hash:?}");
        assert!(password::verify("portal-secret", Some(hash.expose()))
            .await
            .unwrap());
        let bob = store.find_login(t.id, "1002").await.unwrap().unwrap();
        assert_eq!(
            (bob.account.role, bob.password_hash),
            (UserRole::User, None)
        );

        // The same password again: verified, not rehashed (a new salt would differ).
        let again = apply(&*store, &doc).await.unwrap();
        assert_eq!((again.users.updated, again.users.unchanged), (0, 2));
        let after = store.find_login(t.id, "1001").await.unwrap().unwrap();
        assert_eq!(after.password_hash.as_ref(), Some(&hash));

        // Omitted: left alone. Changed: a new hash, counted as an update.
        let mut omitted = doc.clone();
        omitted.tenants[0].users[0].password = None;
        omitted.tenants[0].users[0].role = None;
        assert_eq!(apply(&*store, &omitted).await.unwrap().users.updated, 0);
        let kept = store.find_login(t.id, "1001").await.unwrap().unwrap();
        assert_eq!(kept.password_hash.as_ref(), Some(&hash));
        assert_eq!(kept.account.role, UserRole::TenantAdmin);
        doc.tenants[0].users[0].password = Some(Secret("another-secret".into()));
        doc.tenants[0].users[0].role = Some(UserRole::User);
        assert_eq!(apply(&*store, &doc).await.unwrap().users.updated, 1);
        let changed = store.find_login(t.id, "alice").await.unwrap().unwrap();
        assert_eq!(changed.account.role, UserRole::User);
        let new_hash = changed.password_hash.unwrap();
        assert!(password::verify("another-secret", Some(new_hash.expose()))
            .await
            .unwrap());
    }

    #[test]
    fn portal_passwords_are_checked_and_read_from_yaml() {
        let doc = parse(
            "tenants:\n  - domain: a.test\n    name: A\n    users:\n      - extension: 1001\n        \
             display_name: Alice\n        role: tenant_admin\n        password: short\n",
            DocFormat::Yaml,
        )
        .unwrap();
        assert_eq!(doc.tenants[0].users[0].role, Some(UserRole::TenantAdmin));
        assert_eq!(invalid_path(&doc), "tenants[0].users[0].password");
        let e = parse(
            "tenants:\n  - domain: a.test\n    name: A\n    users:\n      - extension: 1001\n        \
             display_name: Alice\n        role: operator\n",
            DocFormat::Yaml,
        )
        .unwrap_err();
        assert!(e.to_string().contains("operator"), "{e}");
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let mut doc = example();
        doc.tenants[0].users[0].password = Some(Secret("portal-secret".into()));
        let debug = format!("{doc:?}");
        assert!(!debug.contains("portal-secret"), "{debug}");
        assert!(!debug.contains("secret1001"), "{debug}");
        assert!(!debug.contains("trunkpw"), "{debug}");
    }
}
