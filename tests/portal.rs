//! The web portal in a real browser: a real tsps, real SIPp phones, and headless
//! Chromium driven by the Node scenarios in `tests/portal/` (Playwright's
//! `playwright-core` on Debian's `chromium`; `scripts/test.sh` installs both).
//!
//! Each test starts tsps with its own provisioning (and, for the operator's scenario,
//! an operator account), runs one scenario with
//! `node tests/portal/<scenario>.mjs` and reads its JSON report: every check it made,
//! the screenshots it saved in `target/portal-artifacts/<test>/`, console errors,
//! uncaught exceptions and failed requests. A scenario that places calls talks with
//! the test over its stdin and stdout (one JSON object per line): it says when the
//! browser is ready, the test starts the SIPp phones and tells it when.

mod common;

use common::{free_port, register, Sipp, SippHandle, SippRun, Tsps, DEVICE_IP};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DOMAIN: &str = "a.test";
const OTHER_DOMAIN: &str = "b.test";
/// The longest one scenario may run (the `timeout` wrapper kills it after this).
const SCENARIO_LIMIT_SECS: u64 = 120;
/// How long the test waits for one progress line of a scenario.
const STEP_WAIT: Duration = Duration::from_secs(30);

/// Tenant `a.test`: Alice (1001, tenant admin), Bob (1002, user, two phones), Carol
/// (1003); tenant `b.test`: Dave (2001). Every user can log in to the portal.
fn provisioning() -> String {
    r#"tenants:
  - domain: a.test
    name: Tenant A
    time_zone: Europe/Zurich
    users:
      - extension: "1001"
        display_name: Alice
        portal_login: alice
        password: portal-alice-1
        role: tenant_admin
        devices:
          - sip_username: "1001"
            password: secret1001
      - extension: "1002"
        display_name: Bob
        portal_login: bob
        password: portal-bob-1
        devices:
          - sip_username: "1002"
            password: secret1002
          - sip_username: "1002b"
            password: secret1002b
      - extension: "1003"
        display_name: Carol
        portal_login: carol
        password: portal-carol-1
        devices:
          - sip_username: "1003"
            password: secret1003
  - domain: b.test
    name: Tenant B
    time_zone: Europe/Zurich
    users:
      - extension: "2001"
        display_name: Dave
        portal_login: dave
        password: portal-dave-1
        devices:
          - sip_username: "2001"
            password: secret2001
"#
    .to_string()
}

