//! Shared harness for the SIP integration tests: a real `tsps` process per test, real
//! SIPp processes as phones and carriers, and the real database behind tsps.
//!
//! [`Tsps::start`] provisions a fresh embedded database in a temporary directory, runs
//! `tsps serve` on free loopback ports and waits for `/healthz`. [`Tsps::sipp`] runs one
//! SIPp scenario from `tests/sipp/` against it and returns what SIPp saw; the message
//! and error logs stay in the temporary directory. When a test panics, the harness
//! prints the tsps log and every SIPp log of that test, so a failure explains itself.
//!
//! Every wait here is bounded: SIPp runs under `timeout` and its own `-timeout`, health
//! and CDR polls have deadlines, and the tsps child is killed on drop.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod audio;
pub mod browser;
pub mod events;
pub mod pbx;
pub mod raw;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tsps::store::DynStore;
use tsps_actors::model::{Binding, CallRecord};

/// The loopback address of the phones (devices) in the tests.
pub const DEVICE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// The loopback address of the carrier: listed as a trunk's inbound source.
pub const CARRIER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// How long tsps may take from spawn to a healthy `/healthz`.
const START_DEADLINE: Duration = Duration::from_secs(15);
/// SIPp's own global timeout (`-timeout`); the `timeout` wrapper adds a margin.
const SIPP_TIMEOUT_SECS: u64 = 20;
const SIPP_KILL_AFTER_SECS: u64 = SIPP_TIMEOUT_SECS + 15;
const API_TOKEN: &str = "test-token";

/// One `tsps serve` process with its temporary directory, config and database.
pub struct Tsps {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
    sip_port: u16,
    http_port: u16,
    db_url: String,
    extra_env: Vec<(String, String)>,
    /// The open file limit of `serve` (soft and hard), when a test sets one.
    nofile: Option<u64>,
    /// `serve --demo`: the README's quick start.
    demo: bool,
    child: Option<Child>,
    rt: tokio::runtime::Runtime,
    store: Option<DynStore>,
    sipp_runs: AtomicUsize,
}

impl Tsps {
    /// Provisions `provision_yaml` into a fresh SQLite database, then starts `serve`.
    pub fn start(provision_yaml: &str, extra_env: &[(&str, &str)]) -> Tsps {
        Self::start_inner(provision_yaml, extra_env, None)
    }

    /// Like [`Tsps::start`] with `[database] url` set to `db_url` (e.g. PostgreSQL).
    pub fn start_with_database(
        provision_yaml: &str,
        extra_env: &[(&str, &str)],
        db_url: &str,
    ) -> Tsps {
        Self::start_inner(provision_yaml, extra_env, Some(db_url.to_string()))
    }

    /// Like [`Tsps::start`], with `serve` limited to `nofile` open files (soft and hard,
    /// so that tsps cannot raise it).
    pub fn start_with_nofile(
        provision_yaml: &str,
        extra_env: &[(&str, &str)],
        nofile: u64,
    ) -> Tsps {
        Self::start_inner_with(provision_yaml, extra_env, None, Some(nofile))
    }

    fn start_inner(provision_yaml: &str, extra_env: &[(&str, &str)], db: Option<String>) -> Tsps {
        Self::start_inner_with(provision_yaml, extra_env, db, None)
    }

    /// The README's quick start: `tsps serve --demo` with every setting at its default
    /// but the listen addresses (loopback, free ports) and no API token; the embedded
    /// database `tsps.db` lands in the test's directory (its working directory).
    pub fn start_demo() -> Tsps {
        let mut tsps = Self::start_inner_with("", &[], None, None);
        tsps.stop();
        fs::write(
            &tsps.config_path,
            "[sip]\nudp_listen = \"127.0.0.1:0\"\ntcp_listen = \"127.0.0.1:0\"\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\n",
        )
        .expect("write config");
        tsps.demo = true;
        tsps.spawn_serve();
        tsps
    }

