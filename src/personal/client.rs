//! Drives a [`Registration`] over a datagram [`Link`]: renders each REGISTER, runs it as
//! an RFC 3261 §17.1.2 non-INVITE client transaction (retransmissions, Timer F), feeds
//! responses, timeouts and the refresh/retry timer back, and publishes the status.
//! Time is tokio time, so the tests walk hours of refreshes with a paused clock.

use super::register::{self, Input, Output, Registration, Reply, Status};
use crate::sip::build;
use crate::sip::headers as h;
use crate::sip::transaction::{Action, Actions, Kind, Timer, Transaction};
use bytes::Bytes;
use rsipstack::sip::SipMessage;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Largest response read; REGISTER responses are small.
const MAX_MESSAGE: usize = 65_535;

/// Where REGISTERs go and responses come from.
pub trait Link: Send {
    fn send(&mut self, bytes: Bytes) -> impl Future<Output = ()> + Send;
    /// The next datagram; None when the link is gone.
    fn recv(&mut self) -> impl Future<Output = Option<Bytes>> + Send;
}

/// A UDP socket of its own, talking to the registrar only.
pub struct UdpLink {
    sock: tokio::net::UdpSocket,
    registrar: SocketAddr,
    buf: Vec<u8>,
}

impl UdpLink {
    pub async fn bind(local: SocketAddr, registrar: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            sock: tokio::net::UdpSocket::bind(local).await?,
            registrar,
            buf: vec![0; MAX_MESSAGE],
        })
    }

    pub fn local_port(&self) -> u16 {
        self.sock.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

impl Link for UdpLink {
    async fn send(&mut self, bytes: Bytes) {
        if let Err(e) = self.sock.send_to(&bytes, self.registrar).await {
            // A lost request is retransmitted by its transaction, then times out.
            debug!(error = %e, registrar = %self.registrar, "cannot send REGISTER");
        }
    }

    async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.sock.recv_from(&mut self.buf).await {
                // Only the registrar answers our REGISTERs.
                Ok((n, from)) if from.ip() == self.registrar.ip() => {
                    return Some(Bytes::copy_from_slice(&self.buf[..n]))
                }
                Ok((_, from)) => debug!(%from, "datagram from elsewhere ignored"),
                // ICMP port unreachable and the like: the transaction times out.
                Err(e) => debug!(error = %e, "udp receive error"),
            }
        }
    }
}

/// The REGISTER transaction in flight.
struct Pending {
    branch: String,
    tx: Transaction,
    timers: Vec<(Instant, Timer)>,
}

/// Inputs the driver queues for the machine (owned versions of [`Input`]).
enum Event {
    Start,
    Response(Reply),
    Timeout,
    Timer,
    Stop,
}

pub struct Client<L> {
    link: L,
    reg: Registration,
    /// `host:port` of our Via (responses come back there; `rport` covers NAT).
    via_host: String,
    pending: Option<Pending>,
    timer: Option<Instant>,
    status: watch::Sender<Status>,
}

impl<L: Link> Client<L> {
    pub fn new(link: L, reg: Registration, via_host: String) -> (Self, watch::Receiver<Status>) {
        let (status, rx) = watch::channel(Status::Idle);
        let client = Self {
            link,
            reg,
            via_host,
            pending: None,
            timer: None,
            status,
        };
        (client, rx)
    }

    /// Registers until `cancel` fires, then removes the binding, waiting at most
    /// `unregister_budget` for the registrar.
    pub async fn run(mut self, cancel: CancellationToken, unregister_budget: Duration) {
        self.feed(Event::Start).await;
        let mut stop_by: Option<Instant> = None;
        while !self.reg.is_stopped() {
            let next = self.next_deadline(stop_by);
            tokio::select! {
                _ = cancel.cancelled(), if stop_by.is_none() => {
                    stop_by = Some(Instant::now() + unregister_budget);
                    self.feed(Event::Stop).await;
                }
                got = self.link.recv() => match got {
                    Some(bytes) => self.on_bytes(&bytes).await,
                    None => {
                        warn!("registration link closed");
                        return;
                    }
                },
                _ = sleep_until(next) => self.on_deadline().await,
            }
            if stop_by.is_some_and(|t| Instant::now() >= t) {
                warn!("upstream did not confirm the unregistration in time");
                let _ = self.status.send(Status::Stopped { removed: false });
                return;
            }
        }
    }

    fn next_deadline(&self, stop_by: Option<Instant>) -> Option<Instant> {
        let tx = self
            .pending
            .iter()
            .flat_map(|p| p.timers.iter().map(|(at, _)| *at));
        tx.chain(self.timer).chain(stop_by).min()
    }

