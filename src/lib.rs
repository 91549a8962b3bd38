//! tsps: the edges and the wiring around the call logic of `tsps-actors`.
//!
//! - [`sip`]: sans-IO SIP on rsipstack's message types (transactions, digest, registrar,
//!   B2BUA leg mapping).
//! - [`transport`]: UDP and TCP sockets that drive [`sip`].
//! - [`contacts`]: contacts of the feature server: E.164 normalization, vCard and CSV.
//! - [`cluster`]: several nodes sharing one Redis (events, registrations).
//! - [`store`]: sqlx repositories (PostgreSQL and the embedded SQLite default).
//! - [`web`]: axum REST API under `/api/v1`.
//! - [`media`]: conference bridges (RTP, G.711, the mix) behind the actors' Media port.
//! - [`personal`]: personal mode, a tsps that registers upstream as its user's device.
//! - [`server`]: starts everything for `tsps serve`.

pub mod cluster;
pub mod config;
pub mod contacts;
pub mod features;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod password;
pub mod persistence;
pub mod personal;
pub mod provision;
pub mod push;
pub mod rules;
pub mod secret;
pub mod server;
pub mod sip;
pub mod store;
pub mod transport;
pub mod web;