    fn start_inner_with(
        provision_yaml: &str,
        extra_env: &[(&str, &str)],
        db: Option<String>,
        nofile: Option<u64>,
    ) -> Tsps {
        let dir = tempfile::Builder::new()
            .prefix("tsps-it-")
            .tempdir()
            .expect("create temporary directory");
        // Port 0: tsps binds free ports itself and reports them in its ready file (a port
        // picked here and released could be taken by a parallel test before tsps binds).
        let (sip_port, http_port) = (0u16, 0u16);
        let db_url =
            db.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("tsps.db").display()));
        let config_path = dir.path().join("tsps.toml");
        // SIPp 3.6 answers only the first challenge and knows only MD5 ("createAuthHeader:
        // authentication must use MD5 or AKAv1-MD5" when SHA-256 comes first), so the
        // tests offer MD5 first; SHA-256 is still offered second.
        fs::write(
            &config_path,
            format!(
                "[sip]\nudp_listen = \"127.0.0.1:{sip_port}\"\ntcp_listen = \"127.0.0.1:{sip_port}\"\n\
                 digest_algorithms = [\"MD5\", \"SHA-256\"]\n\n\
                 [http]\nlisten = \"127.0.0.1:{http_port}\"\napi_token = \"{API_TOKEN}\"\n\n\
                 [database]\nurl = \"{db_url}\"\n\n[log]\nlevel = \"info,tsps=debug\"\n"
            ),
        )
        .expect("write config");
        let log_path = dir.path().join("tsps.log");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut tsps = Tsps {
            config_path,
            log_path,
            sip_port,
            http_port,
            db_url,
            extra_env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            nofile,
            demo: false,
            child: None,
            rt,
            store: None,
            sipp_runs: AtomicUsize::new(0),
            dir,
        };
        if !provision_yaml.is_empty() {
            tsps.provision(provision_yaml);
            tsps.spawn_serve();
        }
        tsps
    }

    /// Where phones send SIP (UDP and TCP share the port).
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from((DEVICE_IP, self.sip_port))
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn api_token(&self) -> &'static str {
        API_TOKEN
    }

    pub fn db_url(&self) -> &str {
        &self.db_url
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `tsps provision apply` on the same database (before or between serves).
    pub fn provision(&self, yaml: &str) {
        let out = self.try_provision(yaml);
        assert!(
            out.status.success(),
            "tsps provision apply failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `tsps provision apply` and returns how it went.
    pub fn try_provision(&self, yaml: &str) -> std::process::Output {
        let file = self.dir.path().join("provision.yaml");
        fs::write(&file, yaml).expect("write provisioning file");
        self.command()
            .args(["provision", "apply"])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("run tsps provision apply")
    }

    /// Stops `serve` and starts it again on the same config and database.
    pub fn restart(&mut self) {
        self.stop();
        // The cached pool belongs to the old process's lifetime; open a fresh one later.
        self.drop_store();
        self.spawn_serve();
    }

    /// Stops `serve` and starts it again on the same ports (as a supervisor restarts
    /// it): what a browser or a phone connected to it sees.
    pub fn restart_on_same_ports(&mut self) {
        let config = fs::read_to_string(&self.config_path).expect("read config");
        let config = config
            .replace(
                "udp_listen = \"127.0.0.1:0\"",
                &format!("udp_listen = \"127.0.0.1:{}\"", self.sip_port),
            )
            .replace(
                "tcp_listen = \"127.0.0.1:0\"",
                &format!("tcp_listen = \"127.0.0.1:{}\"", self.sip_port),
            )
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{}\"", self.http_port),
            );
        fs::write(&self.config_path, config).expect("write config");
        self.restart();
    }

    /// Kills the `serve` process (SIGKILL: what a crash or an OOM kill looks like).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops `serve` as a supervisor does (SIGTERM), so that its graceful shutdown runs,
    /// and waits for it to exit; killed if it takes longer than `deadline`.
    pub fn terminate(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let until = Instant::now() + deadline;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    return child.wait().ok();
                }
            }
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tsps"));
        cmd.arg("--config").arg(&self.config_path);
        // Only this test's settings: nothing leaks in from the developer's shell.
        for (k, _) in std::env::vars() {
            if k.starts_with("TSPS_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn spawn_serve(&mut self) {
        let ready = self.dir.path().join("ready.json");
        let _ = fs::remove_file(&ready);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open tsps log");
        let mut cmd = self.command();
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe, and nothing else runs in the child
            // before exec.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, n, n)
                        .map_err(std::io::Error::from)
                });
            }
        }
        cmd.arg("serve");
        if self.demo {
            cmd.arg("--demo");
        }
        let child = cmd
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn tsps serve");
        self.child = Some(child);
        self.wait_ready(&ready);
        self.wait_healthy();
    }

    /// Waits for `serve` to report its bound ports, and takes them.
    fn wait_ready(&mut self, ready: &Path) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(text) = fs::read_to_string(ready) {
                let v: serde_json::Value = serde_json::from_str(&text).expect("ready file is JSON");
                let port = |k: &str| -> u16 {
                    v[k].as_str()
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                        .map(|a| a.port())
                        .unwrap_or_else(|| panic!("ready file lacks {k}: {text}"))
                };
                self.sip_port = port("sip_udp");
                assert_eq!(
                    self.sip_port,
                    port("sip_tcp"),
                    "UDP and TCP share the SIP port"
                );
                self.http_port = port("http");
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "tsps serve exited during start-up ({status}):\n{}",
                        self.log_text()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "tsps did not report its ports within {START_DEADLINE:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_healthy(&mut self) {
        let url = format!("{}/healthz", self.http_url());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("http client");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "tsps serve exited during start-up ({status}):\n{}",
                        self.log_text()
                    );
                }
            }
            let ok = self.rt.block_on(async {
                matches!(client.get(&url).send().await, Ok(r) if r.status().is_success())
            });
            if ok {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "tsps did not answer {url} within {START_DEADLINE:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The tsps log so far (stdout and stderr of every serve of this test).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn store(&mut self) -> DynStore {
        if self.store.is_none() {
            let url = self.db_url.clone();
            let store = self
                .rt
                .block_on(tsps::store::open(&url, 2))
                .unwrap_or_else(|e| panic!("open store {url}: {e}"));
            self.store = Some(store);
        }
        self.store.clone().expect("store was just opened")
    }

    fn drop_store(&mut self) {
        if let Some(store) = self.store.take() {
            let _guard = self.rt.enter();
            drop(store);
        }
    }

    fn tenant_id(&mut self, domain: &str) -> tsps_actors::TenantId {
        let store = self.store();
        self.rt
            .block_on(store.find_tenant_by_domain(domain))
            .unwrap_or_else(|e| panic!("look up tenant {domain}: {e}"))
            .unwrap_or_else(|| panic!("tenant {domain} is not provisioned"))
            .id
    }

    /// Call detail records of the tenant with `domain`, newest first (at most 50).
    pub fn call_records(&mut self, domain: &str) -> Vec<CallRecord> {
        let tenant = self.tenant_id(domain);
        let store = self.store();
        self.rt
            .block_on(store.list_call_records(tenant, 50))
            .unwrap_or_else(|e| panic!("list call records of {domain}: {e}"))
    }

    /// Polls until the tenant has at least `n` CDRs (they are written when the call
    /// actor ends, a little after the last SIP message), then returns them newest first.
    /// Panics with the tsps log when `deadline` passes.
    pub fn wait_for_call_records(
        &mut self,
        domain: &str,
        n: usize,
        deadline: Duration,
    ) -> Vec<CallRecord> {
        let until = Instant::now() + deadline;
        loop {
            let records = self.call_records(domain);
            if records.len() >= n {
                return records;
            }
            if Instant::now() >= until {
                panic!(
                    "expected {n} call records for {domain} within {deadline:?}, found {}: {records:#?}",
                    records.len()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Registrations of the tenant with `domain` that have not expired.
    pub fn bindings(&mut self, domain: &str) -> Vec<Binding> {
        let tenant = self.tenant_id(domain);
        let store = self.store();
        self.rt
            .block_on(store.list_bindings(tenant, chrono::Utc::now()))
            .unwrap_or_else(|e| panic!("list bindings of {domain}: {e}"))
    }

    /// Runs a SIPp scenario to its end against this tsps.
    pub fn sipp(&self, sipp: Sipp) -> SippRun {
        self.spawn_sipp(sipp).join()
    }

    /// Starts a SIPp scenario in the background (a UAS waiting for a call); returns once
    /// SIPp listens on its port. Join it after the call.
    pub fn spawn_sipp(&self, sipp: Sipp) -> SippHandle {
        let n = self.sipp_runs.fetch_add(1, Ordering::SeqCst);
        let stem = sipp.scenario.trim_end_matches(".xml");
        let name = format!("sipp-{n:02}-{stem}");
        let base = self.dir.path().join(&name);
        let message_log = base.with_extension("messages.log");
        let error_log = base.with_extension("errors.log");
        let action_log = base.with_extension("actions.log");
        let output_path = base.with_extension("out");
        let scenario_path = sipp_scenario(&sipp.scenario);

        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", &SIPP_KILL_AFTER_SECS.to_string(), "sipp"]);
        cmd.arg("-sf").arg(&scenario_path);
        if !sipp.uas {
            let remote = sipp.remote.unwrap_or_else(|| self.sip_addr());
            cmd.arg(remote.to_string());
        }
        cmd.args(["-i", &sipp.local_ip.to_string(), "-bind_local"]);
        cmd.args(["-p", &sipp.local_port.to_string()]);
        cmd.args(["-t", sipp.transport]);
        cmd.args(["-m", &sipp.calls.to_string()]);
        cmd.args(["-nostdin", "-default_behaviors", "all"]);
        cmd.args([
            "-timeout",
            &format!("{SIPP_TIMEOUT_SECS}s"),
            "-timeout_error",
        ]);
        cmd.arg("-trace_err").arg("-error_file").arg(&error_log);
        cmd.arg("-trace_msg").arg("-message_file").arg(&message_log);
        cmd.arg("-trace_logs").arg("-log_file").arg(&action_log);
        if let Some((user, password)) = &sipp.auth {
            cmd.args(["-au", user, "-ap", password]);
            // The digest uri must equal the Request-URI of the challenged request.
            // A scenario whose Request-URI names another domain sets `target_domain`.
            let domain = sipp
                .keys
                .get("target_domain")
                .or_else(|| sipp.keys.get("domain"))
                .cloned()
                .unwrap_or_default();
            let uri = match sipp.keys.get("callee") {
                Some(callee) if sipp.auth_uri_is_callee => format!("{callee}@{domain}"),
                _ => domain,
            };
            cmd.args(["-auth_uri", &uri]);
        }
        for (k, v) in &sipp.keys {
            cmd.args(["-key", k, v]);
        }
        cmd.args(&sipp.extra_args);
        let out = fs::File::create(&output_path).expect("create sipp output file");
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone sipp output handle"))
            .stderr(out)
            .current_dir(self.dir.path());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run sipp ({e}): install sip-tester (scripts/test.sh does it)")
        });
        let handle = SippHandle {
            child,
            run: SippRun {
                name,
                status: None,
                message_log,
                error_log,
                action_log,
                output_path,
            },
            started: Instant::now(),
        };
        if sipp.uas {
            handle.wait_listening(sipp.local_ip, sipp.local_port, sipp.transport);
        }
        handle
    }

    /// Sends one raw UDP datagram to tsps from a fresh socket and returns the first
    /// datagram that comes back within `wait`, if any.
    pub fn udp_exchange(&self, message: &[u8], wait: Duration) -> Option<String> {
        self.udp_until(message, wait, |_| true)
    }

    /// Like [`Tsps::udp_exchange`], but skips provisional (1xx) responses: the first
    /// final response within `wait`, if any.
    pub fn udp_final_response(&self, message: &[u8], wait: Duration) -> Option<String> {
        self.udp_until(message, wait, |r| status_code(r).is_some_and(|c| c >= 200))
    }

    fn udp_until(
        &self,
        message: &[u8],
        wait: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let socket = UdpSocket::bind((DEVICE_IP, 0)).expect("bind udp socket");
        socket
            .send_to(message, self.sip_addr())
            .expect("send datagram");
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            socket
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            let (n, _) = socket.recv_from(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if done(&text) {
                return Some(text);
            }
        }
    }

    /// Sends `message` on a fresh TCP connection and returns what tsps answered until
    /// it closed the connection, a complete response arrived, or `wait` passed.
    pub fn tcp_exchange(&self, message: &[u8], wait: Duration) -> String {
        let mut stream = TcpStream::connect(self.sip_addr()).expect("connect to tsps over tcp");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        stream.set_write_timeout(Some(wait)).expect("write timeout");
        // tsps may answer and close before the whole oversized message is written: a
        // failed write is not the test's concern, the response is.
        let _ = stream.write_all(message);
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// One request to the REST API (`path` under `/api/v1`) with the test token.
    /// Returns the status and the JSON body (`Null` when the body is empty).
    pub fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}/api/v1{path}", self.http_url());
        let what = format!("{method} {url}");
        self.rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client");
            let mut req = client.request(method, &url).bearer_auth(API_TOKEN);
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
            let status = resp.status().as_u16();
            let text = resp
                .text()
                .await
                .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
            let json = if text.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or_else(|e| {
                    panic!("{what}: {status} with a non-JSON body ({e}): {text}")
                })
            };
            (status, json)
        })
    }

    /// Like [`Tsps::api`], and panics with the answer unless the status is 2xx.
    pub fn api_ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> serde_json::Value {
        let (status, json) = self.api(method.clone(), path, body);
        assert!(
            (200..300).contains(&status),
            "{method} /api/v1{path} with {body:?}: {status} {json}"
        );
        json
    }

    /// The node's metrics (`/api/v1/metrics` with the operator token), as text.
    pub fn metrics(&self) -> String {
        let url = format!("{}/api/v1/metrics", self.http_url());
        self.rt.block_on(async {
            let resp = reqwest::Client::new()
                .get(&url)
                .bearer_auth(API_TOKEN)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        })
    }

    /// Asserts that tsps still serves: an OPTIONS ping from SIPp gets 200.
    pub fn assert_alive(&self) {
        self.sipp(Sipp::new("options.xml"))
            .assert_success("OPTIONS ping after the test");
    }

    fn print_diagnostics(&self) {
        eprintln!("===== tsps log ({}) =====", self.log_path.display());
        eprintln!("{}", tail(&self.log_text(), 400));
        let mut files: Vec<_> = fs::read_dir(self.dir.path())
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.starts_with("sipp-") {
                let text = fs::read_to_string(&f).unwrap_or_default();
                if !text.trim().is_empty() {
                    eprintln!("===== {name} =====\n{}", tail(&text, 300));
                }
            }
        }
    }
}