    async fn on_bytes(&mut self, bytes: &[u8]) {
        let Ok(SipMessage::Response(resp)) = crate::sip::message::parse(bytes, MAX_MESSAGE) else {
            return;
        };
        if h::first(&resp.headers, "Call-ID") != Some(self.reg.call_id()) {
            return;
        }
        let branch = h::first(&resp.headers, "Via").and_then(h::via_branch);
        let Some(p) = self
            .pending
            .as_mut()
            .filter(|p| Some(p.branch.as_str()) == branch)
        else {
            return; // a late answer to a REGISTER we have given up on
        };
        let code = resp.status_code.code();
        let actions = p.tx.on_response(code, Bytes::new);
        let delivered = self.run_actions(actions).await;
        if delivered.is_empty() {
            return;
        }
        match Reply::from_response(&resp, &self.reg.settings().contact) {
            Some(reply) => self.feed(Event::Response(reply)).await,
            None => debug!(code, "response without a REGISTER CSeq ignored"),
        }
    }

    async fn on_deadline(&mut self) {
        let now = Instant::now();
        if self.timer.is_some_and(|t| t <= now) {
            self.timer = None;
            self.feed(Event::Timer).await;
        }
        let due: Vec<Timer> = match self.pending.as_mut() {
            Some(p) => {
                let due = p
                    .timers
                    .iter()
                    .filter(|(at, _)| *at <= now)
                    .map(|(_, t)| *t)
                    .collect();
                p.timers.retain(|(at, _)| *at > now);
                due
            }
            None => Vec::new(),
        };
        for timer in due {
            let Some(p) = self.pending.as_mut() else {
                break;
            };
            let actions = p.tx.on_timer(timer);
            let timed_out = self.run_actions(actions).await;
            if timed_out.iter().any(|a| matches!(a, Action::Timeout)) {
                self.feed(Event::Timeout).await;
            }
        }
    }

    /// Runs transmissions, timers and termination; returns the events for the machine
    /// (Deliver, Timeout).
    async fn run_actions(&mut self, actions: Actions) -> Vec<Action> {
        let mut rest = Vec::new();
        let now = Instant::now();
        for a in actions {
            match a {
                Action::Transmit(b) => self.link.send(b).await,
                Action::Schedule(t, d) => {
                    if let Some(p) = self.pending.as_mut() {
                        p.timers.push((now + d, t));
                    }
                }
                Action::Terminated => self.pending = None,
                other => rest.push(other),
            }
        }
        rest
    }

    /// Hands one event to the machine and carries out what it says, until quiet.
    async fn feed(&mut self, first: Event) {
        let mut queue = VecDeque::from([first]);
        while let Some(event) = queue.pop_front() {
            let outputs = match &event {
                Event::Start => self.reg.handle(Input::Start),
                Event::Response(r) => self.reg.handle(Input::Response(r)),
                Event::Timeout => self.reg.handle(Input::Timeout),
                Event::Timer => self.reg.handle(Input::Timer),
                Event::Stop => self.reg.handle(Input::Stop),
            };
            for out in outputs {
                match out {
                    Output::Send(reg) => self.send(&reg).await,
                    Output::Arm(d) => self.timer = Some(Instant::now() + d),
                    Output::Disarm => self.timer = None,
                    Output::Status(s) => self.publish(s),
                }
            }
        }
    }

    /// Starts a client transaction for `reg` (a new one replaces the one in flight).
    async fn send(&mut self, reg: &register::Register) {
        let branch = build::branch();
        let via = format!("SIP/2.0/UDP {};branch={branch};rport", self.via_host);
        let bytes = register::render(&self.reg, reg, &via);
        let (tx, actions) = Transaction::client(Kind::NonInviteClient, Bytes::from(bytes), false);
        self.pending = Some(Pending {
            branch,
            tx,
            timers: Vec::new(),
        });
        self.run_actions(actions).await;
    }

