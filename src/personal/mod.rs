//! Personal mode: `tsps serve` with a `[personal]` section serves one user at home (the
//! user's devices register here and the user's feature server decides their calls)
//! and is itself a device of that user at an upstream tenant: issue 3's external lower
//! tier, one tsps below another.
//!
//! - [`register`]: the registration client toward the upstream registrar, sans-IO
//!   (REGISTER with digest, refresh before expiry, backoff, 423, removal at the end).
//! - [`client`]: its driver, on a UDP socket of its own (only REGISTER transactions
//!   use it; the upstream's calls arrive on the SIP port, at the registered contact).
//! - here: start-up (the local tenant and user when missing, and the `upstream` trunk
//!   that carries calls out with the same credentials) and the registration task.
//!
//! Elsewhere, two small hooks: the SIP shard takes an INVITE from the registrar's
//! address as the upstream's call for the user, through that trunk
//! ([`crate::sip::shard::Upstream`]); the tenant actor sends whatever a local device
//! dials that is not a local extension up the trunk, extensions included
//! (`TenantActor::with_upstream`).

pub mod client;
pub mod register;

use crate::config::{PersonalConfig, Secret};
use crate::provision::{ProvisionDoc, TenantSpec, TrunkSpec, UserSpec};
use crate::sip::digest::DigestError;
use crate::store::Store;
use anyhow::Context as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;
use tsps_actors::model::TransportKind;
use tsps_actors::{TenantId, TrunkId, UserId};

/// The trunk of the personal tenant that leads to the upstream tenant.
pub const UPSTREAM_TRUNK: &str = "upstream";

/// How long shutdown waits for the upstream to confirm the binding's removal.
const UNREGISTER_BUDGET: Duration = Duration::from_secs(4);

/// Why a registration with the upstream failed (the layer's one error enum; start-up
/// problems are reported with their context by [`prepare`] and [`start`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonalError {
    #[error("upstream refused the registration with {0}")]
    Refused(u16),
    #[error("upstream did not accept the credentials")]
    Unauthorized,
    #[error("cannot answer the upstream's challenge: {0}")]
    Challenge(#[source] DigestError),
    #[error("no answer from the upstream registrar")]
    Timeout,
    #[error("upstream wants an interval of at least {0} s, which is not usable")]
    IntervalTooBrief(u32),
    #[error("upstream did not keep the binding")]
    NotGranted,
}

/// What start-up found or created: the shard and the platform need these.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub tenant: TenantId,
    pub user: UserId,
    pub trunk: TrunkId,
    /// The registrar's address (resolved once, at start).
    pub registrar: SocketAddr,
    pub extension: String,
}

impl Prepared {
    /// How the SIP shard recognises the upstream's calls.
    pub fn upstream(&self) -> crate::sip::shard::Upstream {
        crate::sip::shard::Upstream {
            addr: self.registrar,
            trunk: self.trunk,
            extension: self.extension.clone(),
        }
    }
}