impl Drop for Tsps {
    fn drop(&mut self) {
        self.stop();
        self.drop_store();
        if std::thread::panicking() {
            self.print_diagnostics();
        }
    }
}

/// One SIPp invocation: scenario file, local address, keys and credentials.
#[derive(Clone, Debug)]
pub struct Sipp {
    scenario: String,
    local_ip: Ipv4Addr,
    local_port: u16,
    transport: &'static str,
    uas: bool,
    remote: Option<SocketAddr>,
    keys: BTreeMap<String, String>,
    auth: Option<(String, String)>,
    auth_uri_is_callee: bool,
    calls: u32,
    extra_args: Vec<String>,
}

impl Sipp {
    /// A UAC run of `tests/sipp/<scenario>` from 127.0.0.1 on a free port. Every key the
    /// scenarios use gets a default so that SIPp never stops at an unknown keyword.
    pub fn new(scenario: &str) -> Sipp {
        let keys = [
            ("user", "1001"),
            ("domain", "a.test"),
            ("callee", "1002"),
            ("expires", "300"),
            ("did", "+41445550100"),
            ("caller_number", "+41790000001"),
            ("trunk_user", "tsps"),
            ("trunk_password", "trunkpw"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Sipp {
            scenario: scenario.to_string(),
            local_ip: DEVICE_IP,
            local_port: free_port(IpAddr::V4(DEVICE_IP), false),
            transport: "u1",
            uas: false,
            remote: None,
            keys,
            auth: None,
            auth_uri_is_callee: false,
            calls: 1,
            extra_args: Vec::new(),
        }
    }

    /// A UAS run (waits for requests, sends nothing first).
    pub fn uas(scenario: &str) -> Sipp {
        Sipp {
            uas: true,
            ..Sipp::new(scenario)
        }
    }

    /// Acts as the device `user` of tenant `domain` with this password (REGISTER and
    /// the 401/407 challenges; the digest uri is the domain).
    pub fn device(mut self, domain: &str, user: &str, password: &str) -> Sipp {
        self.keys.insert("domain".into(), domain.into());
        self.keys.insert("user".into(), user.into());
        self.auth = Some((user.into(), password.into()));
        self
    }

    /// Dials `callee` (extension or number); the digest uri becomes `callee@domain`,
    /// the Request-URI of the scenario's INVITE.
    pub fn calling(mut self, callee: &str) -> Sipp {
        self.keys.insert("callee".into(), callee.into());
        self.auth_uri_is_callee = true;
        self
    }

    pub fn key(mut self, key: &str, value: &str) -> Sipp {
        self.keys.insert(key.into(), value.into());
        self
    }

    pub fn local(mut self, ip: Ipv4Addr, port: u16) -> Sipp {
        self.local_ip = ip;
        self.local_port = port;
        self
    }

    pub fn port(mut self, port: u16) -> Sipp {
        self.local_port = port;
        self
    }

    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// Sends to `remote` instead of tsps's SIP address.
    pub fn remote(mut self, remote: SocketAddr) -> Sipp {
        self.remote = Some(remote);
        self
    }

    /// SIPp transport mode: `u1` (UDP, default) or `t1` (TCP).
    pub fn transport(mut self, mode: &'static str) -> Sipp {
        self.transport = mode;
        self
    }

    /// How many calls (scenario runs) SIPp makes or accepts before it exits (`-m`).
    pub fn calls(mut self, n: u32) -> Sipp {
        self.calls = n.max(1);
        self
    }

    pub fn arg(mut self, arg: &str) -> Sipp {
        self.extra_args.push(arg.into());
        self
    }
}

/// A SIPp process started with [`Tsps::spawn_sipp`].
pub struct SippHandle {
    child: Child,
    run: SippRun,
    started: Instant,
}

impl SippHandle {
    fn wait_listening(&self, ip: Ipv4Addr, port: u16, transport: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if is_listening(ip, port, transport.starts_with('t')) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "sipp {} did not bind {ip}:{port} within 5 s:\n{}",
            self.run.name,
            self.run.report()
        );
    }

    /// What this SIPp has sent and received so far (`-trace_msg`), while it runs.
    pub fn messages_so_far(&self) -> String {
        self.run.messages()
    }

    /// Polls the message log until it contains `needle` (e.g. `"CANCEL sip:"`); false
    /// when `deadline` passes first or SIPp has exited without it.
    pub fn wait_for_message(&mut self, needle: &str, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        loop {
            if self.messages_so_far().contains(needle) {
                return true;
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() >= until {
                // One last look: SIPp may have written it just before it exited.
                return self.messages_so_far().contains(needle);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for SIPp to end (bounded by SIPp's `-timeout` and the `timeout` wrapper).
    pub fn join(mut self) -> SippRun {
        let limit = Duration::from_secs(SIPP_KILL_AFTER_SECS + 10);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.run.status = Some(status);
                    return self.run.clone();
                }
                Ok(None) if self.started.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = self.child.kill();
                    self.run.status = self.child.wait().ok();
                    return self.run.clone();
                }
            }
        }
    }
}

impl Drop for SippHandle {
    fn drop(&mut self) {
        // A handle dropped without join (a test that panicked first): no orphan SIPp.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one SIPp run left behind.
#[derive(Clone, Debug)]
pub struct SippRun {
    pub name: String,
    /// SIPp's exit status: 0 means every expected message arrived in order.
    pub status: Option<ExitStatus>,
    message_log: PathBuf,
    error_log: PathBuf,
    action_log: PathBuf,
    output_path: PathBuf,
}

impl SippRun {
    pub fn success(&self) -> bool {
        self.status.map(|s| s.success()).unwrap_or(false)
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Every SIP message SIPp sent and received (`-trace_msg`).
    pub fn messages(&self) -> String {
        fs::read_to_string(&self.message_log).unwrap_or_default()
    }

    /// Unexpected messages, timeouts and failed checks (`-trace_err`).
    pub fn errors(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// The scenario's `<log>` actions (`-trace_logs`).
    pub fn actions(&self) -> String {
        fs::read_to_string(&self.action_log).unwrap_or_default()
    }

    pub fn report(&self) -> String {
        let output = fs::read_to_string(&self.output_path).unwrap_or_default();
        format!(
            "--- sipp {} exit {:?}\n--- errors:\n{}\n--- actions:\n{}\n--- messages:\n{}\n--- output (tail):\n{}",
            self.name,
            self.status,
            self.errors(),
            self.actions(),
            tail(&self.messages(), 400),
            tail(&output, 40),
        )
    }

    /// Panics with SIPp's logs unless SIPp exited 0.
    pub fn assert_success(&self, what: &str) {
        assert!(self.success(), "{what}: sipp failed\n{}", self.report());
    }
}

/// Whether some process has bound `ip:port` (UDP) or listens on it (TCP). Reads the
/// kernel's socket tables instead of probing with bind, which could steal the port
/// from the SIPp that is about to take it.
fn is_listening(ip: Ipv4Addr, port: u16, tcp: bool) -> bool {
    let table = if tcp {
        "/proc/net/tcp"
    } else {
        "/proc/net/udp"
    };
    let Ok(text) = fs::read_to_string(table) else {
        return false;
    };
    // The table prints the IPv4 address as the hex of its in-memory (network order)
    // u32 read as host-endian, then the port in hex: 127.0.0.1:5060 is 0100007F:13C4.
    let want = format!("{:08X}:{:04X}", u32::from_ne_bytes(ip.octets()), port);
    let any = format!("00000000:{port:04X}");
    text.lines().skip(1).any(|line| {
        let mut cols = line.split_whitespace();
        let local = cols.nth(1).unwrap_or("");
        let state = cols.nth(1).unwrap_or("");
        (local == want || local == any) && (!tcp || state == "0A")
    })
}

/// `tests/sipp/<name>`.
pub fn sipp_scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sipp")
        .join(name)
}

/// A port free on `ip` for UDP, and for TCP too when `both` (tsps listens on both with
/// one number). The OS picks it; another process may still take it before we use it,
/// which on a test machine is rare enough.
pub fn free_port(ip: IpAddr, both: bool) -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind((ip, 0)).expect("bind an ephemeral udp port");
        let port = udp.local_addr().expect("local addr").port();
        let tcp_ok = TcpListener::bind((ip, port)).is_ok();
        if !both || tcp_ok {
            return port;
        }
    }
    panic!("no free udp+tcp port on {ip} after 50 tries");
}

/// Proves that `device`, a registered phone of `extension` in `domain`, got nothing
/// from what the test did before: a chat message sent to `extension` now (from another
/// user of the tenant) must be the first datagram it receives. tsps sends on loopback
/// in order, so anything sent to the phone earlier would be ahead of it; no waiting for
/// a silence that only proves the test was not patient enough.
pub fn assert_quiet(tsps: &Tsps, device: &UdpSocket, domain: &str, extension: &str, what: &str) {
    let (tenant, users) = tenant_users(tsps, domain);
    let from = users
        .iter()
        .find(|(ext, _)| ext.as_str() != extension)
        .map(|(_, id)| id)
        .unwrap_or_else(|| panic!("{what}: another user of {domain} to send the proof"));
    let marker = format!("proof of quiet for {extension}");
    tsps.api_ok(
        reqwest::Method::POST,
        &format!("/tenants/{tenant}/users/{from}/messages"),
        Some(&serde_json::json!({ "to": extension, "text": marker })),
    );
    device
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set read timeout");
    let mut buf = vec![0u8; 65_536];
    let (n, _) = device
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("{what}: the proof message never came: {e}"));
    let first = String::from_utf8_lossy(&buf[..n]);
    assert!(
        first.starts_with("MESSAGE ") && first.contains(&marker),
        "{what}: expected nothing before the proof message, got:\n{first}"
    );
}

/// One sample's value in Prometheus text (`name{labels}` exactly as rendered).
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The status line of a SIP response, e.g. `SIP/2.0 400 Bad Request`.
pub fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

/// The status code of a SIP response, if it is one.
pub fn status_code(response: &str) -> Option<u16> {
    let mut parts = status_line(response).split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("SIP/2.0"), Some(code)) => code.parse().ok(),
        _ => None,
    }
}

