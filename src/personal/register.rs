//! The registration client toward the upstream tenant (RFC 3261 §10.2), sans-IO.
//!
//! A personal tsps is a device of its user at the upstream tenant: it REGISTERs its own
//! contact there, answers the digest challenge (MD5 or SHA-256), refreshes the binding
//! before it expires, retries after a failure with exponential backoff and jitter
//! (RFC 5626 §4.5), and removes the binding when it stops. [`Registration`] takes
//! [`Input`]s (a response, a transaction timeout, its one timer) and returns
//! [`Output`]s (a REGISTER to send, the timer to arm, a status change); the driver
//! ([`super::client`]) owns the socket, the transactions and the clock.
//!
//! ```text
//!  Idle ──Start──▶ Registering ──2xx──▶ Registered ──timer: expiry − margin──▶ Registering
//!                   │ ▲  401/407: answered (once, again only when stale)
//!                   │ └─ 423: again with Min-Expires
//!                   └── failure (3xx-6xx, no answer) ──▶ Backoff ──timer──▶ Registering
//!  Registering | Registered | Backoff ──Stop──▶ Unregistering (Expires: 0) ──▶ Stopped
//! ```

use super::PersonalError;
use crate::config::Secret;
use crate::sip::build::{self, RequestSpec};
use crate::sip::digest;
use crate::sip::headers as h;
use rsipstack::sip::Response;
use std::time::Duration;

/// Registration intervals above this in a 423's Min-Expires are not followed: a
/// registrar asking for more than a day is misconfigured or hostile.
const MAX_MIN_EXPIRES: u32 = 86_400;

/// What the client registers, where, and how it retries. Fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Request-URI of the REGISTER: `sip:<upstream domain>`.
    pub registrar_uri: String,
    /// Address of record (From and To): `sip:<username>@<upstream domain>`.
    pub aor: String,
    /// The contact registered, e.g. `sip:1002@192.0.2.7:5060`: the upstream sends the
    /// user's calls there.
    pub contact: String,
    pub username: String,
    pub password: Secret,
    /// Interval asked for, in seconds.
    pub expires: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

/// One REGISTER to send (the driver renders it with [`render`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    pub cseq: u32,
    /// 0 removes the binding.
    pub expires: u32,
    /// `Authorization` or `Proxy-Authorization`, and its value.
    pub authorization: Option<(&'static str, String)>,
}

/// What the client needs of a response to its REGISTER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub cseq: u32,
    /// WWW-Authenticate (401) or Proxy-Authenticate (407) values.
    pub challenges: Vec<String>,
    pub min_expires: Option<u32>,
    pub retry_after: Option<u32>,
    /// Seconds granted to our contact: its `expires` parameter in the 2xx, else the
    /// Expires header.
    pub granted: Option<u32>,
}

