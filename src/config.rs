//! Configuration: a TOML file plus `TSPS_*` environment variables, read once at start,
//! validated, then immutable. Each component receives only its own section.
//!
//! Environment names use `__` between levels: `TSPS_SIP__UDP_LISTEN=0.0.0.0:5060`,
//! `TSPS_DATABASE__URL=postgres://...`.

use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

pub const CONFIG_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Read(#[from] config::ConfigError),
    #[error("invalid configuration: {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_version")]
    pub version: u32,
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub testing: TestingConfig,
    #[serde(default)]
    pub presence: PresenceConfig,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub security: SecurityConfig,
    #[serde(default)]
    pub quotas: QuotasConfig,
    /// Personal mode: absent on a platform (the usual case).
    #[serde(default)]
    pub personal: Option<PersonalConfig>,
}

/// SIP presence (SUBSCRIBE/NOTIFY): subscription limits. See docs/presence.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceConfig {
    /// Shortest subscription interval accepted (423 Interval Too Brief below it).
    #[serde(default = "default_presence_min_expires")]
    pub min_expires: u32,
    /// Longest subscription interval granted (longer requests are shortened).
    #[serde(default = "default_presence_max_expires")]
    pub max_expires: u32,
    /// Interval granted to a SUBSCRIBE without Expires (kept within min and max).
    #[serde(default = "default_presence_max_expires")]
    pub default_expires: u32,
    /// Subscriptions one device may hold at once (403 beyond).
    #[serde(default = "default_presence_per_device")]
    pub max_subscriptions_per_device: usize,
}

fn default_presence_min_expires() -> u32 {
    60
}
fn default_presence_max_expires() -> u32 {
    3600
}
fn default_presence_per_device() -> usize {
    // A desk phone with expansion modules shows about a hundred busy lamps.
    100
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            min_expires: default_presence_min_expires(),
            max_expires: default_presence_max_expires(),
            default_expires: default_presence_max_expires(),
            max_subscriptions_per_device: default_presence_per_device(),
        }
    }
}

/// The media engine (`[media]`): conference bridges' RTP. See docs/media.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Off: no bridge on this node (conferences are refused).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// IP written in SDP, where participants send audio. Default: `sip.public_host`
    /// (or the address it defaults to) when that is an IP, else 127.0.0.1.
    #[serde(default)]
    pub address: Option<String>,
    /// IP the RTP sockets are bound to. Default: `address`.
    #[serde(default)]
    pub bind: Option<String>,
    /// RTP port range, inclusive; even ports only, ports in use are skipped.
    #[serde(default = "default_rtp_port_min")]
    pub rtp_port_min: u16,
    #[serde(default = "default_rtp_port_max")]
    pub rtp_port_max: u16,
}

fn default_true() -> bool {
    true
}
fn default_rtp_port_min() -> u16 {
    20000
}
fn default_rtp_port_max() -> u16 {
    39999
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            address: None,
            bind: None,
            rtp_port_min: default_rtp_port_min(),
            rtp_port_max: default_rtp_port_max(),
        }
    }
}

/// Defences against what arrives from the network (`[security]`): the brute-force
/// guard, connection limits and log limits. See docs/security.md.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    #[serde(default)]
    pub auth: AuthGuardConfig,
    #[serde(default)]
    pub connections: ConnectionsConfig,
    #[serde(default)]
    pub log: LogLimitConfig,
}

/// `[security.auth]`: failed digest answers allowed per source and per account before
/// a block, and how long blocks last.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthGuardConfig {
    /// Failures a source may make at once...
    #[serde(default = "default_source_burst")]
    pub source_burst: u32,
    /// ...and per minute after that, for ever.
    #[serde(default = "default_source_per_minute")]
    pub source_per_minute: u32,
    #[serde(default = "default_account_burst")]
    pub account_burst: u32,
    #[serde(default = "default_account_per_minute")]
    pub account_per_minute: u32,
    /// The first block; each repeat within `max_block_secs` of the last block doubles it.
    #[serde(default = "default_block_secs")]
    pub block_secs: u64,
    #[serde(default = "default_max_block_secs")]
    pub max_block_secs: u64,
    /// Addresses or CIDR blocks never blocked: a proxy or SBC in front of tsps.
    #[serde(default)]
    pub trusted_sources: Vec<String>,
    /// Also accept a digest whose `uri` names a server without a user part
    /// (`sip:192.0.2.1:5060`) instead of the Request-URI. SIPp signs that way (its
    /// `-auth_uri` is one value for every call), so the load tests turn this on; the
    /// nonce count still makes each answer usable once. Off by default: a digest must be
    /// made for the request it comes with (RFC 2617 §3.2.2.5).
    #[serde(default)]
    pub allow_server_digest_uri: bool,
}