/// The value of the first header `name` (case-insensitive) in a SIP message.
pub fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    headers(message, name).next()
}

/// The values of every header `name` (case-insensitive) in a SIP message, in order.
pub fn headers<'a>(message: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let name = name.to_string();
    message
        .lines()
        .take_while(|l| !l.is_empty())
        .skip(1)
        .filter_map(move |l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(&name).then(|| v.trim())
        })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// A fresh PostgreSQL database on 127.0.0.1:5432 for one test, dropped afterwards.
pub struct PgDatabase {
    name: String,
    admin_url: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        let admin_url = std::env::var("TSPS_TEST_PG_ADMIN_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("tsps_it_{}", uuid::Uuid::new_v4().simple());
        run_pg(&admin_url, &format!("CREATE DATABASE {name}"));
        PgDatabase { name, admin_url }
    }

    pub fn url(&self) -> String {
        let base = self
            .admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&self.admin_url);
        format!("{base}/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // FORCE: the pool of a killed tsps may still hold connections for a moment.
        run_pg(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn run_pg(admin_url: &str, sql: &str) {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("connect to postgres at {admin_url}: {e}"));
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
    });
}

/// Tenant `a.test` with 1001 (Alice), 1002 (Bob) and 1003 (Carol), one device each with
/// the password `secret<ext>`, and nothing else (see [`pbx::Pbx`]).
pub const THREE_USERS_YAML: &str = r#"tenants:
  - domain: a.test
    name: Tenant A
    time_zone: Europe/Zurich
    users:
      - extension: "1001"
        display_name: Alice
        devices:
          - sip_username: "1001"
            password: secret1001
      - extension: "1002"
        display_name: Bob
        devices:
          - sip_username: "1002"
            password: secret1002
      - extension: "1003"
        display_name: Carol
        devices:
          - sip_username: "1003"
            password: secret1003