    fn publish(&self, s: Status) {
        match &s {
            Status::Registered { expires } => info!(expires, "registered upstream"),
            Status::Failed { error, retry_in } => {
                warn!(%error, retry_in_secs = retry_in.as_secs(), "upstream registration failed")
            }
            Status::Stopped { removed } => info!(removed, "upstream registration ended"),
            Status::Idle => {}
        }
        let _ = self.status.send(s);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::personal::register::Settings;
    use crate::personal::PersonalError;
    use rsipstack::sip::Request;
    use tokio::sync::mpsc;

    /// The test plays the registrar at the other end of these channels.
    struct ChannelLink {
        out: mpsc::UnboundedSender<Bytes>,
        inb: mpsc::UnboundedReceiver<Bytes>,
    }

    impl Link for ChannelLink {
        async fn send(&mut self, bytes: Bytes) {
            let _ = self.out.send(bytes);
        }
        async fn recv(&mut self) -> Option<Bytes> {
            self.inb.recv().await
        }
    }

    struct Registrar {
        requests: mpsc::UnboundedReceiver<Bytes>,
        replies: mpsc::UnboundedSender<Bytes>,
        status: watch::Receiver<Status>,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(expires: u32) -> Registrar {
        let (out, requests) = mpsc::unbounded_channel();
        let (replies, inb) = mpsc::unbounded_channel();
        let settings = Settings {
            registrar_uri: "sip:a.test".into(),
            aor: "sip:1002p@a.test".into(),
            contact: "sip:1002@127.0.0.1:5070".into(),
            username: "1002p".into(),
            password: Secret("secret1002p".into()),
            expires,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(1800),
        };
        let reg = Registration::new(settings, "reg-1".into(), "t".into(), 7);
        let (client, status) = Client::new(ChannelLink { out, inb }, reg, "127.0.0.1:40000".into());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(client.run(cancel.clone(), Duration::from_secs(4)));
        Registrar {
            requests,
            replies,
            status,
            cancel,
            task,
        }
    }

    impl Registrar {
        /// The next REGISTER, within `within` of (paused) time.
        async fn request(&mut self, within: Duration) -> Request {
            let bytes = tokio::time::timeout(within, self.requests.recv())
                .await
                .unwrap_or_else(|_| panic!("a REGISTER within {within:?}"))
                .expect("the client is running");
            match crate::sip::message::parse(&bytes, MAX_MESSAGE).unwrap() {
                SipMessage::Request(r) => r,
                other => panic!("a request: {other:?}"),
            }
        }

        async fn nothing_for(&mut self, d: Duration) {
            if let Ok(Some(b)) = tokio::time::timeout(d, self.requests.recv()).await {
                panic!(
                    "nothing sent for {d:?}, got {}",
                    String::from_utf8_lossy(&b)
                );
            }
        }

        fn reply(&self, req: &Request, code: u16, extra: &[(&str, &str)]) {
            let bytes = build::response(req, None, code, Some("r"), extra, None);
            self.replies.send(Bytes::from(bytes)).unwrap();
        }

        fn challenge(&self, req: &Request) {
            let c = "Digest realm=\"a.test\", nonce=\"abc\", algorithm=MD5, qop=\"auth\"";
            self.reply(req, 401, &[("WWW-Authenticate", c)]);
        }

        async fn status_becomes(&mut self, want: impl Fn(&Status) -> bool) -> Status {
            let s =
                tokio::time::timeout(Duration::from_secs(3600), self.status.wait_for(|s| want(s)))
                    .await
                    .expect("the status changes in time")
                    .expect("the client is running");
            s.clone()
        }
    }

    fn header<'a>(r: &'a Request, name: &str) -> &'a str {
        h::first(&r.headers, name).unwrap_or("")
    }