fn default_source_burst() -> u32 {
    20
}
fn default_source_per_minute() -> u32 {
    6
}
fn default_account_burst() -> u32 {
    10
}
fn default_account_per_minute() -> u32 {
    3
}
fn default_block_secs() -> u64 {
    60
}
fn default_max_block_secs() -> u64 {
    3600
}

impl Default for AuthGuardConfig {
    fn default() -> Self {
        Self {
            source_burst: default_source_burst(),
            source_per_minute: default_source_per_minute(),
            account_burst: default_account_burst(),
            account_per_minute: default_account_per_minute(),
            block_secs: default_block_secs(),
            max_block_secs: default_max_block_secs(),
            trusted_sources: Vec::new(),
            allow_server_digest_uri: false,
        }
    }
}

impl AuthGuardConfig {
    pub fn settings(&self) -> crate::sip::auth::guard::GuardSettings {
        crate::sip::auth::guard::GuardSettings {
            source_burst: self.source_burst,
            source_per_minute: self.source_per_minute,
            account_burst: self.account_burst,
            account_per_minute: self.account_per_minute,
            block_ms: self.block_secs * 1000,
            max_block_ms: self.max_block_secs * 1000,
            trusted: self
                .trusted_sources
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            ..Default::default()
        }
    }
}

/// `[security.connections]`: SIP over TCP and HTTP. Each limit applies to each
/// listener separately.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Open connections in all; 0 sizes it from the file descriptor limit.
    #[serde(default)]
    pub max_total: usize,
    /// Open connections from one address.
    #[serde(default = "default_max_per_source")]
    pub max_per_source: usize,
    /// A SIP connection with no traffic for this long is closed, unless a phone
    /// registered over it (then it lasts as long as the registration).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// A SIP message or an HTTP request head must arrive whole within this once begun;
    /// an idle HTTP keep-alive connection is closed after it too.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
}

fn default_max_per_source() -> usize {
    // An office behind one NAT address: its phones (SIP over TCP), or its browsers (a
    // few connections and a WebSocket each), all come from that one address.
    256
}
fn default_idle_timeout() -> u64 {
    120
}
fn default_header_timeout() -> u64 {
    10
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            max_total: 0,
            max_per_source: default_max_per_source(),
            idle_timeout_secs: default_idle_timeout(),
            header_timeout_secs: default_header_timeout(),
        }
    }
}

/// `[security.log]`: each place in the code that logs may write this many lines a
/// second (after a burst of ten times as many); what it could not write is counted and
/// reported in one line every ten seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLimitConfig {
    #[serde(default = "default_log_lines_per_second")]
    pub lines_per_second: u32,
}

fn default_log_lines_per_second() -> u32 {
    10
}

impl Default for LogLimitConfig {
    fn default() -> Self {
        Self {
            lines_per_second: default_log_lines_per_second(),
        }
    }
}

/// `[quotas]`: what a tenant may hold unless the operator set its own
/// (`PUT /tenants/{id}/quotas`). See docs/security.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasConfig {
    /// Contacts of a tenant: shared and every user's personal ones.
    #[serde(default = "default_contacts_per_tenant")]
    pub contacts_per_tenant: u32,
    /// Personal contacts of one user.
    #[serde(default = "default_contacts_per_user")]
    pub contacts_per_user: u32,
    /// SIP devices of a tenant.
    #[serde(default = "default_devices_per_tenant")]
    pub devices_per_tenant: u32,
    /// SIP subscriptions a tenant's phones may hold together, per node.
    #[serde(default = "default_subscriptions_per_tenant")]
    pub subscriptions_per_tenant: u32,
}

fn default_contacts_per_tenant() -> u32 {
    crate::store::Quotas::default().contacts
}
fn default_contacts_per_user() -> u32 {
    crate::store::Quotas::default().contacts_per_user
}
fn default_devices_per_tenant() -> u32 {
    crate::store::Quotas::default().devices
}
fn default_subscriptions_per_tenant() -> u32 {
    crate::store::Quotas::default().subscriptions
}

impl Default for QuotasConfig {
    fn default() -> Self {
        Self {
            contacts_per_tenant: default_contacts_per_tenant(),
            contacts_per_user: default_contacts_per_user(),
            devices_per_tenant: default_devices_per_tenant(),
            subscriptions_per_tenant: default_subscriptions_per_tenant(),
        }
    }
}

impl QuotasConfig {
    /// The platform's defaults.
    pub fn quotas(&self) -> crate::store::Quotas {
        crate::store::Quotas {
            contacts: self.contacts_per_tenant,
            contacts_per_user: self.contacts_per_user,
            devices: self.devices_per_tenant,
            subscriptions: self.subscriptions_per_tenant,
        }
    }
}