"#;

/// By the operator's API: the id of the tenant of `domain` and its users' ids by
/// extension.
pub fn tenant_users(tsps: &Tsps, domain: &str) -> (String, BTreeMap<String, String>) {
    let tenants = tsps.api_ok(reqwest::Method::GET, "/tenants", None);
    let tenant = tenants
        .as_array()
        .and_then(|all| all.iter().find(|t| t["domain"] == domain))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_else(|| panic!("tenant {domain} in {tenants}"))
        .to_string();
    let path = format!("/tenants/{tenant}/users");
    let listed = tsps.api_ok(reqwest::Method::GET, &path, None);
    let users = listed
        .as_array()
        .unwrap_or_else(|| panic!("a list of users: {listed}"))
        .iter()
        .map(|u| {
            let ext = u["extension"].as_str().expect("extension").to_string();
            (ext, u["id"].as_str().expect("user id").to_string())
        })
        .collect();
    (tenant, users)
}

/// The provisioning document most tests use: tenant `a.test` with 1001 and 1002, a DID
/// for 1001 and a carrier trunk at `127.0.0.2:<trunk_port>` that challenges tsps.
pub fn tenant_a_yaml(trunk_port: u16) -> String {
    format!(
        r#"tenants:
  - domain: a.test
    name: Tenant A
    time_zone: Europe/Zurich
    users:
      - extension: "1001"
        display_name: Alice
        devices:
          - sip_username: "1001"
            password: secret1001
      - extension: "1002"
        display_name: Bob
        devices:
          - sip_username: "1002"
            password: secret1002
    dids:
      - number: "+41445550100"
        extension: "1001"
    trunks:
      - name: carrier
        peer_host: 127.0.0.2
        peer_port: {trunk_port}
        transport: udp
        username: tsps
        password: trunkpw
        inbound_sources: ["127.0.0.2"]
"#
    )
}

/// Registers `user` of `domain` from 127.0.0.1:`port` and asserts the 200, so that a
/// UAS started later on `port` receives the calls for that device.
pub fn register(tsps: &Tsps, domain: &str, user: &str, password: &str, port: u16) {
    tsps.sipp(
        Sipp::new("register.xml")
            .device(domain, user, password)
            .port(port),
    )
    .assert_success(&format!("register {user}@{domain}"));
}
