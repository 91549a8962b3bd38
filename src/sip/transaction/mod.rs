//! RFC 3261 §17 transactions, with the RFC 6026 `Accepted` state for INVITE, as
//! sans-IO state machines: they take events and return [`Action`]s; the shard that
//! owns them sends the bytes and schedules the timers. A timer carries the
//! transaction's generation, so a timer that outlived its state is simply ignored.
//!
//! The INVITE server transaction also retransmits its 2xx until the ACK arrives
//! (RFC 3261 §13.3.1.4, the UAS core's duty), since tsps is always the UAS core there.

use bytes::Bytes;
use std::time::Duration;

pub mod layer;
pub mod wheel;

pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
pub const T4: Duration = Duration::from_secs(5);
const TIMER_64T1: Duration = Duration::from_secs(32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Client INVITE before any response.
    Calling,
    /// Client non-INVITE / server non-INVITE before any response.
    Trying,
    Proceeding,
    Completed,
    /// Server INVITE after the ACK for a non-2xx final.
    Confirmed,
    /// RFC 6026: a 2xx was sent (server) or received (client).
    Accepted,
    Terminated,
}

/// Timer names from RFC 3261 Table 4 and RFC 6026 (`G2xx` retransmits a 2xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    A,
    B,
    D,
    E,
    F,
    G,
    G2xx,
    H,
    I,
    J,
    K,
    L,
    M,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes to the transaction's peer.
    Transmit(Bytes),
    Schedule(Timer, Duration),
    /// Client: a response for the transaction user (the shard).
    Deliver {
        code: u16,
    },
    /// Client: no final response in time (Timer B or F).
    Timeout,
    /// Server INVITE: the 2xx was never acknowledged (Timer L without ACK).
    AckTimeout,
    /// The transaction is over; the owner may forget it.
    Terminated,
}

pub type Actions = smallvec_lite::Actions;

/// A tiny fixed-capacity action list: transactions never emit more than four
/// actions per event, so no allocation is needed on the hot path.
pub mod smallvec_lite {
    use super::Action;

    #[derive(Debug, Default)]
    pub struct Actions {
        items: [Option<Action>; 4],
        len: usize,
    }

    impl Actions {
        pub fn push(&mut self, a: Action) {
            debug_assert!(self.len < 4, "at most four actions per event");
            if self.len < 4 {
                self.items[self.len] = Some(a);
                self.len += 1;
            }
        }
        pub fn len(&self) -> usize {
            self.len
        }
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
    }

    impl IntoIterator for Actions {
        type Item = Action;
        type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<Action>, 4>>;
        fn into_iter(self) -> Self::IntoIter {
            self.items.into_iter().flatten()
        }
    }
}

#[derive(Debug)]
pub struct Transaction {
    pub kind: Kind,
    pub state: State,
    /// Stream transports are reliable: no retransmissions, zero-length wait timers.
    reliable: bool,
    /// Client: the request. Server: the last response sent.
    last: Option<Bytes>,
    /// Client INVITE: the ACK built for a non-2xx final.
    ack: Option<Bytes>,
    interval: Duration,
    /// Server INVITE: the ACK for our 2xx has arrived.
    acked: bool,
}

impl Transaction {
    /// A client transaction that sends `request` now.
    pub fn client(kind: Kind, request: Bytes, reliable: bool) -> (Self, Actions) {
        debug_assert!(matches!(kind, Kind::InviteClient | Kind::NonInviteClient));
        let mut tx = Self {
            kind,
            state: if kind == Kind::InviteClient {
                State::Calling
            } else {
                State::Trying
            },
            reliable,
            last: Some(request.clone()),
            ack: None,
            interval: T1,
            acked: false,
        };
        let mut out = Actions::default();
        out.push(Action::Transmit(request));
        let (retrans, timeout) = match kind {
            Kind::InviteClient => (Timer::A, Timer::B),
            _ => (Timer::E, Timer::F),
        };
        if !tx.reliable {
            out.push(Action::Schedule(retrans, T1));
        }
        out.push(Action::Schedule(timeout, TIMER_64T1));
        tx.interval = T1;
        (tx, out)
    }

    /// A server transaction for a request just received.
    pub fn server(kind: Kind, reliable: bool) -> Self {
        debug_assert!(matches!(kind, Kind::InviteServer | Kind::NonInviteServer));
        Self {
            kind,
            state: if kind == Kind::InviteServer {
                State::Proceeding
            } else {
                State::Trying
            },
            reliable,
            last: None,
            ack: None,
            interval: T1,
            acked: false,
        }
    }