/// Switches for end-to-end tests. Never enable them in production.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingConfig {
    /// `PUT /api/v1/testing/clock` moves the wall clock the feature server reads.
    #[serde(default)]
    pub clock_api: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// UDP listen address; empty string disables UDP.
    #[serde(default = "default_sip_listen")]
    pub udp_listen: String,
    /// TCP listen address; empty string disables TCP.
    #[serde(default = "default_sip_listen")]
    pub tcp_listen: String,
    /// Host (IP or name) tsps puts in Via, Contact and Record-Route. Defaults to the
    /// listen IP, or 127.0.0.1 when listening on the unspecified address.
    #[serde(default)]
    pub public_host: Option<String>,
    /// Shortest registration interval accepted (423 Interval Too Brief below it).
    #[serde(default = "default_min_expires")]
    pub min_expires: u32,
    /// Longest registration interval granted (longer requests are shortened).
    #[serde(default = "default_max_expires")]
    pub max_expires: u32,
    /// How long a digest nonce stays valid before a `stale=true` challenge.
    #[serde(default = "default_nonce_ttl")]
    pub nonce_ttl_secs: u64,
    /// Seconds a callee may ring before the call fails with 408/480.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// SIP worker shards (one actix Arbiter each); 0 means one per CPU core.
    #[serde(default)]
    pub workers: usize,
    /// Largest SIP message accepted, in bytes (513 Message Too Large above it).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Digest algorithms offered in challenges, most preferred first (RFC 8760 §2.4).
    /// Some user agents (SIPp, older phones) answer only the first challenge and know
    /// only MD5: list `MD5` first for them. Env: `TSPS_SIP__DIGEST_ALGORITHMS=MD5,SHA-256`.
    #[serde(default = "default_digest_algorithms")]
    pub digest_algorithms: Vec<String>,
    /// Overload control: a shard whose queued messages waited longer than this (ms)
    /// refuses new INVITEs and REGISTERs with 503 and Retry-After.
    #[serde(default = "default_overload_queue_age_ms")]
    pub overload_queue_age_ms: u64,
    /// The same when more messages than this wait in a shard's queue.
    #[serde(default = "default_overload_queue_depth")]
    pub overload_queue_depth: usize,
    /// Retry-After of those 503s, in seconds.
    #[serde(default = "default_overload_retry_after")]
    pub overload_retry_after_secs: u32,
    /// The same when a shard's UDP socket's receive buffer is fuller than this (%).
    #[serde(default = "default_overload_socket_fill_pct")]
    pub overload_socket_fill_pct: u32,
}

impl SipConfig {
    pub fn overload_settings(&self) -> crate::sip::overload::OverloadSettings {
        crate::sip::overload::OverloadSettings {
            max_queue_age: std::time::Duration::from_millis(self.overload_queue_age_ms),
            max_queue_depth: self.overload_queue_depth,
            retry_after_secs: self.overload_retry_after_secs,
            max_socket_fill_pct: self.overload_socket_fill_pct,
        }
    }
}

fn default_overload_queue_age_ms() -> u64 {
    200
}

fn default_overload_queue_depth() -> usize {
    8192
}

fn default_overload_retry_after() -> u32 {
    2
}

fn default_overload_socket_fill_pct() -> u32 {
    50
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_listen")]
    pub listen: String,
    /// Operator token for the provisioning API (`Authorization: Bearer ...`).
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Mark the portal's session cookie `Secure` (sent over HTTPS only). Off by default
    /// because the demo runs on plain HTTP on localhost; turn it on behind TLS.
    #[serde(default)]
    pub secure_cookies: bool,
    /// A portal session ends after this long without a request.
    #[serde(default = "default_session_idle")]
    pub session_idle_secs: u64,
    /// A portal session ends this long after login, however active.
    #[serde(default = "default_session_lifetime")]
    pub session_lifetime_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://tsps.db` (embedded default) or `postgres://user@host/db`.
    #[serde(default = "default_database_url")]
    pub url: Secret,
    #[serde(default = "default_pool_size")]
    pub max_connections: u32,
}

/// Several nodes sharing one Redis (docs/cluster.md). Without `url` the node is alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Optional: `redis://127.0.0.1:6379`. Without it the event bus stays in process.
    #[serde(default)]
    pub url: Option<Secret>,
    /// Put before every channel and key, so that several clusters share one Redis.
    #[serde(default = "default_redis_prefix")]
    pub prefix: String,
    /// This node's name in the cluster; random at each start when not set.
    #[serde(default)]
    pub node_id: Option<String>,
}