/// Provisioning without portal passwords: what tsps accepts before portal logins exist.
fn provisioning_without_logins() -> String {
    provisioning()
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("password: portal-") || t.starts_with("role:"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// One tsps for a portal test, with the ids the scenarios need.
struct Portal {
    tsps: Tsps,
    tenants: BTreeMap<String, String>,
    /// (domain, extension) → user id.
    users: BTreeMap<(String, String), String>,
}

impl Portal {
    fn start_with(yaml: &str) -> Portal {
        let tsps = Tsps::start(yaml, &[]);
        let mut tenants = BTreeMap::new();
        let mut users = BTreeMap::new();
        for t in tsps
            .api_ok(Method::GET, "/tenants", None)
            .as_array()
            .expect("a list of tenants")
        {
            let domain = t["domain"].as_str().expect("domain").to_string();
            let id = t["id"].as_str().expect("tenant id").to_string();
            let listed = tsps.api_ok(Method::GET, &format!("/tenants/{id}/users"), None);
            for u in listed.as_array().expect("a list of users") {
                let ext = u["extension"].as_str().expect("extension").to_string();
                let uid = u["id"].as_str().expect("user id").to_string();
                users.insert((domain.clone(), ext), uid);
            }
            tenants.insert(domain, id);
        }
        Portal {
            tsps,
            tenants,
            users,
        }
    }

    fn start() -> Portal {
        Self::start_with(&provisioning())
    }

    fn tenant(&self, domain: &str) -> &str {
        &self.tenants[domain]
    }

    fn user(&self, domain: &str, extension: &str) -> &str {
        &self.users[&(domain.to_string(), extension.to_string())]
    }

    /// Environment for a scenario: the URL and the login of `login` in `domain`.
    fn env(&self, domain: &str, login: &str, password: &str) -> Vec<(String, String)> {
        vec![
            ("TSPS_URL".into(), self.tsps.http_url()),
            ("TSPS_DOMAIN".into(), domain.into()),
            ("TSPS_LOGIN".into(), login.into()),
            ("TSPS_PASSWORD".into(), password.into()),
        ]
    }

    /// Environment for a scenario's second (or third) login, read with
    /// `credentials(prefix)`.
    fn second_login(&self, prefix: &str, login: &str, password: &str) -> Vec<(String, String)> {
        vec![
            (format!("{prefix}_DOMAIN"), DOMAIN.into()),
            (format!("{prefix}_LOGIN"), login.into()),
            (format!("{prefix}_PASSWORD"), password.into()),
        ]
    }

    /// Registers `sip_username` (password `secret<name>`) from a fresh port.
    fn register(&self, domain: &str, sip_username: &str) -> u16 {
        let port = free_port(IpAddr::V4(DEVICE_IP), false);
        register(
            &self.tsps,
            domain,
            sip_username,
            &format!("secret{sip_username}"),
            port,
        );
        port
    }

    /// A registered phone that plays the UAS `scenario` for the next call.
    fn phone(&self, sip_username: &str, uas: Sipp) -> SippHandle {
        let port = self.register(DOMAIN, sip_username);
        self.tsps.spawn_sipp(uas.port(port))
    }

    /// `sip_username` of a.test dials `callee`.
    fn caller(&self, scenario: &str, sip_username: &str, callee: &str) -> Sipp {
        Sipp::new(scenario)
            .device(DOMAIN, sip_username, &format!("secret{sip_username}"))
            .calling(callee)
    }
}

/// `target/portal-artifacts/<test>/`, emptied.
fn artifacts(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("portal-artifacts").join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}

/// One running scenario: its stdin for commands, its stdout lines as they come.
struct Browser {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<Value>,
    stderr_path: PathBuf,
}

impl Browser {
    fn start(test: &str, scenario: &str, env: Vec<(String, String)>) -> Browser {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("portal");
        assert!(
            root.join("node_modules").join("playwright-core").is_dir(),
            "tests/portal/node_modules is missing: run `npm ci` in tests/portal (scripts/test.sh does)"
        );
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "/usr/bin/chromium is missing: install Debian's chromium (scripts/test.sh does)"
        );
        let dir = artifacts(test);
        let stderr_path = dir.join("node-stderr.log");
        let mut child = Command::new("timeout")
            .args(["-k", "5", &SCENARIO_LIMIT_SECS.to_string(), "node"])
            .arg(root.join(scenario))
            .current_dir(&root)
            .envs(env)
            .env("PORTAL_ARTIFACTS", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr_path).expect("create the node log"))
            .spawn()
            .expect("run node (install nodejs)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Browser {
            name: format!("{test}/{scenario}"),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stderr_path,
        }
    }

    /// The next JSON line, or None when the scenario ended or `wait` passed.
    fn next(&mut self, wait: Duration) -> Option<Value> {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        self.seen.push(v.clone());
                        return Some(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// Waits for `{"event": event}` and returns it; panics with the log otherwise.
    fn wait_event(&mut self, event: &str) -> Value {
        loop {
            match self.next(STEP_WAIT) {
                Some(v) if v["event"] == event => return v,
                Some(v) if v.get("result").is_some() => {
                    panic!(
                        "{}: ended before \"{event}\": {}",
                        self.name,
                        describe(&v["result"])
                    )
                }
                Some(_) => continue,
                None => panic!(
                    "{}: no \"{event}\" within {STEP_WAIT:?}; stderr:\n{}",
                    self.name,
                    fs::read_to_string(&self.stderr_path).unwrap_or_default()
                ),
            }
        }
    }

    /// Sends one command line to the scenario.
    fn send(&mut self, cmd: Value) {
        let stdin = self.stdin.as_mut().expect("the scenario's stdin is open");
        writeln!(stdin, "{cmd}").expect("write to the scenario");
        stdin.flush().expect("flush the scenario's stdin");
    }

    /// Tells the scenario that a call was just started (for its latency check).
    fn call_started(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as u64;
        self.send(json!({"cmd": "call_started", "at": now}));
    }

    /// Waits for the scenario's end and its report; panics unless every check passed.
    fn finish(mut self) -> Value {
        let limit = Duration::from_secs(SCENARIO_LIMIT_SECS + 10);
        let result = loop {
            match self.next(limit) {
                Some(v) if v.get("result").is_some() => break v["result"].clone(),
                Some(_) => continue,
                None => break Value::Null,
            }
        };
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for node");
        let stderr = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        assert!(
            !result.is_null(),
            "{}: no report (exit {status}); stderr:\n{stderr}",
            self.name
        );
        assert!(
            status.success() && result["ok"] == true,
            "{}: failed (exit {status}):\n{}\nstderr:\n{stderr}",
            self.name,
            describe(&result)
        );
        result
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A scenario's report for a failure message: the failed checks first.
fn describe(result: &Value) -> String {
    let failed: Vec<&Value> = result["checks"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["ok"] != true).collect())
        .unwrap_or_default();
    format!(
        "failed checks: {}\nerror: {}\nconsole errors: {}\npage errors: {}\nfailed requests: {}\nscreenshots: {}",
        serde_json::to_string_pretty(&failed).unwrap_or_default(),
        result["error"].as_str().unwrap_or("none"),
        result["console_errors"],
        result["page_errors"],
        result["failed_requests"],
        result["screenshots"],
    )
}

/// Every check of a report, by name.
fn checks(result: &Value) -> Vec<String> {
    result["checks"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["what"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_screenshots(result: &Value, at_least: usize) {
    let shots = result["screenshots"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(shots.len() >= at_least, "screenshots: {shots:?}");
    for s in shots {
        let path = s.as_str().expect("a path");
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "screenshot {path} is empty ({size} bytes)");
    }
}

// ---------------------------------------------------------------------------------

#[test]
fn login_screen_renders_with_security_headers_and_no_console_errors() {
    let portal = Portal::start_with(&provisioning_without_logins());
    let browser = Browser::start(
        "login_screen",
        "screen.mjs",
        portal.env(DOMAIN, "alice", "unused"),
    );
    let result = browser.finish();
    let done = checks(&result);
    for want in [
        "/ redirects to /portal/",
        "page header content-security-policy",
        "asset header x-frame-options",
        "unchanged asset revalidates with 304",
        "empty submit marks every field",
        "login fits a phone screen",
    ] {
        assert!(
            done.iter().any(|c| c == want),
            "check {want:?} ran: {done:?}"
        );
    }
    assert_screenshots(&result, 3);
}

#[test]
fn login_refuses_a_wrong_password_then_shows_home_and_logs_out() {
    let portal = Portal::start();
    let result = Browser::start(
        "login",
        "login.mjs",
        portal.env(DOMAIN, "bob", "portal-bob-1"),
    )
    .finish();
    let done = checks(&result);
    assert!(
        done.iter().any(|c| c == "wrong password shows an error"),
        "{done:?}"
    );
    assert_screenshots(&result, 3);
}

#[test]
fn every_page_renders_and_does_its_job_for_a_tenant_admin() {
    let portal = Portal::start();
    let result = Browser::start(
        "pages",
        "pages.mjs",
        portal.env(DOMAIN, "alice", "portal-alice-1"),
    )
    .finish();
    assert_screenshots(&result, 9);
    // What the browser did went through the real API: the contact is gone again, the
    // profile kept do-not-disturb, the user added and deleted in admin is gone.
    let alice = format!(
        "/tenants/{}/users/{}",
        portal.tenant(DOMAIN),
        portal.user(DOMAIN, "1001")
    );
    let profile = portal
        .tsps
        .api_ok(Method::GET, &format!("{alice}/profile"), None);
    assert_eq!(profile["dnd"]["enabled"], true, "{profile}");
    let contacts = portal
        .tsps
        .api_ok(Method::GET, &format!("{alice}/contacts"), None);
    // Anna was deleted; the hint's example and Bob by his extension stay, as typed.
    let kept: Vec<(&str, &str)> = contacts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["numbers"][0]["number"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            ("Bob at his desk", "1002"),
            ("Example Number", "+41795550101")
        ],
        "{contacts}"
    );
    let users = portal.tsps.api_ok(
        Method::GET,
        &format!("/tenants/{}/users", portal.tenant(DOMAIN)),
        None,
    );
    assert!(
        !users.to_string().contains("\"1009\""),
        "the user added in admin was deleted: {users}"
    );
}

#[test]
fn a_user_of_tenant_b_sees_nothing_of_tenant_a() {
    let portal = Portal::start();
    let mut env = portal.env(OTHER_DOMAIN, "dave", "portal-dave-1");
    env.push(("PORTAL_OTHER_TENANT".into(), portal.tenant(DOMAIN).into()));
    env.push((
        "PORTAL_OTHER_USER".into(),
        portal.user(DOMAIN, "1001").into(),
    ));
    let result = Browser::start("walls", "walls.mjs", env).finish();
    let refused = checks(&result)
        .into_iter()
        .filter(|c| c.starts_with("refused"))
        .count();
    assert!(refused >= 5, "{result}");
}

#[test]
fn an_operator_creates_a_tenant_opens_it_and_adds_a_user() {
    let portal = Portal::start();
    let password = "operator-portal-1";
    // `tsps operator add` on the same database, the password from the environment
    // (and no other TSPS_* setting from the developer's shell).
    let mut add = Command::new(env!("CARGO_BIN_EXE_tsps"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TSPS_")) {
        add.env_remove(k);
    }
    let out = add
        .arg("--config")
        .arg(portal.tsps.dir().join("tsps.toml"))
        .args(["operator", "add", "ops"])
        .env("TSPS_OPERATOR_PASSWORD", password)
        .stdin(Stdio::null())
        .output()
        .expect("run tsps operator add");
    assert!(out.status.success(), "{out:?}");
    let env = vec![
        ("TSPS_URL".into(), portal.tsps.http_url()),
        ("TSPS_LOGIN".into(), "ops".into()),
        ("TSPS_PASSWORD".into(), password.into()),
    ];
    let result = Browser::start("operator", "operator.mjs", env).finish();
    assert_screenshots(&result, 7);
    // What the browser did went through the real API: c.test with its user, d.test
    // created and deleted again.
    let tenants = portal.tsps.api_ok(Method::GET, "/tenants", None);
    let c = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["domain"] == "c.test")
        .unwrap_or_else(|| panic!("c.test was created: {tenants}"));
    assert_eq!(
        (&c["name"], &c["time_zone"]),
        (&json!("Tenant C"), &json!("Europe/Zurich"))
    );
    assert!(!tenants.to_string().contains("d.test"), "{tenants}");
    let id = c["id"].as_str().unwrap();
    let users = portal
        .tsps
        .api_ok(Method::GET, &format!("/tenants/{id}/users"), None);
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    assert_eq!(
        (&users[0]["extension"], &users[0]["display_name"]),
        (&json!("3001"), &json!("Cleo"))
    );
}

#[test]
fn a_call_rings_in_the_browser_within_a_second_and_follows_the_phone() {
    ringing_follows_the_phone("ringing", "ws");
}

#[test]
fn the_portal_follows_calls_over_server_sent_events_too() {
    ringing_follows_the_phone("ringing_sse", "sse");
}

/// A call to Bob, answered and ended on his phone, seen in his browser over `transport`.
fn ringing_follows_the_phone(test: &str, transport: &str) {
    let portal = Portal::start();
    let mut env = portal.env(DOMAIN, "bob", "portal-bob-1");
    env.push(("PORTAL_EVENTS".into(), transport.into()));
    let mut browser = Browser::start(test, "ringing.mjs", env);
    browser.wait_event("ready");
    let phone = portal.phone(
        "1002",
        Sipp::uas("uas_answer_late.xml").key("answer_after_ms", "3000"),
    );
    browser.call_started();
    let caller = portal
        .tsps
        .spawn_sipp(portal.caller("uac_call.xml", "1001", "1002"));
    browser.wait_event("ended");
    let result = browser.finish();
    caller.join().assert_success("Alice's call to Bob");
    phone
        .join()
        .assert_success("Bob's phone rang, answered, got the BYE");
    assert!(
        result["data"]["ring_latency_ms"].as_u64().is_some(),
        "{result}"
    );
    assert_screenshots(&result, 3);
}

#[test]
fn colleagues_status_lights_and_the_attendants_view_follow_a_call() {
    let portal = Portal::start();
    // Bob is Alice's attendant: he sees her incoming calls, not only her light.
    let alice = format!(
        "/tenants/{}/users/{}/profile",
        portal.tenant(DOMAIN),
        portal.user(DOMAIN, "1001")
    );
    portal.tsps.api_ok(
        Method::PUT,
        &alice,
        Some(&json!({"attendant": {"extension": "1002"}})),
    );
    let mut browser = Browser::start(
        "presence",
        "presence.mjs",
        portal.env(DOMAIN, "bob", "portal-bob-1"),
    );
    browser.wait_event("offline_seen");
    let phone = portal.phone(
        "1001",
        Sipp::uas("uas_answer_late.xml").key("answer_after_ms", "2000"),
    );
    browser.wait_event("available_seen");
    // Do not disturb in Alice's profile (the attendant stays).
    let profile = |dnd: bool| json!({"attendant": {"extension": "1002"}, "dnd": {"enabled": dnd}});
    portal
        .tsps
        .api_ok(Method::PUT, &alice, Some(&profile(true)));
    browser.send(json!({"cmd": "dnd_on"}));
    browser.wait_event("dnd_seen");
    portal
        .tsps
        .api_ok(Method::PUT, &alice, Some(&profile(false)));
    browser.send(json!({"cmd": "dnd_off"}));
    browser.wait_event("ready");
    let caller = portal
        .tsps
        .spawn_sipp(portal.caller("uac_call.xml", "1003", "1001"));
    browser.wait_event("ended");
    browser.finish();
    caller.join().assert_success("Carol's call to Alice");
    phone
        .join()
        .assert_success("Alice's phone rang and answered");
}

#[test]
fn a_ringing_call_is_forwarded_from_the_incoming_window() {
    let mut portal = Portal::start();
    let mut browser = Browser::start(
        "forward",
        "forward.mjs",
        // A plain user (not a tenant admin) redirects the calls ringing to them.
        portal.env(DOMAIN, "bob", "portal-bob-1"),
    );
    browser.wait_event("ready");
    let mut own = portal.phone("1002", Sipp::uas("uas_no_answer.xml"));
    let carol = portal.phone("1003", Sipp::uas("uas_answer.xml"));
    browser.call_started();
    let caller = portal
        .tsps
        .spawn_sipp(portal.caller("uac_call_routed.xml", "1001", "1002"));
    assert!(
        own.wait_for_message("SIP/2.0 180 Ringing", Duration::from_secs(5)),
        "Bob's phone did not ring:\n{}",
        own.messages_so_far()
    );
    browser.wait_event("forwarded");
    browser.finish();
    caller
        .join()
        .assert_success("Alice's call: Bob rings, the call moves to Carol, answered");
    own.join()
        .assert_success("Bob's phone is cancelled by the forward");
    carol
        .join()
        .assert_success("Carol's phone rings and answers");
    // The call reached Carol by Bob's forward: it is in her history, as incoming.
    let records = portal
        .tsps
        .wait_for_call_records(DOMAIN, 1, Duration::from_secs(10));
    let history = format!(
        "/tenants/{}/users/{}/calls/history?direction=incoming",
        portal.tenant(DOMAIN),
        portal.user(DOMAIN, "1003")
    );
    let listed = portal.tsps.api_ok(Method::GET, &history, None);
    assert_eq!(listed[0]["id"], records[0].id.to_string(), "{listed}");
}

/// Waits until `phone` has seen `needle` in its SIP messages.
fn saw(phone: &mut SippHandle, needle: &str, what: &str) {
    assert!(
        phone.wait_for_message(needle, Duration::from_secs(5)),
        "{what}: no {needle:?} within 5 s:\n{}",
        phone.messages_so_far()
    );
}

/// Waits until `phone` has received `n` INVITEs (the first and its re-INVITEs).
fn saw_invites(phone: &mut SippHandle, n: usize, what: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let log = phone.messages_so_far();
        if log.matches("INVITE sip:").count() >= n {
            return;
        }
        assert!(
            Instant::now() < until,
            "{what}: fewer than {n} INVITEs within 5 s:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn answer_on_the_chosen_phone_from_the_incoming_window() {
    let portal = Portal::start();
    let mut env = portal.env(DOMAIN, "bob", "portal-bob-1");
    env.push(("PORTAL_ANSWER_DEVICE".into(), "1002".into()));
    let mut browser = Browser::start("answer", "answer.mjs", env);
    browser.wait_event("ready");
    // 1002 rings 3 s before it answers; 1002b would ring until cancelled.
    let chosen = portal.phone(
        "1002",
        Sipp::uas("uas_answer_late.xml").key("answer_after_ms", "3000"),
    );
    let mut other = portal.phone("1002b", Sipp::uas("uas_no_answer.xml"));
    browser.call_started();
    let caller = portal
        .tsps
        .spawn_sipp(portal.caller("uac_call_routed.xml", "1001", "1002"));
    browser.wait_event("answer_clicked");
    saw(&mut other, "CANCEL sip:", "1002b once 1002 was chosen");
    browser.wait_event("ended");
    browser.finish();
    caller
        .join()
        .assert_success("Alice's call, answered on 1002");
    chosen
        .join()
        .assert_success("1002 keeps ringing, answers, gets the BYE");
    other.join().assert_success("1002b is cancelled");
}

#[test]
fn hold_resume_and_hang_up_from_the_browser() {
    let portal = Portal::start();
    let mut browser = Browser::start(
        "hold",
        "hold.mjs",
        portal.env(DOMAIN, "alice", "portal-alice-1"),
    );
    browser.wait_event("ready");
    let mut bob = portal.phone("1002", Sipp::uas("control_uas_held.xml"));
    browser.call_started();
    let alice = portal
        .tsps
        .spawn_sipp(portal.caller("control_uac_call.xml", "1001", "1002"));
    browser.wait_event("held");
    saw(
        &mut bob,
        "a=sendonly",
        "Bob's phone after Hold in Alice's browser",
    );
    browser.send(json!({"cmd": "resume"}));
    browser.wait_event("resumed");
    // The scenario itself checks the third INVITE says a=sendrecv.
    saw_invites(&mut bob, 3, "Bob's phone after Resume");
    browser.send(json!({"cmd": "release"}));
    browser.wait_event("released");
    browser.finish();
    alice
        .join()
        .assert_success("Alice's phone: no re-INVITE, then the BYE of the hang-up");
    bob.join()
        .assert_success("Bob's phone: held, resumed, then the BYE");
}

#[test]
fn chat_beside_a_call_from_bobs_browser_reaches_alices() {
    let portal = Portal::start();
    let mut env = portal.env(DOMAIN, "alice", "portal-alice-1");
    env.extend([
        ("PEER_DOMAIN".to_string(), DOMAIN.to_string()),
        ("PEER_LOGIN".to_string(), "bob".to_string()),
        ("PEER_PASSWORD".to_string(), "portal-bob-1".to_string()),
    ]);
    let mut browser = Browser::start("chat", "chat.mjs", env);
    browser.wait_event("ready");
    // Alice's phone is not registered (it only calls): Bob's message reaches her
    // browser only, so no phone gets a MESSAGE it does not expect.
    let bob = portal.phone("1002", Sipp::uas("uas_answer.xml"));
    browser.call_started();
    let alice = portal
        .tsps
        .spawn_sipp(portal.caller("control_uac_call.xml", "1001", "1002"));
    browser.wait_event("released");
    let result = browser.finish();
    alice
        .join()
        .assert_success("Alice's call, ended by Bob's browser");
    bob.join()
        .assert_success("Bob's phone answered and got the BYE");
    assert_screenshots(&result, 4);
    let profile = portal.tsps.api_ok(
        Method::GET,
        &format!(
            "/tenants/{}/users/{}/profile",
            portal.tenant(DOMAIN),
            portal.user(DOMAIN, "1002")
        ),
        None,
    );
    assert_eq!(
        profile["default_handling"],
        json!({"method": "reject_with_message",
            "text": "In a meeting until 3, I will call back", "code": 486}),
        "saved from Bob's settings page: {profile}"
    );
}

#[test]
fn click_to_dial_from_the_directory_rings_the_own_phone_then_the_colleague() {
    let portal = Portal::start();
    let mut browser = Browser::start(
        "dial",
        "dial.mjs",
        portal.env(DOMAIN, "alice", "portal-alice-1"),
    );
    browser.wait_event("ready");
    let own = portal.phone(
        "1001",
        Sipp::uas("control_uas_delayed_offer.xml").key("answer_after_ms", "300"),
    );
    let bob = portal.phone("1002", Sipp::uas("uas_answer.xml"));
    browser.send(json!({"cmd": "phones_ready"}));
    browser.wait_event("connected");
    browser.send(json!({"cmd": "release"}));
    browser.wait_event("released");
    browser.finish();
    own.join()
        .assert_success("Alice's phone: rung first without an offer, answered, BYE");
    bob.join()
        .assert_success("Bob's phone: rung, answered, BYE");
}

#[test]
fn blind_transfer_from_the_browser() {
    let portal = Portal::start();
    let mut env = portal.env(DOMAIN, "bob", "portal-bob-1");
    env.extend(portal.second_login("PEER", "alice", "portal-alice-1"));
    env.extend(portal.second_login("THIRD", "carol", "portal-carol-1"));
    let mut browser = Browser::start("transfer", "transfer.mjs", env);
    browser.wait_event("ready");
    let bob = portal.phone(
        "1002",
        Sipp::uas("uas_answer_late.xml").key("answer_after_ms", "500"),
    );
    let carol = portal.phone(
        "1003",
        Sipp::uas("control_uas_delayed_offer.xml").key("answer_after_ms", "300"),
    );
    browser.call_started();
    let alice =
        portal
            .tsps
            .spawn_sipp(portal.caller("control_uac_transferred.xml", "1001", "1002"));
    browser.wait_event("transferred");
    browser.wait_event("checked");
    browser.finish();
    alice
        .join()
        .assert_success("Alice: re-INVITEd to Carol, answers, hangs up");
    bob.join()
        .assert_success("Bob's phone: answered, released by the transfer");
    carol
        .join()
        .assert_success("Carol's phone: rung without an offer, answered, BYE");
}

#[test]
fn consultative_transfer_from_the_browser() {
    let portal = Portal::start();
    let mut browser = Browser::start(
        "consult",
        "consult.mjs",
        portal.env(DOMAIN, "alice", "portal-alice-1"),
    );
    browser.wait_event("ready");
    // Alice's phone takes both calls (click-to-dial); Bob is held, then joined with Carol.
    let phone = portal.phone(
        "1001",
        Sipp::uas("control_uas_delayed_offer.xml")
            .key("answer_after_ms", "300")
            .calls(2),
    );
    let mut bob = portal.phone("1002", Sipp::uas("control_uas_join_held.xml"));
    let mut carol = portal.phone("1003", Sipp::uas("control_uas_join_remaining.xml"));
    let user = format!(
        "/tenants/{}/users/{}",
        portal.tenant(DOMAIN),
        portal.user(DOMAIN, "1001")
    );
    let devices = portal
        .tsps
        .api_ok(Method::GET, &format!("{user}/devices"), None);
    let device = devices[0]["id"].clone();
    let dial = |destination: &str| {
        let body = json!({ "device_id": device, "destination": destination });
        let placed = portal
            .tsps
            .api_ok(Method::POST, &format!("{user}/calls"), Some(&body));
        placed["call_id"].as_str().expect("call id").to_string()
    };
    let first = dial("1002");
    saw(&mut bob, "ACK sip:", "Bob answers");
    portal.tsps.api_ok(
        Method::POST,
        &format!("{user}/calls/{first}/hold"),
        Some(&json!({})),
    );
    let second = dial("1003");
    saw(&mut carol, "ACK sip:", "Carol answers");
    browser.send(json!({"cmd": "calls_up", "first": first, "second": second}));
    browser.wait_event("joined");
    browser.finish();
    phone
        .join()
        .assert_success("Alice's phone: two calls, a BYE on each");
    bob.join()
        .assert_success("Bob: held, then joined with Carol (re-INVITE without SDP)");
    carol
        .join()
        .assert_success("Carol: re-INVITE with Bob's offer, answers, hangs up");
}

#[test]
fn after_a_dropped_stream_and_a_reload_the_browser_shows_the_call_as_it_is() {
    let portal = Portal::start();
    let mut browser = Browser::start(
        "reconnect",
        "reconnect.mjs",
        portal.env(DOMAIN, "alice", "portal-alice-1"),
    );
    browser.wait_event("ready");
    let mut bob = portal.phone("1002", Sipp::uas("control_uas_held.xml"));
    browser.call_started();
    let alice = portal
        .tsps
        .spawn_sipp(portal.caller("control_uac_call.xml", "1001", "1002"));
    let offline = browser.wait_event("offline");
    let call = offline["call_id"].as_str().expect("call id").to_string();
    let path = format!(
        "/tenants/{}/users/{}/calls/{call}",
        portal.tenant(DOMAIN),
        portal.user(DOMAIN, "1001")
    );
    // Held while the browser was not listening.
    portal
        .tsps
        .api_ok(Method::POST, &format!("{path}/hold"), Some(&json!({})));
    saw(&mut bob, "a=sendonly", "Bob's phone after the hold");
    browser.send(json!({"cmd": "changed"}));
    browser.wait_event("checked");
    portal
        .tsps
        .api_ok(Method::POST, &format!("{path}/resume"), Some(&json!({})));
    portal
        .tsps
        .api_ok(Method::POST, &format!("{path}/release"), Some(&json!({})));
    browser.send(json!({"cmd": "done"}));
    browser.finish();
    alice
        .join()
        .assert_success("Alice's phone: BYE at the release");
    bob.join().assert_success("Bob's phone: held, resumed, BYE");
}

/// tsps restarts under an open home page: the lights come back by themselves.
#[test]
fn after_a_restart_the_directory_lights_come_back_without_a_page_change() {
    let mut portal = Portal::start();
    // Alice's phone stays registered through the restart (registrations are stored).
    portal.register(DOMAIN, "1001");
    let mut browser = Browser::start(
        "restart",
        "restart.mjs",
        portal.env(DOMAIN, "bob", "portal-bob-1"),
    );
    browser.wait_event("ready");
    portal.tsps.restart_on_same_ports();
    browser.send(json!({"cmd": "restarted"}));
    browser.wait_event("checked");
    browser.finish();
}

/// The SIP requests `phone` received, each as its whole text (from SIPp's message log).
fn received_requests(phone: &str, method: &str) -> Vec<String> {
    phone
        .split("-----------------------------------------------")
        .filter_map(|chunk| {
            let (head, message) = chunk.split_once("\n\n")?;
            head.contains("message received")
                .then(|| message.trim_start().to_string())
        })
        .filter(|m| m.starts_with(&format!("{method} sip:")))
        .collect()
}

fn call_id_of(message: &str) -> String {
    message
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            (name.eq_ignore_ascii_case("call-id") || name == "i").then(|| value.trim().to_string())
        })
        .unwrap_or_default()
}

/// A party of the conference: a re-INVITE (an INVITE in the call's dialog after the
/// first) with the bridge's offer, then a BYE on that call.
fn assert_bridged_then_bye(run: &SippRun, who: &str) {
    let log = run.messages();
    let invites = received_requests(&log, "INVITE");
    let first = invites
        .first()
        .unwrap_or_else(|| panic!("{who}: no INVITE:\n{}", run.report()));
    let call = call_id_of(first);
    assert!(
        invites[1..]
            .iter()
            .any(|m| call_id_of(m) == call && m.contains("RTP/AVP 0 8")),
        "{who}: no re-INVITE with the bridge's offer (RTP/AVP 0 8):\n{}",
        run.report()
    );
    let byes = received_requests(&log, "BYE");
    assert!(
        byes.iter().any(|m| call_id_of(m) == call),
        "{who}: no BYE at the end:\n{}",
        run.report()
    );
}

#[test]
fn conference_of_two_calls_from_the_browser() {
    let portal = Portal::start();
    let mut browser = Browser::start(
        "conference",
        "conference.mjs",
        portal.env(DOMAIN, "alice", "portal-alice-1"),
    );
    browser.wait_event("ready");
    // Alice's phone takes both click-to-dials from her dial pad; Bob is held, then the
    // two calls become one conference on tsps's bridge.
    let phone = portal.phone(
        "1001",
        Sipp::uas("portal_conf_host.xml")
            .key("answer_after_ms", "300")
            .calls(2),
    );
    let mut bob = portal.phone("1002", Sipp::uas("portal_conf_held.xml"));
    let mut carol = portal.phone("1003", Sipp::uas("portal_conf_party.xml"));
    browser.send(json!({"cmd": "phones_ready"}));
    browser.wait_event("conferenced");
    saw(&mut bob, "RTP/AVP 0 8", "Bob's phone once conferenced");
    saw(&mut carol, "RTP/AVP 0 8", "Carol's phone once conferenced");
    browser.send(json!({"cmd": "end"}));
    browser.wait_event("ended");
    let result = browser.finish();
    assert_screenshots(&result, 4);

    let phone = phone.join();
    phone.assert_success("Alice's phone: two calls, the bridge's re-INVITE on one, a BYE on each");
    let byes: BTreeSet<String> = received_requests(&phone.messages(), "BYE")
        .iter()
        .map(|m| call_id_of(m))
        .collect();
    assert_eq!(
        byes.len(),
        2,
        "a BYE on each of Alice's calls:\n{}",
        phone.report()
    );
    let bob = bob.join();
    bob.assert_success("Bob: answered, held, re-INVITEd to the bridge, BYE");
    assert_bridged_then_bye(&bob, "Bob");
    let carol = carol.join();
    carol.assert_success("Carol: answered, re-INVITEd to the bridge, BYE");
    assert_bridged_then_bye(&carol, "Carol");
}