    fn wait(&self, d: Duration) -> Duration {
        if self.reliable {
            Duration::ZERO
        } else {
            d
        }
    }

    /// Client: a response matched this transaction. `ack` builds the ACK for a non-2xx
    /// final of an INVITE (called at most once).
    pub fn on_response(&mut self, code: u16, ack: impl FnOnce() -> Bytes) -> Actions {
        let mut out = Actions::default();
        let provisional = code < 200;
        let success = (200..300).contains(&code);
        if !provisional {
            // A client never sends its request again after a final response; the
            // transaction lingers for its timers (up to 64*T1 for an INVITE's 2xx, T4
            // for a NOTIFY) without its bytes.
            self.last = None;
        }
        match (self.kind, self.state) {
            (Kind::InviteClient, State::Calling | State::Proceeding) => {
                if provisional {
                    self.state = State::Proceeding;
                } else if success {
                    self.state = State::Accepted;
                    out.push(Action::Schedule(Timer::M, TIMER_64T1));
                } else {
                    let ack = ack();
                    self.ack = Some(ack.clone());
                    self.state = State::Completed;
                    out.push(Action::Transmit(ack));
                    out.push(Action::Schedule(Timer::D, self.wait(TIMER_64T1)));
                }
                out.push(Action::Deliver { code });
            }
            (Kind::InviteClient, State::Completed) if !provisional && !success => {
                if let Some(ack) = &self.ack {
                    out.push(Action::Transmit(ack.clone()));
                }
            }
            (Kind::InviteClient, State::Accepted) if success => {
                // A retransmitted or forked 2xx: the user ACKs it again.
                out.push(Action::Deliver { code });
            }
            (Kind::NonInviteClient, State::Trying | State::Proceeding) => {
                if provisional {
                    self.state = State::Proceeding;
                } else {
                    self.state = State::Completed;
                    out.push(Action::Schedule(Timer::K, self.wait(T4)));
                    out.push(Action::Deliver { code });
                }
            }
            _ => {}
        }
        out
    }

    /// Server: send a response. Returns the actions (the first is the transmission).
    pub fn respond(&mut self, code: u16, response: Bytes) -> Actions {
        let mut out = Actions::default();
        let final_ = code >= 200;
        match (self.kind, self.state) {
            (Kind::InviteServer, State::Proceeding) => {
                out.push(Action::Transmit(response.clone()));
                self.last = Some(response);
                if (200..300).contains(&code) {
                    self.state = State::Accepted;
                    if !self.reliable {
                        self.interval = T1;
                        out.push(Action::Schedule(Timer::G2xx, T1));
                    }
                    out.push(Action::Schedule(Timer::L, TIMER_64T1));
                } else if final_ {
                    self.state = State::Completed;
                    if !self.reliable {
                        self.interval = T1;
                        out.push(Action::Schedule(Timer::G, T1));
                    }
                    out.push(Action::Schedule(Timer::H, TIMER_64T1));
                }
            }
            (Kind::NonInviteServer, State::Trying | State::Proceeding) => {
                out.push(Action::Transmit(response.clone()));
                self.last = Some(response);
                if final_ {
                    self.state = State::Completed;
                    out.push(Action::Schedule(Timer::J, self.wait(TIMER_64T1)));
                } else {
                    self.state = State::Proceeding;
                }
            }
            _ => {}
        }
        out
    }

    /// Server: the same request arrived again (a retransmission).
    pub fn on_retransmission(&mut self) -> Actions {
        let mut out = Actions::default();
        let resend = matches!(
            (self.kind, self.state),
            (
                Kind::InviteServer,
                State::Proceeding | State::Completed | State::Accepted
            ) | (Kind::NonInviteServer, State::Proceeding | State::Completed)
        );
        if resend {
            if let Some(last) = &self.last {
                out.push(Action::Transmit(last.clone()));
            }
        }
        out
    }

    /// Server INVITE: the ACK arrived (for a non-2xx final, matched by branch; or for
    /// our 2xx, matched by dialog).
    pub fn on_ack(&mut self) -> Actions {
        let mut out = Actions::default();
        match self.state {
            State::Completed => {
                self.state = State::Confirmed;
                out.push(Action::Schedule(Timer::I, self.wait(T4)));
            }
            State::Accepted => {
                // The UAC has the 2xx: nothing will ever ask for it again.
                self.acked = true;
                self.last = None;
            }
            _ => {}
        }
        out
    }