fn default_redis_prefix() -> String {
    "tsps:".into()
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            prefix: default_redis_prefix(),
            node_id: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter, e.g. `info` or `tsps=debug,info`.
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Personal mode (`[personal]`): this tsps serves one user at home (their devices
/// register here, their feature server decides) and is itself a device of that user
/// at an upstream tenant, which it registers to. See docs/configuration.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalConfig {
    /// The local user's extension in the tenant `upstream.domain` (both are created
    /// at start when missing).
    pub extension: String,
    /// The user's name when tsps creates the user (default: the extension).
    #[serde(default)]
    pub display_name: Option<String>,
    pub upstream: UpstreamConfig,
}

/// The tenant above the personal user, and this tsps's device there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The upstream registrar, `host:port` (UDP). Requests from this address are the
    /// upstream's calls for the user; calls out go to it.
    pub registrar: String,
    /// The upstream tenant's SIP domain (its digest realm); the local tenant has it too.
    pub domain: String,
    /// Digest user name of the device this tsps is at the upstream tenant.
    pub username: String,
    pub password: Secret,
    /// Registration interval asked for (the registrar may shorten it or ask for more).
    #[serde(default = "default_upstream_expires")]
    pub expires: u32,
    /// Wait after the first failed registration; doubled per failure (with jitter).
    #[serde(default = "default_retry_base")]
    pub retry_base_secs: u64,
    /// Longest wait between registration attempts.
    #[serde(default = "default_retry_max")]
    pub retry_max_secs: u64,
}

fn default_upstream_expires() -> u32 {
    600
}
fn default_retry_base() -> u64 {
    // RFC 5626 §4.5: base time 30 s when no flow works.
    30
}
fn default_retry_max() -> u64 {
    1800
}

impl PersonalConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let ext = &self.extension;
        if ext.is_empty() || !ext.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("personal.extension", "digits only"));
        }
        let up = &self.upstream;
        match up.registrar.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
            _ => {
                return Err(invalid(
                    "personal.upstream.registrar",
                    format!("not a host:port address: {:?}", up.registrar),
                ))
            }
        }
        if up.domain.trim().is_empty() {
            return Err(invalid("personal.upstream.domain", "must not be empty"));
        }
        if up.username.trim().is_empty() || up.password.expose().is_empty() {
            return Err(invalid(
                "personal.upstream.username",
                "a user name and a password are needed",
            ));
        }
        // Below this the refresh margin (a tenth, at least 5 s) leaves no interval.
        if up.expires < 10 {
            return Err(invalid("personal.upstream.expires", "must be at least 10"));
        }
        if up.retry_base_secs == 0 || up.retry_max_secs < up.retry_base_secs {
            return Err(invalid(
                "personal.upstream.retry_base_secs",
                "must be at least 1 and at most retry_max_secs",
            ));
        }
        Ok(())
    }
}

pub use crate::secret::Secret;