/// Makes sure the local tenant (the upstream's domain) and the user exist, keeping
/// what an operator already set (name, time zone, portal login), and writes the
/// `upstream` trunk from the configuration. Run before the directory is loaded.
pub async fn prepare(store: &dyn Store, cfg: &PersonalConfig) -> anyhow::Result<Prepared> {
    let up = &cfg.upstream;
    let registrar = tokio::net::lookup_host(&up.registrar)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .with_context(|| {
            format!(
                "personal.upstream.registrar {:?} does not resolve",
                up.registrar
            )
        })?;
    let domain = up.domain.trim().to_ascii_lowercase();
    let tenant = store.find_tenant_by_domain(&domain).await?;
    let user = match &tenant {
        Some(t) => store.find_user_by_extension(t.id, &cfg.extension).await?,
        None => None,
    };
    let doc = ProvisionDoc {
        tenants: vec![TenantSpec {
            domain: domain.clone(),
            name: tenant
                .as_ref()
                .map_or_else(|| domain.clone(), |t| t.name.clone()),
            time_zone: tenant
                .as_ref()
                .map_or_else(|| "UTC".to_string(), |t| t.time_zone.clone()),
            users: vec![UserSpec {
                extension: cfg.extension.clone(),
                display_name: user.as_ref().map_or_else(
                    || {
                        cfg.display_name
                            .clone()
                            .unwrap_or_else(|| cfg.extension.clone())
                    },
                    |u| u.display_name.clone(),
                ),
                portal_login: user.as_ref().and_then(|u| u.portal_login.clone()),
                role: None,
                password: None,
                devices: vec![],
            }],
            dids: vec![],
            trunks: vec![TrunkSpec {
                name: UPSTREAM_TRUNK.into(),
                // The shard dials IP literals only.
                peer_host: registrar.ip().to_string(),
                peer_port: registrar.port(),
                transport: TransportKind::Udp,
                username: Some(up.username.clone()),
                password: Some(up.password.clone()),
                // Its calls are recognised by the registrar's address and port, not by
                // source IP: on one host the user's own phones share that IP.
                inbound_sources: vec![],
            }],
        }],
    };
    let summary = crate::provision::apply(store, &doc)
        .await
        .context("cannot set up the personal tenant")?;
    let tenant = store
        .find_tenant_by_domain(&domain)
        .await?
        .context("the personal tenant was just written")?;
    let user = store
        .find_user_by_extension(tenant.id, &cfg.extension)
        .await?
        .context("the personal user was just written")?;
    let trunk = store
        .find_trunk_by_name(tenant.id, UPSTREAM_TRUNK)
        .await?
        .context("the upstream trunk was just written")?;
    info!(%domain, extension = %cfg.extension, %registrar, %summary, "personal mode");
    Ok(Prepared {
        tenant: tenant.id,
        user: user.id,
        trunk: trunk.id,
        registrar,
        extension: cfg.extension.clone(),
    })
}

/// Starts registering upstream. The contact is the user's extension at this tsps's SIP
/// UDP address (`public_host`, `sip_port`); REGISTERs leave from a socket of their own
/// on `bind_ip`. The task ends once `cancel` fired and the binding was removed (or
/// [`UNREGISTER_BUDGET`] passed).
pub async fn start(
    cfg: &PersonalConfig,
    prepared: &Prepared,
    public_host: &str,
    sip_port: u16,
    bind_ip: IpAddr,
    cancel: CancellationToken,
) -> anyhow::Result<(
    tokio::task::JoinHandle<()>,
    watch::Receiver<register::Status>,
)> {
    let up = &cfg.upstream;
    let domain = up.domain.trim().to_ascii_lowercase();
    // An IPv6 literal goes in brackets in a URI and a Via (RFC 3261 §25.1).
    let host = if public_host.contains(':') && !public_host.starts_with('[') {
        format!("[{public_host}]")
    } else {
        public_host.to_string()
    };
    let settings = register::Settings {
        registrar_uri: format!("sip:{domain}"),
        aor: format!("sip:{}@{domain}", up.username),
        contact: format!("sip:{}@{host}:{sip_port}", prepared.extension),
        username: up.username.clone(),
        password: Secret(up.password.expose().to_string()),
        expires: up.expires,
        retry_base: Duration::from_secs(up.retry_base_secs),
        retry_max: Duration::from_secs(up.retry_max_secs),
    };
    let link = client::UdpLink::bind(SocketAddr::new(bind_ip, 0), prepared.registrar)
        .await
        .context("cannot bind the socket for upstream registrations")?;
    let via_host = format!("{host}:{}", link.local_port());
    let registration = register::Registration::new(
        settings,
        format!("tsps-reg.{}", uuid::Uuid::new_v4().simple()),
        crate::sip::build::token(),
        rand::random(),
    );
    let (client, status) = client::Client::new(link, registration, via_host);
    let task = tokio::spawn(client.run(cancel, UNREGISTER_BUDGET));
    Ok((task, status))
}