impl Reply {
    /// Reads a response; None when it has no usable CSeq (it cannot be ours).
    pub fn from_response(resp: &Response, contact: &str) -> Option<Reply> {
        let (cseq, method) = h::first(&resp.headers, "CSeq").and_then(h::cseq)?;
        if !method.eq_ignore_ascii_case("REGISTER") {
            return None;
        }
        let code = resp.status_code.code();
        let number = |name: &str| {
            h::first(&resp.headers, name)
                .map(str::trim)
                .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|v| v.parse::<u32>().ok())
        };
        let challenge_header = if code == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let ours = h::all(&resp.headers, "Contact")
            .into_iter()
            .find(|c| h::uri(c).eq_ignore_ascii_case(contact))
            .and_then(|c| h::param(c, "expires"))
            .and_then(|v| v.trim().parse::<u32>().ok());
        Some(Reply {
            code,
            cseq,
            challenges: h::each(&resp.headers, challenge_header)
                .into_iter()
                .map(str::to_string)
                .collect(),
            min_expires: number("Min-Expires"),
            retry_after: number("Retry-After"),
            granted: ours.or_else(|| number("Expires")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Register now.
    Start,
    /// A final (or provisional) response to the REGISTER in flight.
    Response(&'a Reply),
    /// The REGISTER in flight got no final response (Timer F).
    Timeout,
    /// The timer last armed fired.
    Timer,
    /// Shutting down: remove the binding.
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(Register),
    /// (Re)arm the one timer: [`Input::Timer`] after this long.
    Arm(Duration),
    /// The timer must not fire.
    Disarm,
    Status(Status),
}

/// The registration as an operator sees it (logs, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Idle,
    /// Registered for this many seconds from the last 2xx.
    Registered {
        expires: u32,
    },
    /// The last attempt failed; the next one is `retry_in` away.
    Failed {
        error: PersonalError,
        retry_in: Duration,
    },
    /// Stopped; `removed` when the registrar confirmed the binding's removal.
    Stopped {
        removed: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// A REGISTER is in flight; `answered` counts the challenges answered for it.
    Registering {
        cseq: u32,
        answered: u8,
    },
    Registered,
    Backoff,
    Unregistering {
        cseq: u32,
        answered: u8,
    },
    Stopped,
}

pub struct Registration {
    settings: Settings,
    state: State,
    call_id: String,
    from_tag: String,
    /// RFC 3261 §10.2.4: one Call-ID for every REGISTER, CSeq increasing.
    cseq: u32,
    /// The interval asked for (raised by a 423).
    expires: u32,
    failures: u32,
    rng: u64,
}

impl Registration {
    /// `seed` drives the backoff jitter and the digest cnonces (any non-zero value).
    pub fn new(settings: Settings, call_id: String, from_tag: String, seed: u64) -> Self {
        Self {
            expires: settings.expires,
            settings,
            state: State::Idle,
            call_id,
            from_tag,
            cseq: 0,
            failures: 0,
            rng: seed | 1,
        }
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// The one transition function: a match on (state, input).
    pub fn handle(&mut self, input: Input<'_>) -> Vec<Output> {
        let mut out = Vec::new();
        match (self.state, input) {
            (State::Idle | State::Backoff | State::Registered, Input::Start | Input::Timer) => {
                self.send(self.expires, None, &mut out, false);
            }
            (State::Registering { cseq, answered }, Input::Response(r)) if r.cseq == cseq => {
                self.on_register_reply(r, answered, &mut out);
            }
            (State::Registering { .. }, Input::Timeout) => {
                self.fail(PersonalError::Timeout, None, &mut out)
            }
            (State::Unregistering { cseq, answered }, Input::Response(r)) if r.cseq == cseq => {
                match r.code {
                    100..=199 => {}
                    200..=299 => self.stop(true, &mut out),
                    401 | 407 if self.may_answer(r, answered) => match self.answer(r) {
                        Ok(auth) => self.send(0, Some(auth), &mut out, true),
                        Err(_) => self.stop(false, &mut out),
                    },
                    _ => self.stop(false, &mut out),
                }
            }
            (State::Unregistering { .. }, Input::Timeout) => self.stop(false, &mut out),
            (State::Registering { .. } | State::Registered | State::Backoff, Input::Stop) => {
                out.push(Output::Disarm);
                self.send(0, None, &mut out, false);
            }
            (State::Idle, Input::Stop) => self.stop(false, &mut out),
            // Stale responses (an older CSeq), a timer that lost its race, a Start or
            // Stop repeated: nothing to do.
            _ => {}
        }
        out
    }

    fn on_register_reply(&mut self, r: &Reply, answered: u8, out: &mut Vec<Output>) {
        match r.code {
            100..=199 => {}
            200..=299 => match r.granted.unwrap_or(self.expires) {
                0 => self.fail(PersonalError::NotGranted, None, out),
                granted => {
                    self.state = State::Registered;
                    self.failures = 0;
                    out.push(Output::Arm(refresh_after(granted)));
                    out.push(Output::Status(Status::Registered { expires: granted }));
                }
            },
            401 | 407 if self.may_answer(r, answered) => match self.answer(r) {
                Ok(auth) => self.send(self.expires, Some(auth), out, true),
                Err(e) => self.fail(e, None, out),
            },
            401 | 407 => self.fail(PersonalError::Unauthorized, None, out),
            423 => match r.min_expires {
                Some(min) if min > self.expires && min <= MAX_MIN_EXPIRES => {
                    self.expires = min;
                    self.send(min, None, out, false);
                }
                other => self.fail(
                    PersonalError::IntervalTooBrief(other.unwrap_or(0)),
                    None,
                    out,
                ),
            },
            code => self.fail(PersonalError::Refused(code), r.retry_after, out),
        }
    }

    /// A challenge is answered once per REGISTER, and once more when the registrar
    /// says our nonce was only stale (RFC 3261 §22.4, RFC 8760 §2.5).
    fn may_answer(&self, r: &Reply, answered: u8) -> bool {
        answered == 0
            || (answered == 1
                && r.challenges
                    .iter()
                    .filter_map(|c| digest::parse_challenge(c).ok())
                    .any(|c| c.stale))
    }

    /// The Authorization for the strongest challenge we can answer.
    fn answer(&mut self, r: &Reply) -> Result<(&'static str, String), PersonalError> {
        let pick = r
            .challenges
            .iter()
            .find(|c| c.to_ascii_uppercase().contains("SHA-256"))
            .or(r.challenges.first())
            .ok_or(PersonalError::Unauthorized)?;
        let cnonce = format!("{:016x}", self.next_random());
        let value = digest::answer_challenge(
            pick,
            "REGISTER",
            &self.settings.registrar_uri,
            &self.settings.username,
            self.settings.password.expose(),
            &cnonce,
            1,
        )
        .map_err(PersonalError::Challenge)?;
        let name = if r.code == 407 {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        Ok((name, value))
    }

    /// Sends a REGISTER with a new CSeq; `challenged` counts it as one more answer to
    /// a challenge of the same attempt.
    fn send(
        &mut self,
        expires: u32,
        authorization: Option<(&'static str, String)>,
        out: &mut Vec<Output>,
        challenged: bool,
    ) {
        self.cseq += 1;
        let answered = match self.state {
            State::Registering { answered, .. } | State::Unregistering { answered, .. }
                if challenged =>
            {
                answered.saturating_add(1)
            }
            _ => 0,
        };
        let cseq = self.cseq;
        self.state = if expires == 0 {
            State::Unregistering { cseq, answered }
        } else {
            State::Registering { cseq, answered }
        };
        out.push(Output::Send(Register {
            cseq,
            expires,
            authorization,
        }));
    }

    fn fail(&mut self, error: PersonalError, retry_after: Option<u32>, out: &mut Vec<Output>) {
        self.failures = self.failures.saturating_add(1);
        let wait = match retry_after {
            Some(s) if s > 0 => Duration::from_secs(s as u64).min(self.settings.retry_max),
            _ => self.backoff(),
        };
        self.state = State::Backoff;
        out.push(Output::Arm(wait));
        out.push(Output::Status(Status::Failed {
            error,
            retry_in: wait,
        }));
    }

    fn stop(&mut self, removed: bool, out: &mut Vec<Output>) {
        self.state = State::Stopped;
        out.push(Output::Disarm);
        out.push(Output::Status(Status::Stopped { removed }));
    }

    /// RFC 5626 §4.5: min(max, base · 2^(failures−1)), then a random 50–100 % of it so
    /// that many clients cut off together do not come back together.
    fn backoff(&mut self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(20);
        let nominal = self
            .settings
            .retry_base
            .saturating_mul(1u32 << exp)
            .min(self.settings.retry_max);
        let fraction = 0.5 + (self.next_random() % 1000) as f64 / 2000.0;
        nominal.mul_f64(fraction)
    }

    /// xorshift64: enough for jitter and cnonces, and reproducible in tests.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// When to refresh a binding granted for `granted` seconds: a tenth before it ends
/// (at least 5 s, at most a minute, never more than half the interval).
pub fn refresh_after(granted: u32) -> Duration {
    let margin = (granted / 10).clamp(5, 60).min(granted / 2);
    Duration::from_secs((granted - margin) as u64)
}

/// The bytes of `reg` for the registration `r`, with this top Via.
pub fn render(r: &Registration, reg: &Register, via: &str) -> Vec<u8> {
    let s = &r.settings;
    let from = format!("<{}>;tag={}", s.aor, r.from_tag);
    let to = format!("<{}>", s.aor);
    let contact = format!("<{}>", s.contact);
    let mut extra = vec![("Expires", reg.expires.to_string())];
    if let Some((name, value)) = &reg.authorization {
        extra.push((name, value.clone()));
    }
    build::request(&RequestSpec {
        method: "REGISTER",
        uri: &s.registrar_uri,
        via,
        from: &from,
        to: &to,
        call_id: &r.call_id,
        cseq: reg.cseq,
        max_forwards: 70,
        contact: Some(&contact),
        routes: &[],
        extra: &extra,
        body: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTACT: &str = "sip:1002@192.0.2.7:5060";

    fn settings() -> Settings {
        Settings {
            registrar_uri: "sip:a.test".into(),
            aor: "sip:1002p@a.test".into(),
            contact: CONTACT.into(),
            username: "1002p".into(),
            password: Secret("secret1002p".into()),
            expires: 600,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(1800),
        }
    }

    fn client() -> Registration {
        Registration::new(settings(), "reg-1".into(), "tag1".into(), 42)
    }

    fn sent(out: &[Output]) -> Register {
        out.iter()
            .find_map(|o| match o {
                Output::Send(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("a REGISTER is sent: {out:?}"))
    }

    fn armed(out: &[Output]) -> Duration {
        out.iter()
            .find_map(|o| match o {
                Output::Arm(d) => Some(*d),
                _ => None,
            })
            .unwrap_or_else(|| panic!("the timer is armed: {out:?}"))
    }

    fn status(out: &[Output]) -> Status {
        out.iter()
            .find_map(|o| match o {
                Output::Status(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("a status: {out:?}"))
    }

    fn reply(code: u16, cseq: u32) -> Reply {
        Reply {
            code,
            cseq,
            ..Reply::default()
        }
    }

    fn challenge(cseq: u32, stale: bool) -> Reply {
        let stale = if stale { ", stale=true" } else { "" };
        Reply {
            challenges: vec![
                format!("Digest realm=\"a.test\", nonce=\"n{cseq}\", algorithm=MD5, qop=\"auth\"{stale}"),
                format!("Digest realm=\"a.test\", nonce=\"n{cseq}\", algorithm=SHA-256, qop=\"auth\"{stale}"),
            ],
            ..reply(401, cseq)
        }
    }

    fn ok(cseq: u32, granted: u32) -> Reply {
        Reply {
            granted: Some(granted),
            ..reply(200, cseq)
        }
    }

    #[test]
    fn registers_with_digest_then_refreshes_before_expiry() {
        let mut c = client();
        let first = sent(&c.handle(Input::Start));
        assert_eq!((first.cseq, first.expires), (1, 600));
        assert!(first.authorization.is_none());

        let out = c.handle(Input::Response(&challenge(1, false)));
        let second = sent(&out);
        assert_eq!(second.cseq, 2, "a new CSeq for the answered challenge");
        let (name, value) = second.authorization.expect("credentials");
        assert_eq!(name, "Authorization");
        assert!(value.contains("algorithm=SHA-256"), "strongest: {value}");
        assert!(value.contains("uri=\"sip:a.test\""), "{value}");
        assert!(value.contains("username=\"1002p\""), "{value}");

        let out = c.handle(Input::Response(&ok(2, 300)));
        assert_eq!(status(&out), Status::Registered { expires: 300 });
        // A tenth before the end: 30 s margin on 300 s.
        assert_eq!(armed(&out), Duration::from_secs(270));

        let refresh = sent(&c.handle(Input::Timer));
        assert_eq!((refresh.cseq, refresh.expires), (3, 600));
        assert!(refresh.authorization.is_none());
    }

    #[test]
    fn refresh_margin_is_bounded() {
        assert_eq!(refresh_after(3600), Duration::from_secs(3540));
        assert_eq!(refresh_after(600), Duration::from_secs(540));
        assert_eq!(refresh_after(60), Duration::from_secs(54));
        assert_eq!(refresh_after(10), Duration::from_secs(5));
        assert_eq!(refresh_after(1), Duration::from_secs(1));
    }

    #[test]
    fn a_proxy_challenge_is_answered_with_proxy_authorization() {
        let mut c = client();
        c.handle(Input::Start);
        let mut r = challenge(1, false);
        r.code = 407;
        let again = sent(&c.handle(Input::Response(&r)));
        assert_eq!(
            again.authorization.map(|a| a.0),
            Some("Proxy-Authorization")
        );
    }

    #[test]
    fn refused_credentials_back_off_and_retry() {
        let mut c = client();
        c.handle(Input::Start);
        c.handle(Input::Response(&challenge(1, false)));
        // Challenged again, not stale: the password is wrong.
        let out = c.handle(Input::Response(&challenge(2, false)));
        let wait = armed(&out);
        assert!(matches!(
            status(&out),
            Status::Failed {
                error: PersonalError::Unauthorized,
                ..
            }
        ));
        assert!(!out.iter().any(|o| matches!(o, Output::Send(_))));
        assert!(
            (Duration::from_secs(15)..=Duration::from_secs(30)).contains(&wait),
            "{wait:?}"
        );
        // The retry starts a fresh attempt (its challenge is answered again).
        let retry = sent(&c.handle(Input::Timer));
        assert_eq!((retry.cseq, retry.authorization), (3, None));
        assert!(sent(&c.handle(Input::Response(&challenge(3, false))))
            .authorization
            .is_some());
    }

    #[test]
    fn a_stale_nonce_is_answered_once_more() {
        let mut c = client();
        c.handle(Input::Start);
        c.handle(Input::Response(&challenge(1, false)));
        let out = c.handle(Input::Response(&challenge(2, true)));
        assert_eq!(sent(&out).cseq, 3);
        let out = c.handle(Input::Response(&challenge(3, true)));
        assert!(matches!(status(&out), Status::Failed { .. }), "{out:?}");
    }

    #[test]
    fn forbidden_and_timeouts_back_off_exponentially_with_jitter() {
        let mut c = client();
        c.handle(Input::Start);
        let out = c.handle(Input::Response(&reply(403, 1)));
        assert!(matches!(
            status(&out),
            Status::Failed {
                error: PersonalError::Refused(403),
                ..
            }
        ));
        let mut nominal = 30;
        let w = armed(&out);
        assert!(
            w >= Duration::from_secs(nominal / 2) && w <= Duration::from_secs(nominal),
            "{w:?}"
        );
        for _ in 0..8 {
            c.handle(Input::Timer);
            let out = c.handle(Input::Timeout);
            assert!(matches!(
                status(&out),
                Status::Failed {
                    error: PersonalError::Timeout,
                    ..
                }
            ));
            nominal = (nominal * 2).min(1800);
            let w = armed(&out);
            assert!(
                w >= Duration::from_secs(nominal / 2) && w <= Duration::from_secs(nominal),
                "failure wait {w:?} for nominal {nominal}"
            );
        }
        // Success resets the backoff.
        let reg = sent(&c.handle(Input::Timer));
        c.handle(Input::Response(&ok(reg.cseq, 600)));
        let reg = sent(&c.handle(Input::Timer));
        let w = armed(&c.handle(Input::Response(&reply(503, reg.cseq))));
        assert!(w <= Duration::from_secs(30), "{w:?}");
    }

    #[test]
    fn retry_after_is_honoured() {
        let mut c = client();
        c.handle(Input::Start);
        let r = Reply {
            retry_after: Some(120),
            ..reply(503, 1)
        };
        assert_eq!(
            armed(&c.handle(Input::Response(&r))),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn interval_too_brief_registers_again_with_min_expires() {
        let mut c = client();
        c.handle(Input::Start);
        let r = Reply {
            min_expires: Some(900),
            ..reply(423, 1)
        };
        let again = sent(&c.handle(Input::Response(&r)));
        assert_eq!((again.cseq, again.expires), (2, 900));
        let out = c.handle(Input::Response(&ok(2, 900)));
        assert_eq!(armed(&out), Duration::from_secs(840));
        // Refreshes keep the raised interval.
        assert_eq!(sent(&c.handle(Input::Timer)).expires, 900);
        // A Min-Expires that does not raise the interval is a failure, not a loop.
        let r = Reply {
            min_expires: Some(900),
            ..reply(423, 3)
        };
        assert!(matches!(
            status(&c.handle(Input::Response(&r))),
            Status::Failed {
                error: PersonalError::IntervalTooBrief(900),
                ..
            }
        ));
    }

    #[test]
    fn stale_responses_and_timers_are_ignored() {
        let mut c = client();
        c.handle(Input::Start);
        c.handle(Input::Response(&challenge(1, false)));
        // The 401 retransmitted, for CSeq 1: ignored.
        assert!(c.handle(Input::Response(&challenge(1, false))).is_empty());
        assert!(c.handle(Input::Response(&ok(1, 600))).is_empty());
        assert!(
            c.handle(Input::Timer).is_empty(),
            "no timer while in flight"
        );
        let out = c.handle(Input::Response(&ok(2, 600)));
        assert_eq!(status(&out), Status::Registered { expires: 600 });
    }

    #[test]
    fn a_binding_not_granted_is_a_failure() {
        let mut c = client();
        c.handle(Input::Start);
        let out = c.handle(Input::Response(&ok(1, 0)));
        assert!(matches!(
            status(&out),
            Status::Failed {
                error: PersonalError::NotGranted,
                ..
            }
        ));
    }

    #[test]
    fn stop_removes_the_binding() {
        let mut c = client();
        c.handle(Input::Start);
        c.handle(Input::Response(&ok(1, 600)));
        let out = c.handle(Input::Stop);
        assert_eq!(out[0], Output::Disarm);
        let bye = sent(&out);
        assert_eq!((bye.cseq, bye.expires), (2, 0));
        let again = sent(&c.handle(Input::Response(&challenge(2, false))));
        assert_eq!((again.cseq, again.expires), (3, 0));
        assert!(again.authorization.is_some());
        let out = c.handle(Input::Response(&ok(3, 0)));
        assert_eq!(status(&out), Status::Stopped { removed: true });
        assert!(c.is_stopped());
        assert!(c.handle(Input::Timer).is_empty());
    }

    #[test]
    fn stop_gives_up_when_the_registrar_does_not_answer() {
        let mut c = client();
        c.handle(Input::Start);
        c.handle(Input::Response(&ok(1, 600)));
        c.handle(Input::Stop);
        let out = c.handle(Input::Timeout);
        assert_eq!(status(&out), Status::Stopped { removed: false });
        let mut idle = client();
        assert_eq!(
            status(&idle.handle(Input::Stop)),
            Status::Stopped { removed: false }
        );
    }

    #[test]
    fn bad_challenges_do_not_panic() {
        let mut c = client();
        c.handle(Input::Start);
        let r = Reply {
            challenges: vec!["Digest nonsense".into()],
            ..reply(401, 1)
        };
        assert!(matches!(
            status(&c.handle(Input::Response(&r))),
            Status::Failed {
                error: PersonalError::Challenge(_),
                ..
            }
        ));
        c.handle(Input::Timer);
        let r = Reply {
            challenges: vec![],
            ..reply(407, 2)
        };
        assert!(matches!(
            status(&c.handle(Input::Response(&r))),
            Status::Failed {
                error: PersonalError::Unauthorized,
                ..
            }
        ));
    }

    #[test]
    fn the_request_carries_the_contact_and_the_interval() {
        let mut c = client();
        let reg = sent(&c.handle(Input::Start));
        let bytes = render(
            &c,
            &reg,
            "SIP/2.0/UDP 192.0.2.7:40000;branch=z9hG4bK-x;rport",
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("REGISTER sip:a.test SIP/2.0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nFrom: <sip:1002p@a.test>;tag=tag1\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nTo: <sip:1002p@a.test>\r\n"), "{text}");
        assert!(
            text.contains("\r\nContact: <sip:1002@192.0.2.7:5060>\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nExpires: 600\r\n"), "{text}");
        assert!(text.contains("\r\nCSeq: 1 REGISTER\r\n"), "{text}");
        assert!(text.contains("\r\nCall-ID: reg-1\r\n"), "{text}");
    }

    #[test]
    fn replies_are_read_from_responses() {
        let raw = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.7:40000;branch=z9hG4bK-x\r\n\
                   From: <sip:1002p@a.test>;tag=tag1\r\nTo: <sip:1002p@a.test>;tag=x\r\n\
                   Call-ID: reg-1\r\nCSeq: 7 REGISTER\r\n\
                   Contact: <sip:1002@10.0.0.9:5062>;expires=3600\r\n\
                   Contact: <sip:1002@192.0.2.7:5060>;expires=240\r\nExpires: 999\r\n\
                   Content-Length: 0\r\n\r\n";
        let msg = crate::sip::message::parse(raw.as_bytes(), 65_535).unwrap();
        let rsipstack::sip::SipMessage::Response(resp) = msg else {
            panic!("a response")
        };
        let r = Reply::from_response(&resp, CONTACT).unwrap();
        assert_eq!((r.code, r.cseq, r.granted), (200, 7, Some(240)));
        let r = Reply::from_response(&resp, "sip:other@h").unwrap();
        assert_eq!(
            r.granted,
            Some(999),
            "the Expires header without our contact"
        );

        let raw = "SIP/2.0 423 Interval Too Brief\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-x\r\n\
                   From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\n\
                   CSeq: 2 REGISTER\r\nMin-Expires: 1200\r\nContent-Length: 0\r\n\r\n";
        let msg = crate::sip::message::parse(raw.as_bytes(), 65_535).unwrap();
        let rsipstack::sip::SipMessage::Response(resp) = msg else {
            panic!("a response")
        };
        let r = Reply::from_response(&resp, CONTACT).unwrap();
        assert_eq!((r.code, r.min_expires), (423, Some(1200)));
    }
}