fn default_version() -> u32 {
    CONFIG_VERSION
}
fn default_sip_listen() -> String {
    "0.0.0.0:5060".into()
}
fn default_min_expires() -> u32 {
    60
}
fn default_max_expires() -> u32 {
    3600
}
fn default_nonce_ttl() -> u64 {
    300
}
fn default_ring_timeout() -> u64 {
    60
}
fn default_max_message() -> usize {
    // RFC 3261 §18.1.1: UDP messages above ~1300 bytes should use TCP; we accept up to
    // 64 KiB on either transport and answer 513 beyond it.
    65_535
}
fn default_digest_algorithms() -> Vec<String> {
    vec!["SHA-256".into(), "MD5".into()]
}
fn default_http_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_session_idle() -> u64 {
    8 * 3600
}
fn default_session_lifetime() -> u64 {
    7 * 24 * 3600
}
fn default_database_url() -> Secret {
    Secret("sqlite://tsps.db".into())
}
fn default_pool_size() -> u32 {
    8
}
fn default_log_level() -> String {
    "info".into()
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            udp_listen: default_sip_listen(),
            tcp_listen: default_sip_listen(),
            public_host: None,
            min_expires: default_min_expires(),
            max_expires: default_max_expires(),
            nonce_ttl_secs: default_nonce_ttl(),
            ring_timeout_secs: default_ring_timeout(),
            workers: 0,
            max_message_bytes: default_max_message(),
            digest_algorithms: default_digest_algorithms(),
            overload_queue_age_ms: default_overload_queue_age_ms(),
            overload_queue_depth: default_overload_queue_depth(),
            overload_retry_after_secs: default_overload_retry_after(),
            overload_socket_fill_pct: default_overload_socket_fill_pct(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
            api_token: None,
            secure_cookies: false,
            session_idle_secs: default_session_idle(),
            session_lifetime_secs: default_session_lifetime(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: default_database_url(),
            max_connections: default_pool_size(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: LogFormat::Text,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            sip: SipConfig::default(),
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            log: LogConfig::default(),
            testing: TestingConfig::default(),
            presence: PresenceConfig::default(),
            media: MediaConfig::default(),
            security: SecurityConfig::default(),
            quotas: QuotasConfig::default(),
            personal: None,
        }
    }
}

impl PresenceConfig {
    /// The limits the SIP shards apply; `per_tenant` is the default tenant quota.
    pub fn settings(&self, per_tenant: u32) -> crate::sip::presence::PresenceSettings {
        crate::sip::presence::PresenceSettings {
            min_expires: self.min_expires,
            max_expires: self.max_expires,
            default_expires: self.default_expires,
            max_per_device: self.max_subscriptions_per_device,
            max_per_tenant: per_tenant as usize,
        }
    }
}

impl Config {
    /// Reads the optional file, then `TSPS_*` variables from `env` (passed in so that
    /// tests need not touch the process environment), then validates.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let env_source = config::Environment::with_prefix("TSPS")
            .prefix_separator("_")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("sip.digest_algorithms")
            .with_list_parse_key("security.auth.trusted_sources")
            .try_parsing(true)
            .source(Some(
                env.iter()
                    // TSPS_CONFIG names the file itself (the command line reads it).
                    .filter(|(k, _)| k.starts_with("TSPS_") && k.as_str() != "TSPS_CONFIG")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ));
        let raw: Config = builder.add_source(env_source).build()?.try_deserialize()?;
        raw.validate()
    }

    fn validate(self) -> Result<Self, ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(invalid(
                "version",
                format!("expected {CONFIG_VERSION}, found {}", self.version),
            ));
        }
        for (field, value) in [
            ("sip.udp_listen", &self.sip.udp_listen),
            ("sip.tcp_listen", &self.sip.tcp_listen),
        ] {
            if !value.is_empty() && value.parse::<SocketAddr>().is_err() {
                return Err(invalid(field, format!("not an ip:port address: {value:?}")));
            }
        }
        if self.sip.udp_listen.is_empty() && self.sip.tcp_listen.is_empty() {
            return Err(invalid(
                "sip",
                "at least one of udp_listen and tcp_listen is needed",
            ));
        }
        if self.http.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "http.listen",
                format!("not an ip:port address: {:?}", self.http.listen),
            ));
        }
        // The session's last activity is written once a minute: a shorter idle timeout
        // could not be kept.
        if self.http.session_idle_secs < 60 {
            return Err(invalid("http.session_idle_secs", "must be at least 60"));
        }
        if self.http.session_lifetime_secs < self.http.session_idle_secs {
            return Err(invalid(
                "http.session_lifetime_secs",
                "must be at least http.session_idle_secs",
            ));
        }
        if self.sip.min_expires == 0 || self.sip.min_expires > self.sip.max_expires {
            return Err(invalid(
                "sip.min_expires",
                "must be at least 1 and at most sip.max_expires",
            ));
        }
        if self.presence.min_expires == 0 || self.presence.min_expires > self.presence.max_expires {
            return Err(invalid(
                "presence.min_expires",
                "must be at least 1 and at most presence.max_expires",
            ));
        }
        if self.presence.max_subscriptions_per_device == 0 {
            return Err(invalid(
                "presence.max_subscriptions_per_device",
                "must be at least 1",
            ));
        }
        if self.sip.nonce_ttl_secs < 1 {
            return Err(invalid("sip.nonce_ttl_secs", "must be at least 1"));
        }
        if self.sip.digest_algorithms.is_empty()
            || self
                .sip
                .digest_algorithms
                .iter()
                .any(|a| !a.eq_ignore_ascii_case("MD5") && !a.eq_ignore_ascii_case("SHA-256"))
        {
            return Err(invalid(
                "sip.digest_algorithms",
                "a non-empty list of MD5 and/or SHA-256",
            ));
        }
        if self.sip.max_message_bytes < 1500 {
            return Err(invalid("sip.max_message_bytes", "must be at least 1500"));
        }
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        if let Some(redis) = &self.redis.url {
            if !redis.expose().starts_with("redis://") {
                return Err(invalid("redis.url", "must start with redis://"));
            }
        }
        if self.redis.prefix.is_empty() || self.redis.prefix.contains(char::is_whitespace) {
            return Err(invalid(
                "redis.prefix",
                "must not be empty or contain spaces",
            ));
        }
        if let Some(n) = &self.redis.node_id {
            if n.is_empty() || n.contains(char::is_whitespace) {
                return Err(invalid(
                    "redis.node_id",
                    "must not be empty or contain spaces",
                ));
            }
        }
        if self.log.level.trim().is_empty() {
            return Err(invalid("log.level", "must not be empty"));
        }
        if let Some(p) = &self.personal {
            p.validate()?;
        }
        self.validate_media()?;
        self.validate_security()?;
        Ok(self)
    }

    fn validate_security(&self) -> Result<(), ConfigError> {
        let a = &self.security.auth;
        for s in &a.trusted_sources {
            s.parse::<tsps_actors::directory::SourceRange>()
                .map_err(|e| invalid("security.auth.trusted_sources", e))?;
        }
        if a.source_burst == 0 || a.account_burst == 0 {
            return Err(invalid(
                "security.auth",
                "source_burst and account_burst must be at least 1",
            ));
        }
        if a.block_secs == 0 || a.max_block_secs < a.block_secs {
            return Err(invalid(
                "security.auth.block_secs",
                "must be at least 1 and at most max_block_secs",
            ));
        }
        let c = &self.security.connections;
        if c.max_per_source == 0 {
            return Err(invalid(
                "security.connections.max_per_source",
                "must be at least 1",
            ));
        }
        if c.idle_timeout_secs == 0 || c.header_timeout_secs == 0 {
            return Err(invalid(
                "security.connections",
                "idle_timeout_secs and header_timeout_secs must be at least 1",
            ));
        }
        if self.security.log.lines_per_second == 0 {
            return Err(invalid(
                "security.log.lines_per_second",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    fn validate_media(&self) -> Result<(), ConfigError> {
        let m = &self.media;
        for (field, value) in [("media.address", &m.address), ("media.bind", &m.bind)] {
            if let Some(v) = value {
                if v.parse::<IpAddr>().is_err() {
                    return Err(invalid(field, format!("not an IP address: {v:?}")));
                }
            }
        }
        // 0.0.0.0 in SDP means "on hold" to the phones (RFC 2543).
        if m.address
            .as_deref()
            .is_some_and(|a| a.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()))
        {
            return Err(invalid(
                "media.address",
                "must be an address the phones can reach, not 0.0.0.0 or ::",
            ));
        }
        let settings = self.media_settings();
        if settings.address.is_ipv4() != settings.bind.is_ipv4() {
            return Err(invalid(
                "media.bind",
                "must be of the same IP family as media.address",
            ));
        }
        if m.rtp_port_min == 0 || m.rtp_port_min > m.rtp_port_max {
            return Err(invalid(
                "media.rtp_port_min",
                "must be at least 1 and at most media.rtp_port_max",
            ));
        }
        if m.rtp_port_min == m.rtp_port_max && m.rtp_port_min % 2 == 1 {
            return Err(invalid("media.rtp_port_max", "the range has no even port"));
        }
        Ok(())
    }

    /// The media engine's settings: `media.address`, else `sip.public_host` when it is
    /// an IP, else 127.0.0.1; `media.bind`, else the address.
    pub fn media_settings(&self) -> crate::media::MediaSettings {
        let m = &self.media;
        let address = m
            .address
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .or_else(|| self.sip_public_host().parse().ok())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let bind = m
            .bind
            .as_deref()
            .and_then(|b| b.parse().ok())
            .unwrap_or(address);
        crate::media::MediaSettings {
            address,
            bind,
            rtp_port_min: m.rtp_port_min,
            rtp_port_max: m.rtp_port_max,
        }
    }

    /// The host tsps writes into its own Via and Contact headers: `sip.public_host`,
    /// else the listen IP, else (listening on all interfaces) the first non-loopback
    /// IPv4 address of this machine, else 127.0.0.1. Phones send in-dialog requests
    /// (ACK, BYE) there, so it must be reachable from them.
    pub fn sip_public_host(&self) -> String {
        if let Some(h) = &self.sip.public_host {
            return h.clone();
        }
        let listen = if self.sip.udp_listen.is_empty() {
            &self.sip.tcp_listen
        } else {
            &self.sip.udp_listen
        };
        match listen.parse::<SocketAddr>() {
            Ok(a) if !a.ip().is_unspecified() => a.ip().to_string(),
            _ => if_addrs::get_if_addrs()
                .ok()
                .and_then(|ifs| {
                    ifs.into_iter()
                        .find(|i| !i.is_loopback() && i.ip().is_ipv4())
                        .map(|i| i.ip().to_string())
                })
                .unwrap_or_else(|| "127.0.0.1".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_embedded() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert!(c.database.url.expose().starts_with("sqlite:"));
        assert!(c.redis.url.is_none());
        assert_eq!(c.sip.min_expires, 60);
    }

    #[test]
    fn environment_overrides_nested_fields() {
        let c = Config::load(
            None,
            &env(&[
                ("TSPS_SIP__UDP_LISTEN", "127.0.0.1:5999"),
                ("TSPS_DATABASE__URL", "postgres://postgres@127.0.0.1/tsps"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.sip.udp_listen, "127.0.0.1:5999");
        assert_eq!(c.sip_public_host(), "127.0.0.1");
        assert!(c.database.url.expose().starts_with("postgres://"));
        let c = Config::load(
            None,
            &env(&[("TSPS_SIP__DIGEST_ALGORITHMS", "MD5,SHA-256")]),
        )
        .unwrap();
        assert_eq!(c.sip.digest_algorithms, vec!["MD5", "SHA-256"]);
        assert!(Config::load(None, &env(&[("TSPS_SIP__DIGEST_ALGORITHMS", "SHA1")])).is_err());
    }

    #[test]
    fn the_config_file_variable_is_not_a_setting() {
        let c = Config::load(None, &env(&[("TSPS_CONFIG", "/etc/tsps.toml")]));
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::load(None, &env(&[("TSPS_HTTP__LISTEN", "nonsense")])).unwrap_err();
        assert!(e.to_string().contains("http.listen"), "{e}");
        let e = Config::load(None, &env(&[("TSPS_DATABASE__URL", "mysql://x")])).unwrap_err();
        assert!(e.to_string().contains("database.url"), "{e}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[sip]\nudp_lisen = \"127.0.0.1:5060\"\n").unwrap();
        let e = Config::load(Some(&p), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("udp_lisen"), "{e}");
    }

    #[test]
    fn example_file_is_valid_and_shows_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tsps.example.toml");
        let c = Config::load(Some(&path), &env(&[])).unwrap();
        let d = Config::default();
        assert_eq!(c.sip.udp_listen, d.sip.udp_listen);
        assert_eq!(c.sip.digest_algorithms, d.sip.digest_algorithms);
        assert_eq!(c.database.url, d.database.url);
        assert_eq!(c.http.secure_cookies, d.http.secure_cookies);
        assert_eq!(c.http.session_idle_secs, d.http.session_idle_secs);
        assert_eq!(c.http.session_lifetime_secs, d.http.session_lifetime_secs);
        assert_eq!(c.media.enabled, d.media.enabled);
        assert_eq!(c.media.rtp_port_min, d.media.rtp_port_min);
        assert_eq!(c.media.rtp_port_max, d.media.rtp_port_max);
    }

    #[test]
    fn session_timeouts_are_checked() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert!(!c.http.secure_cookies);
        assert_eq!(c.http.session_idle_secs, 8 * 3600);
        let e = Config::load(None, &env(&[("TSPS_HTTP__SESSION_IDLE_SECS", "10")])).unwrap_err();
        assert!(e.to_string().contains("http.session_idle_secs"), "{e}");
        let e = Config::load(
            None,
            &env(&[
                ("TSPS_HTTP__SESSION_IDLE_SECS", "3600"),
                ("TSPS_HTTP__SESSION_LIFETIME_SECS", "600"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("http.session_lifetime_secs"), "{e}");
        let c = Config::load(None, &env(&[("TSPS_HTTP__SECURE_COOKIES", "true")])).unwrap();
        assert!(c.http.secure_cookies);
    }

    #[test]
    fn personal_mode_from_the_environment() {
        let base = [
            ("TSPS_PERSONAL__EXTENSION", "1002"),
            ("TSPS_PERSONAL__UPSTREAM__REGISTRAR", "127.0.0.1:5070"),
            ("TSPS_PERSONAL__UPSTREAM__DOMAIN", "a.test"),
            ("TSPS_PERSONAL__UPSTREAM__USERNAME", "1002"),
            ("TSPS_PERSONAL__UPSTREAM__PASSWORD", "secret"),
        ];
        let c = Config::load(None, &env(&base)).unwrap();
        let p = c.personal.expect("personal mode is on");
        // Digits read from the environment stay strings.
        assert_eq!(p.extension, "1002");
        assert_eq!(p.upstream.username, "1002");
        assert_eq!(p.upstream.expires, 600);
        assert_eq!(format!("{:?}", p.upstream.password), "[redacted]");
        assert!(Config::load(None, &env(&[])).unwrap().personal.is_none());

        let with = |k: &str, v: &str| {
            let mut e = env(&base);
            e.insert(k.to_string(), v.to_string());
            Config::load(None, &e).unwrap_err().to_string()
        };
        let e = with("TSPS_PERSONAL__UPSTREAM__REGISTRAR", "registrar.example");
        assert!(e.contains("personal.upstream.registrar"), "{e}");
        let e = with("TSPS_PERSONAL__EXTENSION", "bob");
        assert!(e.contains("personal.extension"), "{e}");
        let e = with("TSPS_PERSONAL__UPSTREAM__EXPIRES", "5");
        assert!(e.contains("personal.upstream.expires"), "{e}");
        let mut e = env(&base);
        e.remove("TSPS_PERSONAL__UPSTREAM__PASSWORD");
        assert!(Config::load(None, &e).is_err());
    }

    #[test]
    fn presence_limits_are_checked() {
        let c = Config::load(None, &env(&[("TSPS_PRESENCE__MIN_EXPIRES", "1")])).unwrap();
        assert_eq!(c.presence.min_expires, 1);
        assert_eq!(c.presence.max_subscriptions_per_device, 100);
        let e = Config::load(None, &env(&[("TSPS_PRESENCE__MIN_EXPIRES", "0")])).unwrap_err();
        assert!(e.to_string().contains("presence.min_expires"), "{e}");
        let e = Config::load(
            None,
            &env(&[("TSPS_PRESENCE__MAX_SUBSCRIPTIONS_PER_DEVICE", "0")]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("max_subscriptions_per_device"),
            "{e}"
        );
    }

    #[test]
    fn redis_settings() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(c.redis.prefix, "tsps:");
        assert!(c.redis.node_id.is_none());
        let c = Config::load(
            None,
            &env(&[
                ("TSPS_REDIS__URL", "redis://127.0.0.1:6379"),
                ("TSPS_REDIS__PREFIX", "test42:"),
                ("TSPS_REDIS__NODE_ID", "node-a"),
            ]),
        )
        .unwrap();
        assert_eq!(c.redis.prefix, "test42:");
        assert_eq!(c.redis.node_id.as_deref(), Some("node-a"));
        assert_eq!(format!("{:?}", c.redis.url), "Some([redacted])");
        let e = Config::load(None, &env(&[("TSPS_REDIS__URL", "http://x")])).unwrap_err();
        assert!(e.to_string().contains("redis.url"), "{e}");
        let e = Config::load(None, &env(&[("TSPS_REDIS__PREFIX", "a b")])).unwrap_err();
        assert!(e.to_string().contains("redis.prefix"), "{e}");
    }

    #[test]
    fn media_settings() {
        let c = Config::load(None, &env(&[("TSPS_SIP__UDP_LISTEN", "127.0.0.1:5999")])).unwrap();
        assert!(c.media.enabled);
        let m = c.media_settings();
        assert_eq!(m.address.to_string(), "127.0.0.1");
        assert_eq!(m.bind, m.address);
        assert_eq!((m.rtp_port_min, m.rtp_port_max), (20000, 39999));
        // A public host that is a name: the loopback address.
        let c = Config::load(None, &env(&[("TSPS_SIP__PUBLIC_HOST", "sip.example.net")])).unwrap();
        assert_eq!(c.media_settings().address.to_string(), "127.0.0.1");
        let c = Config::load(
            None,
            &env(&[
                ("TSPS_SIP__PUBLIC_HOST", "192.0.2.1"),
                ("TSPS_MEDIA__BIND", "0.0.0.0"),
                ("TSPS_MEDIA__RTP_PORT_MIN", "30000"),
                ("TSPS_MEDIA__RTP_PORT_MAX", "30100"),
                ("TSPS_MEDIA__ENABLED", "false"),
            ]),
        )
        .unwrap();
        let m = c.media_settings();
        assert_eq!(m.address.to_string(), "192.0.2.1");
        assert_eq!(m.bind.to_string(), "0.0.0.0");
        assert_eq!((m.rtp_port_min, m.rtp_port_max), (30000, 30100));
        assert!(!c.media.enabled);
        let c = Config::load(None, &env(&[("TSPS_MEDIA__ADDRESS", "198.51.100.7")])).unwrap();
        assert_eq!(c.media_settings().address.to_string(), "198.51.100.7");
        for (k, v) in [
            ("TSPS_MEDIA__ADDRESS", "media.example.net"),
            ("TSPS_MEDIA__ADDRESS", "0.0.0.0"),
            ("TSPS_MEDIA__BIND", "::"),
            ("TSPS_MEDIA__RTP_PORT_MIN", "0"),
            ("TSPS_MEDIA__RTP_PORT_MIN", "40000"),
        ] {
            let e = Config::load(None, &env(&[(k, v)])).unwrap_err();
            assert!(e.to_string().contains("media."), "{k}={v}: {e}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