    fn cseq(r: &Request) -> u32 {
        h::cseq(header(r, "CSeq")).map(|c| c.0).unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn registers_refreshes_before_expiry_and_unregisters() {
        let mut up = start(120);
        let first = up.request(Duration::from_millis(10)).await;
        assert_eq!(header(&first, "Expires"), "120");
        assert!(header(&first, "Authorization").is_empty());
        up.challenge(&first);
        let second = up.request(Duration::from_millis(10)).await;
        assert!(header(&second, "Authorization").contains("username=\"1002p\""));
        assert_eq!(cseq(&second), cseq(&first) + 1);
        up.reply(
            &second,
            200,
            &[("Contact", "<sip:1002@127.0.0.1:5070>;expires=120")],
        );
        up.status_becomes(|s| *s == Status::Registered { expires: 120 })
            .await;

        // The margin on 120 s is 12 s: nothing until 108 s, then a refresh.
        let registered_at = Instant::now();
        up.nothing_for(Duration::from_secs(107)).await;
        let refresh = up.request(Duration::from_secs(2)).await;
        let after = registered_at.elapsed();
        assert!(
            (Duration::from_secs(107)..=Duration::from_secs(109)).contains(&after),
            "refreshed after {after:?}"
        );
        assert_eq!(
            header(&refresh, "Call-ID"),
            "reg-1",
            "one Call-ID throughout"
        );
        up.challenge(&refresh);
        let refresh = up.request(Duration::from_millis(10)).await;
        up.reply(
            &refresh,
            200,
            &[("Contact", "<sip:1002@127.0.0.1:5070>;expires=60")],
        );
        up.status_becomes(|s| *s == Status::Registered { expires: 60 })
            .await;

        up.cancel.cancel();
        let bye = up.request(Duration::from_millis(10)).await;
        assert_eq!(header(&bye, "Expires"), "0");
        assert!(header(&bye, "Contact").contains("sip:1002@127.0.0.1:5070"));
        up.challenge(&bye);
        let bye = up.request(Duration::from_millis(10)).await;
        up.reply(&bye, 200, &[]);
        up.task.await.unwrap();
        assert_eq!(*up.status.borrow(), Status::Stopped { removed: true });
    }

    #[tokio::test(start_paused = true)]
    async fn retransmits_then_times_out_and_backs_off() {
        let mut up = start(600);
        let first = up.request(Duration::from_millis(10)).await;
        // Timer E: the same request again after T1, 2·T1, 4·T1 ...
        let again = up.request(Duration::from_millis(600)).await;
        assert_eq!(cseq(&again), cseq(&first));
        assert_eq!(header(&again, "Via"), header(&first, "Via"));
        // Timer F (32 s) ends the transaction; the client waits 15-30 s to retry.
        let failed = up
            .status_becomes(|s| {
                matches!(
                    s,
                    Status::Failed {
                        error: PersonalError::Timeout,
                        ..
                    }
                )
            })
            .await;
        let Status::Failed { retry_in, .. } = failed else {
            unreachable!()
        };
        assert!(
            (Duration::from_secs(15)..=Duration::from_secs(30)).contains(&retry_in),
            "{retry_in:?}"
        );
        while up.requests.try_recv().is_ok() {}
        let failed_at = Instant::now();
        let retry = loop {
            let r = up.request(Duration::from_secs(31)).await;
            if cseq(&r) != cseq(&first) {
                break r;
            }
        };
        let waited = failed_at.elapsed();
        assert!(
            waited + Duration::from_millis(10) >= retry_in,
            "{waited:?} < {retry_in:?}"
        );
        // A 403 now: the next wait is longer (30-60 s).
        up.reply(&retry, 403, &[]);
        let failed = up
            .status_becomes(|s| {
                matches!(
                    s,
                    Status::Failed {
                        error: PersonalError::Refused(403),
                        ..
                    }
                )
            })
            .await;
        let Status::Failed { retry_in, .. } = failed else {
            unreachable!()
        };
        assert!(
            (Duration::from_secs(30)..=Duration::from_secs(60)).contains(&retry_in),
            "{retry_in:?}"
        );
        up.cancel.cancel();
        let bye = up.request(Duration::from_secs(1)).await;
        assert_eq!(header(&bye, "Expires"), "0");
        // Nobody answers: shutdown is not held longer than the budget.
        tokio::time::timeout(Duration::from_secs(5), &mut up.task)
            .await
            .expect("the client gives up within its budget")
            .unwrap();
        assert_eq!(*up.status.borrow(), Status::Stopped { removed: false });
    }

    #[tokio::test(start_paused = true)]
    async fn interval_too_brief_is_followed_with_min_expires() {
        let mut up = start(60);
        let first = up.request(Duration::from_millis(10)).await;
        up.reply(&first, 423, &[("Min-Expires", "300")]);
        let again = up.request(Duration::from_millis(10)).await;
        assert_eq!(header(&again, "Expires"), "300");
        up.reply(&again, 200, &[("Expires", "300")]);
        up.status_becomes(|s| *s == Status::Registered { expires: 300 })
            .await;
        // Refresh at 300 − 30 s.
        up.nothing_for(Duration::from_secs(269)).await;
        let refresh = up.request(Duration::from_secs(2)).await;
        assert_eq!(header(&refresh, "Expires"), "300");
    }

    #[tokio::test(start_paused = true)]
    async fn garbage_and_strangers_do_not_disturb() {
        let mut up = start(600);
        let first = up.request(Duration::from_millis(10)).await;
        up.replies
            .send(Bytes::from_static(b"\x00\xffnot sip"))
            .unwrap();
        up.replies
            .send(Bytes::from_static(
                b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-other\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: reg-1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
            ))
            .unwrap();
        up.reply(&first, 200, &[("Expires", "600")]);
        up.status_becomes(|s| *s == Status::Registered { expires: 600 })
            .await;
    }
}
