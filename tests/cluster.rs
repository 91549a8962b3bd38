//! Two tsps nodes sharing one PostgreSQL and one Redis, end to end: a phone registered
//! on node 1 is rung by a call entering node 2; a user's event stream on node 2 follows
//! a call handled by node 1; and a Redis outage in the middle of it all (a private
//! redis-server that the test kills and starts again) leaves each node serving its own
//! calls, shows in the metrics, and loses no registration.
//!
//! The machine's shared Redis (127.0.0.1:6379) is never stopped: each test uses its own
//! channel and key prefix there (`redis.prefix`), or its own server.

mod common;

use common::events::{EventsClient, Kind};
use common::{
    free_port, register, tenant_users, PgDatabase, Sipp, SippHandle, Tsps, DEVICE_IP,
    THREE_USERS_YAML,
};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tsps_actors::model::{CallOutcome, CallRecord};

const SHARED_REDIS: &str = "redis://127.0.0.1:6379";
const WAIT: Duration = Duration::from_secs(20);
const CDR_WAIT: Duration = Duration::from_secs(10);

/// Channels and keys of this test only.
fn unique_prefix() -> String {
    format!("tsps-it-{}:", uuid::Uuid::new_v4().simple())
}

/// Two nodes on one database and one Redis.
struct Cluster {
    nodes: [Tsps; 2],
    tenant: String,
    /// The channel and key prefix of this cluster.
    prefix: String,
    /// extension → user id
    users: BTreeMap<String, String>,
    rt: tokio::runtime::Runtime,
    // Dropped after the nodes (fields drop in order).
    _db: PgDatabase,
}

impl Cluster {
    fn start(redis_url: &str) -> Cluster {
        let db = PgDatabase::create();
        let prefix = unique_prefix();
        let env = [
            ("TSPS_REDIS__URL", redis_url),
            ("TSPS_REDIS__PREFIX", prefix.as_str()),
        ];
        let n1 = Tsps::start_with_database(THREE_USERS_YAML, &env, &db.url());
        let n2 = Tsps::start_with_database(THREE_USERS_YAML, &env, &db.url());
        let (tenant, users) = tenant_users(&n1, "a.test");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let c = Cluster {
            nodes: [n1, n2],
            tenant,
            prefix,
            users,
            rt,
            _db: db,
        };
        for n in 0..2 {
            c.wait_metric(n, "tsps_redis_up", 1.0);
        }
        c
    }

    fn node(&self, n: usize) -> &Tsps {
        &self.nodes[n]
    }

    fn events_url(&self, n: usize, ext: &str) -> String {
        format!(
            "{}/api/v1/tenants/{}/users/{}/events/ws",
            self.nodes[n].http_url(),
            self.tenant,
            self.users[ext]
        )
    }

    fn watch(&self, n: usize, ext: &str) -> EventsClient {
        EventsClient::connect(
            Kind::WebSocket,
            &self.events_url(n, ext),
            self.nodes[n].api_token(),
            None,
        )
    }

