//! "A tenant with three SIPp phones": one tsps with [`THREE_USERS_YAML`] (tenant
//! `a.test`: 1001 Alice, 1002 Bob, 1003 Carol, one device each with password
//! `secret<ext>`) and the ids the REST API needs to act as one of its users.
//!
//! Test-specific helpers stay in their test files (an inherent `impl Pbx` there is fine:
//! `common` is a module of each test crate).

use super::events::{EventsClient, Kind};
use super::{
    free_port, register, tenant_users, Sipp, SippHandle, Tsps, DEVICE_IP, THREE_USERS_YAML,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// The tenant of [`THREE_USERS_YAML`].
pub const DOMAIN: &str = "a.test";
/// How long a user's event stream may take to send its snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(8);

/// One tsps with [`THREE_USERS_YAML`], and the ids the API needs.
pub struct Pbx {
    pub tsps: Tsps,
    pub tenant: String,
    /// Extension → user id.
    pub users: BTreeMap<String, String>,
}

impl Pbx {
    pub fn start() -> Pbx {
        let tsps = Tsps::start(THREE_USERS_YAML, &[]);
        let (tenant, users) = tenant_users(&tsps, DOMAIN);
        Pbx {
            tsps,
            tenant,
            users,
        }
    }

    pub fn user_path(&self, extension: &str) -> String {
        format!("/tenants/{}/users/{}", self.tenant, self.users[extension])
    }

    /// The id of the (only) device of `extension`.
    pub fn device_id(&self, extension: &str) -> String {
        let path = format!("{}/devices", self.user_path(extension));
        let devices = self.tsps.api_ok(Method::GET, &path, None);
        devices[0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a device of {extension}: {devices}"))
            .to_string()
    }

    /// The device of `extension`, registered from a fresh port, playing `uas`.
    pub fn device(&self, extension: &str, uas: Sipp) -> SippHandle {
        let port = free_port(IpAddr::V4(DEVICE_IP), false);
        register(
            &self.tsps,
            DOMAIN,
            extension,
            &format!("secret{extension}"),
            port,
        );
        self.tsps.spawn_sipp(uas.port(port))
    }

    /// A control command of `extension` on `call_id`: `.../calls/{call_id}/{what}`.
    pub fn control(
        &self,
        extension: &str,
        call_id: &str,
        what: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let path = format!("{}/calls/{call_id}/{what}", self.user_path(extension));
        self.tsps.api(Method::POST, &path, body.as_ref())
    }

    /// Click-to-dial from 1001's device: returns the call id.
    pub fn click_to_dial(&self, device: &str, destination: &str) -> String {
        let path = format!("{}/calls", self.user_path("1001"));
        let body = json!({ "device_id": device, "destination": destination });
        let (status, body) = self.tsps.api(Method::POST, &path, Some(&body));
        assert_eq!(status, 201, "click-to-dial {destination}: {body}");
        body["call_id"].as_str().expect("call_id").to_string()
    }

    /// The live events of `extension` (SSE), past the initial snapshot.
    pub fn events_of(&self, extension: &str) -> EventsClient {
        let url = format!(
            "{}/api/v1{}/events/sse",
            self.tsps.http_url(),
            self.user_path(extension)
        );
        let mut events = EventsClient::connect(Kind::Sse, &url, self.tsps.api_token(), None);
        assert_eq!(events.next(SNAPSHOT_WAIT)["type"], "snapshot");
        events
    }
}