    /// Bytes kept for retransmissions (the request, the last response or the ACK).
    pub fn retained_bytes(&self) -> usize {
        self.last.as_ref().map_or(0, Bytes::len) + self.ack.as_ref().map_or(0, Bytes::len)
    }

    pub fn is_accepted(&self) -> bool {
        self.state == State::Accepted
    }

    pub fn on_timer(&mut self, timer: Timer) -> Actions {
        let mut out = Actions::default();
        match (timer, self.state) {
            (Timer::A, State::Calling) => {
                self.interval *= 2;
                if let Some(req) = &self.last {
                    out.push(Action::Transmit(req.clone()));
                }
                out.push(Action::Schedule(Timer::A, self.interval));
            }
            (Timer::B, State::Calling) | (Timer::F, State::Trying | State::Proceeding) => {
                self.state = State::Terminated;
                out.push(Action::Timeout);
                out.push(Action::Terminated);
            }
            (Timer::E, State::Trying | State::Proceeding) => {
                self.interval = if self.state == State::Proceeding {
                    T2
                } else {
                    (self.interval * 2).min(T2)
                };
                if let Some(req) = &self.last {
                    out.push(Action::Transmit(req.clone()));
                }
                out.push(Action::Schedule(Timer::E, self.interval));
            }
            (Timer::G, State::Completed) | (Timer::G2xx, State::Accepted) => {
                if timer == Timer::G2xx && self.acked {
                    return out;
                }
                self.interval = (self.interval * 2).min(T2);
                if let Some(resp) = &self.last {
                    out.push(Action::Transmit(resp.clone()));
                }
                out.push(Action::Schedule(timer, self.interval));
            }
            (Timer::H, State::Completed) => {
                self.state = State::Terminated;
                out.push(Action::Terminated);
            }
            (Timer::L, State::Accepted) => {
                self.state = State::Terminated;
                if !self.acked {
                    out.push(Action::AckTimeout);
                }
                out.push(Action::Terminated);
            }
            (Timer::D, State::Completed)
            | (Timer::M, State::Accepted)
            | (Timer::I, State::Confirmed)
            | (Timer::J, State::Completed)
            | (Timer::K, State::Completed) => {
                self.state = State::Terminated;
                out.push(Action::Terminated);
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acts(a: Actions) -> Vec<Action> {
        a.into_iter().collect()
    }
    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn a_client_drops_its_request_at_the_final_response() {
        for (kind, code) in [
            (Kind::NonInviteClient, 200),
            (Kind::NonInviteClient, 481),
            (Kind::InviteClient, 200),
            (Kind::InviteClient, 486),
        ] {
            let (mut tx, _) = Transaction::client(kind, b("REQUEST"), false);
            tx.on_response(100, || b("ACK"));
            assert!(tx.last.is_some(), "{kind:?}: kept while it may be resent");
            tx.on_response(code, || b("ACK"));
            assert!(tx.last.is_none(), "{kind:?} after {code}");
            // Its timers in the lingering state resend nothing.
            for t in [Timer::A, Timer::E] {
                assert!(!acts(tx.on_timer(t))
                    .iter()
                    .any(|a| matches!(a, Action::Transmit(_))));
            }
        }
    }

    #[test]
    fn invite_client_retransmits_until_provisional_then_acks_failure() {
        let (mut tx, a) = Transaction::client(Kind::InviteClient, b("INVITE"), false);
        assert_eq!(
            acts(a),
            vec![
                Action::Transmit(b("INVITE")),
                Action::Schedule(Timer::A, T1),
                Action::Schedule(Timer::B, TIMER_64T1)
            ]
        );
        // Timer A doubles.
        assert_eq!(
            acts(tx.on_timer(Timer::A)),
            vec![
                Action::Transmit(b("INVITE")),
                Action::Schedule(Timer::A, T1 * 2)
            ]
        );
        assert_eq!(
            acts(tx.on_response(180, || b("ACK"))),
            vec![Action::Deliver { code: 180 }]
        );
        // Retransmission stops in Proceeding, and Timer B no longer applies.
        assert!(tx.on_timer(Timer::A).is_empty());
        assert!(tx.on_timer(Timer::B).is_empty());
        assert_eq!(
            acts(tx.on_response(486, || b("ACK"))),
            vec![
                Action::Transmit(b("ACK")),
                Action::Schedule(Timer::D, TIMER_64T1),
                Action::Deliver { code: 486 }
            ]
        );
        // A retransmitted 486 is absorbed and re-ACKed, not delivered twice.
        assert_eq!(
            acts(tx.on_response(486, || b("X"))),
            vec![Action::Transmit(b("ACK"))]
        );
        assert_eq!(acts(tx.on_timer(Timer::D)), vec![Action::Terminated]);
    }

    #[test]
    fn invite_client_times_out_without_response() {
        let (mut tx, _) = Transaction::client(Kind::InviteClient, b("INVITE"), false);
        assert_eq!(
            acts(tx.on_timer(Timer::B)),
            vec![Action::Timeout, Action::Terminated]
        );
    }

    #[test]
    fn invite_client_accepted_passes_every_2xx() {
        let (mut tx, _) = Transaction::client(Kind::InviteClient, b("INVITE"), true);
        assert_eq!(
            acts(tx.on_response(200, || unreachable!())),
            vec![
                Action::Schedule(Timer::M, TIMER_64T1),
                Action::Deliver { code: 200 }
            ]
        );
        assert_eq!(
            acts(tx.on_response(200, || unreachable!())),
            vec![Action::Deliver { code: 200 }]
        );
        assert_eq!(acts(tx.on_timer(Timer::M)), vec![Action::Terminated]);
    }

    #[test]
    fn non_invite_client_backs_off_to_t2() {
        let (mut tx, _) = Transaction::client(Kind::NonInviteClient, b("BYE"), false);
        let mut last = Duration::ZERO;
        for _ in 0..6 {
            let a = acts(tx.on_timer(Timer::E));
            let Action::Schedule(Timer::E, d) = a[1] else {
                panic!("{a:?}")
            };
            assert!(d >= last && d <= T2);
            last = d;
        }
        assert_eq!(last, T2);
        assert_eq!(
            acts(tx.on_response(200, || unreachable!()))[1],
            Action::Deliver { code: 200 }
        );
        assert!(tx.on_timer(Timer::F).is_empty());
    }

    #[test]
    fn invite_server_retransmits_final_until_ack() {
        let mut tx = Transaction::server(Kind::InviteServer, false);
        assert_eq!(
            acts(tx.respond(100, b("100"))),
            vec![Action::Transmit(b("100"))]
        );
        assert_eq!(
            acts(tx.on_retransmission()),
            vec![Action::Transmit(b("100"))]
        );
        let a = acts(tx.respond(486, b("486")));
        assert_eq!(a[0], Action::Transmit(b("486")));
        assert_eq!(
            acts(tx.on_timer(Timer::G)),
            vec![
                Action::Transmit(b("486")),
                Action::Schedule(Timer::G, T1 * 2)
            ]
        );
        assert_eq!(acts(tx.on_ack()), vec![Action::Schedule(Timer::I, T4)]);
        assert!(
            tx.on_timer(Timer::G).is_empty(),
            "no retransmission once confirmed"
        );
        assert_eq!(acts(tx.on_timer(Timer::I)), vec![Action::Terminated]);
    }

    #[test]
    fn invite_server_2xx_retransmitted_until_ack_else_ack_timeout() {
        let mut tx = Transaction::server(Kind::InviteServer, false);
        tx.respond(200, b("200"));
        assert_eq!(
            acts(tx.on_timer(Timer::G2xx))[0],
            Action::Transmit(b("200"))
        );
        tx.on_ack();
        assert!(tx.on_timer(Timer::G2xx).is_empty());
        assert_eq!(acts(tx.on_timer(Timer::L)), vec![Action::Terminated]);

        let mut tx = Transaction::server(Kind::InviteServer, true);
        assert_eq!(
            acts(tx.respond(200, b("200"))),
            vec![
                Action::Transmit(b("200")),
                Action::Schedule(Timer::L, TIMER_64T1)
            ]
        );
        assert_eq!(
            acts(tx.on_timer(Timer::L)),
            vec![Action::AckTimeout, Action::Terminated]
        );
    }

    #[test]
    fn non_invite_server_absorbs_retransmissions() {
        let mut tx = Transaction::server(Kind::NonInviteServer, true);
        assert!(tx.on_retransmission().is_empty(), "nothing sent yet");
        assert_eq!(
            acts(tx.respond(200, b("200"))),
            vec![
                Action::Transmit(b("200")),
                Action::Schedule(Timer::J, Duration::ZERO)
            ]
        );
        assert_eq!(
            acts(tx.on_retransmission()),
            vec![Action::Transmit(b("200"))]
        );
        assert_eq!(acts(tx.on_timer(Timer::J)), vec![Action::Terminated]);
    }
}