    /// Polls until node `n`'s actor of `ext` holds a registration (each user here
    /// registers one phone): read from a fresh snapshot of the user's events each time.
    fn wait_registered(&self, n: usize, ext: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut ws = self.watch(n, ext);
            let snap = ws.next(WAIT);
            ws.close();
            if snap["data"]["devices"][0]["registered"] == true {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} does not know {ext} registered: {snap}",
                n + 1
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metrics(&self, n: usize) -> String {
        let url = format!("{}/api/v1/metrics", self.nodes[n].http_url());
        let token = self.nodes[n].api_token();
        self.rt.block_on(async {
            let r = reqwest::Client::new()
                .get(&url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            r.text().await.expect("metrics text")
        })
    }

    fn metric(&self, n: usize, name: &str) -> Option<f64> {
        self.metrics(n).lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok()).flatten()
        })
    }

    fn wait_metric(&self, n: usize, name: &str, value: f64) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.metric(n, name) == Some(value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {}: {name} is not {value}:\n{}",
                n + 1,
                self.metrics(n)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ext` registers on node `n` from a fresh port; returns the port.
    fn register(&self, n: usize, ext: &str) -> u16 {
        let port = free_port(IpAddr::V4(DEVICE_IP), false);
        register(self.node(n), "a.test", ext, &format!("secret{ext}"), port);
        port
    }

    /// A phone answering on `port` (registered there before).
    fn answering(&self, port: u16) -> SippHandle {
        self.nodes[0].spawn_sipp(Sipp::uas("uas_answer.xml").port(port))
    }

    /// `from` calls `to` through node `n`; both phones must see the whole call.
    fn call(&self, n: usize, from: &str, to: &str, callee: SippHandle, what: &str) {
        let uac = self.node(n).sipp(
            Sipp::new("uac_call.xml")
                .device("a.test", from, &format!("secret{from}"))
                .calling(to),
        );
        let uas = callee.join();
        uac.assert_success(&format!("{what}: the caller {from} through node {}", n + 1));
        uas.assert_success(&format!("{what}: the callee {to}"));
    }

    /// The newest CDR once there are `count`.
    fn record(&mut self, count: usize) -> CallRecord {
        let records = self.nodes[0].wait_for_call_records("a.test", count, CDR_WAIT);
        records.into_iter().next().expect("a record")
    }
}

fn is_line(v: &Value, state: &str) -> bool {
    v["type"] == "line" && v["data"]["state"] == state
}

/// (1) A phone registered on node 1 is rung by a call entering node 2.
#[test]
fn a_phone_registered_on_one_node_rings_for_a_call_through_the_other() {
    let mut c = Cluster::start(SHARED_REDIS);
    let port = c.register(0, "1002");
    c.wait_registered(1, "1002");
    let callee = c.answering(port);
    c.call(1, "1001", "1002", callee, "node 2 rings node 1's phone");
    let r = c.record(1);
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
    assert_eq!(r.caller, "1001");
    assert_eq!(
        r.callee_user_id.map(|u| u.to_string()).as_deref(),
        Some(c.users["1002"].as_str()),
        "{r:#?}"
    );
}

/// (2) A user's event stream on node 2 follows a call that node 1 handles.
#[test]
fn a_watcher_on_one_node_follows_a_call_on_the_other() {
    let c = Cluster::start(SHARED_REDIS);
    let port = c.register(0, "1002");
    let mut bob = c.watch(1, "1002");
    assert_eq!(bob.next(WAIT)["type"], "snapshot");
    let callee = c.answering(port);
    c.call(0, "1001", "1002", callee, "node 1 handles the call");
    bob.until(WAIT, "ringing line on node 2", |v| is_line(v, "ringing"));
    bob.until(WAIT, "active line on node 2", |v| is_line(v, "active"));
    let ended = bob.until(WAIT, "ended line on node 2", |v| v["type"] == "line_ended");
    assert_eq!(ended["data"]["outcome"], "answered", "{ended}");
    // The hook state of a call on node 1 shows on node 2 too (status messages come
    // from the user actor, not in a fixed order with the lines).
    bob.until(WAIT, "idle status on node 2", |v| {
        v["type"] == "status" && v["data"]["hook"] == "idle"
    });
    let hooks: Vec<&str> = bob
        .seen
        .iter()
        .filter(|v| v["type"] == "status")
        .filter_map(|v| v["data"]["hook"].as_str())
        .collect();
    assert_eq!(hooks, ["ringing", "busy", "idle"], "{:#?}", bob.seen);
}

/// Writes through one node's API reach the other node's actors and directory: a
/// status a user sets, and a user provisioned with a device.
#[test]
fn store_changes_made_through_one_node_reach_the_other() {
    let c = Cluster::start(SHARED_REDIS);
    let mut bob = c.watch(1, "1002");
    assert_eq!(bob.next(WAIT)["type"], "snapshot");
    let status = format!("/tenants/{}/users/{}/status", c.tenant, c.users["1002"]);
    c.node(0).api_ok(
        Method::PUT,
        &status,
        Some(&serde_json::json!({"presence": "away"})),
    );
    bob.until(WAIT, "the status set through node 1", |v| {
        v["type"] == "status" && v["data"]["presence"] == "away"
    });

    let users = format!("/tenants/{}/users", c.tenant);
    let dave = c.node(0).api_ok(
        Method::POST,
        &users,
        Some(&serde_json::json!({"extension": "1004", "display_name": "Dave"})),
    );
    let dave = dave["id"].as_str().expect("user id");
    c.node(0).api_ok(
        Method::POST,
        &format!("{users}/{dave}/devices"),
        Some(&serde_json::json!({"sip_username": "1004", "password": "secret1004"})),
    );
    // Node 2 knows the new device once it reloaded its directory.
    let deadline = Instant::now() + WAIT;
    loop {
        let run = c.node(1).sipp(
            Sipp::new("register.xml")
                .device("a.test", "1004", "secret1004")
                .port(free_port(IpAddr::V4(DEVICE_IP), false)),
        );
        if run.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 does not accept 1004's registration: {}",
            run.report()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A redis-server of this test only, so that it can be killed and started again.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let mut r = PrivateRedis {
            port: free_port(IpAddr::V4(DEVICE_IP), true),
            child: None,
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        r.spawn();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The fields of a hash (a user's bindings).
    fn hash_fields(&self, key: &str) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let client = redis::Client::open(self.url()).expect("redis url");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("connect to the private redis");
            let map: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("HGETALL");
            map.into_values().collect()
        })
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// (3) Redis dies mid-test and comes back empty: each node serves its own calls
/// meanwhile, the metric shows the outage, and afterwards registrations taken before
/// and during the outage reach the other node again, as does a new one.
#[test]
fn a_redis_outage_leaves_each_node_serving_and_loses_no_registration() {
    let mut redis = PrivateRedis::start();
    let mut c = Cluster::start(&redis.url());
    // Before the outage: 1002 on node 1, known to node 2.
    let bob = c.register(0, "1002");
    c.wait_registered(1, "1002");

    redis.kill();
    for n in 0..2 {
        c.wait_metric(n, "tsps_redis_up", 0.0);
    }
    // Each node serves its own calls (and node 2 still rings node 1's phone, known
    // from before): 1001 → 1002 through node 1, then through node 2.
    c.call(0, "1001", "1002", c.answering(bob), "outage, node 1");
    c.call(1, "1001", "1002", c.answering(bob), "outage, node 2");
    // A registration on node 2 during the outage serves node 2's calls.
    let carol = c.register(1, "1003");
    c.call(
        1,
        "1001",
        "1003",
        c.answering(carol),
        "outage, node 2's own phone",
    );
    assert_eq!(c.record(3).outcome, CallOutcome::Answered);
    // What the nodes could not tell each other was counted.
    let dropped = c.metric(1, "tsps_redis_dropped_total").unwrap_or(0.0);
    assert!(dropped > 0.0, "{}", c.metrics(1));

    redis.spawn();
    for n in 0..2 {
        c.wait_metric(n, "tsps_redis_up", 1.0);
    }
    // The restarted Redis was empty: node 1 published 1002's binding again.
    let key = format!("{}bindings:{}:{}", c.prefix, c.tenant, c.users["1002"]);
    let deadline = Instant::now() + WAIT;
    while !redis
        .hash_fields(&key)
        .iter()
        .any(|v| v.contains(&format!(":{bob}")))
    {
        assert!(
            Instant::now() < deadline,
            "1002's binding is not back in {key}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new registration on node 1 is reachable from node 2.
    let alice = c.register(0, "1001");
    c.wait_registered(1, "1001");
    c.call(
        1,
        "1002",
        "1001",
        c.answering(alice),
        "after, node 2 to node 1's new phone",
    );
    // Nothing registered before was lost: node 2's registration from the outage
    // reaches node 1, node 1's from before still reaches node 2.
    c.wait_registered(0, "1003");
    c.call(
        0,
        "1001",
        "1003",
        c.answering(carol),
        "after, node 1 to node 2's phone",
    );
    c.call(
        1,
        "1003",
        "1002",
        c.answering(bob),
        "after, node 2 to node 1's phone",
    );
    assert_eq!(c.record(6).outcome, CallOutcome::Answered);
}
