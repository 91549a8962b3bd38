//! Every transition of the four machines (RFC 3261 §17 figures 5 to 8, RFC 6026
//! figures 3 and 5), driven through [`Layer::handle`] with no socket and no clock:
//! each row of [`TRANSITIONS`] names one, its steps and what must come out.
use super::*;
use crate::sip::transaction::{T1, T2, T4};
use rsipstack::sip::SipMessage;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Client: a response with this code arrives.
    Resp(u16),
    /// Server: the TU responds with this code.
    Respond(u16),
    /// Server: the request arrives again.
    Retrans,
    /// Server INVITE: the ACK of a non-2xx final (same branch).
    Ack,
    /// Server INVITE: the ACK of our 2xx (matched by dialog).
    AckFor2xx,
    /// Time moves on by this many milliseconds from the start.
    At(u64),
}
use Step::*;

/// What the last step must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expect {
    /// The transaction's state after it (None: gone from the table).
    state: Option<State>,
    /// How many transmissions the last step made.
    transmits: usize,
    /// Delivered to the TU by the last step: "deliver", "timeout", "ack-timeout".
    event: Option<&'static str>,
}

const fn ex(state: Option<State>, transmits: usize, event: Option<&'static str>) -> Expect {
    Expect {
        state,
        transmits,
        event,
    }
}

use Kind::*;
use State::*;

const S64: u64 = 64 * 500;

/// (transition, machine, reliable transport, steps, expected after the last step).
#[rustfmt::skip]
const TRANSITIONS: &[(&str, Kind, bool, &[Step], Expect)] = &[
    // INVITE client (RFC 3261 figure 5, RFC 6026 figure 3)
    ("ic: start -> Calling (INVITE sent)", InviteClient, false, &[], ex(Some(Calling), 1, None)),
    ("ic: Calling -Timer A-> Calling (retransmit)", InviteClient, false, &[At(500)], ex(Some(Calling), 1, None)),
    ("ic: Calling -Timer B-> Terminated (timeout)", InviteClient, false, &[At(S64)], ex(None, 0, Some("timeout"))),
    ("ic: Calling -1xx-> Proceeding", InviteClient, false, &[Resp(180)], ex(Some(Proceeding), 0, Some("deliver"))),
    ("ic: Proceeding -1xx-> Proceeding", InviteClient, false, &[Resp(100), Resp(180)], ex(Some(Proceeding), 0, Some("deliver"))),
    ("ic: Proceeding: Timer A stops", InviteClient, false, &[Resp(100), At(500)], ex(Some(Proceeding), 0, None)),
    ("ic: Calling -2xx-> Accepted", InviteClient, false, &[Resp(200)], ex(Some(Accepted), 0, Some("deliver"))),
    ("ic: Proceeding -2xx-> Accepted", InviteClient, false, &[Resp(180), Resp(200)], ex(Some(Accepted), 0, Some("deliver"))),
    ("ic: Accepted -2xx-> Accepted (to the TU)", InviteClient, false, &[Resp(200), Resp(200)], ex(Some(Accepted), 0, Some("deliver"))),
    ("ic: Accepted -Timer M-> Terminated", InviteClient, false, &[Resp(200), At(S64)], ex(None, 0, None)),
    ("ic: Proceeding -3xx-6xx-> Completed (ACK sent)", InviteClient, false, &[Resp(180), Resp(486)], ex(Some(Completed), 1, Some("deliver"))),
    ("ic: Calling -3xx-6xx-> Completed (ACK sent)", InviteClient, false, &[Resp(503)], ex(Some(Completed), 1, Some("deliver"))),
    ("ic: Completed -3xx-6xx-> Completed (ACK again)", InviteClient, false, &[Resp(486), Resp(486)], ex(Some(Completed), 1, None)),
    ("ic: Completed -Timer D-> Terminated", InviteClient, false, &[Resp(486), At(S64)], ex(None, 0, None)),
    ("ic: reliable: Completed -Timer D (0)-> Terminated", InviteClient, true, &[Resp(486), At(0)], ex(None, 0, None)),
    // non-INVITE client (figure 6)
    ("nic: start -> Trying (request sent)", NonInviteClient, false, &[], ex(Some(Trying), 1, None)),
    ("nic: Trying -Timer E-> Trying (retransmit)", NonInviteClient, false, &[At(500)], ex(Some(Trying), 1, None)),
    ("nic: Trying -1xx-> Proceeding", NonInviteClient, false, &[Resp(100)], ex(Some(Proceeding), 0, None)),
    ("nic: Proceeding -Timer E-> Proceeding (retransmit at T2)", NonInviteClient, false, &[Resp(100), At(500)], ex(Some(Proceeding), 1, None)),
    ("nic: Trying -final-> Completed", NonInviteClient, false, &[Resp(200)], ex(Some(Completed), 0, Some("deliver"))),
    ("nic: Proceeding -final-> Completed", NonInviteClient, false, &[Resp(100), Resp(481)], ex(Some(Completed), 0, Some("deliver"))),
    ("nic: Trying -Timer F-> Terminated (timeout)", NonInviteClient, false, &[At(S64)], ex(None, 0, Some("timeout"))),
    ("nic: Completed -Timer K-> Terminated", NonInviteClient, false, &[Resp(200), At(5_000)], ex(None, 0, None)),
    ("nic: Completed: final again absorbed", NonInviteClient, false, &[Resp(200), Resp(200)], ex(Some(Completed), 0, None)),
    // INVITE server (figure 7, RFC 6026 figure 5)
    ("is: start -> Proceeding", InviteServer, false, &[], ex(Some(Proceeding), 0, None)),
    ("is: Proceeding -1xx from TU-> Proceeding", InviteServer, false, &[Respond(100)], ex(Some(Proceeding), 1, None)),
    ("is: Proceeding -INVITE-> Proceeding (last 1xx again)", InviteServer, false, &[Respond(180), Retrans], ex(Some(Proceeding), 1, None)),
    ("is: Proceeding -2xx from TU-> Accepted", InviteServer, false, &[Respond(200)], ex(Some(Accepted), 1, None)),
    ("is: Accepted -Timer G2xx-> Accepted (2xx again until the ACK)", InviteServer, false, &[Respond(200), At(500)], ex(Some(Accepted), 1, None)),
    ("is: Accepted -INVITE-> Accepted (2xx again before the ACK)", InviteServer, false, &[Respond(200), Retrans], ex(Some(Accepted), 1, None)),
    ("is: Accepted -ACK-> Accepted (2xx freed)", InviteServer, false, &[Respond(200), AckFor2xx], ex(Some(Accepted), 0, None)),
    ("is: Accepted, ACKed -INVITE-> absorbed", InviteServer, false, &[Respond(200), AckFor2xx, Retrans], ex(Some(Accepted), 0, None)),
    ("is: Accepted, ACKed -Timer G2xx-> nothing", InviteServer, false, &[Respond(200), AckFor2xx, At(500)], ex(Some(Accepted), 0, None)),
    ("is: Accepted -Timer L-> Terminated (no ACK: ack-timeout)", InviteServer, false, &[Respond(200), At(S64)], ex(None, 0, Some("ack-timeout"))),
    ("is: Accepted, ACKed -Timer L-> Terminated", InviteServer, false, &[Respond(200), AckFor2xx, At(S64)], ex(None, 0, None)),
    ("is: Proceeding -3xx-6xx from TU-> Completed", InviteServer, false, &[Respond(486)], ex(Some(Completed), 1, None)),
    ("is: Completed -INVITE-> Completed (final again)", InviteServer, false, &[Respond(486), Retrans], ex(Some(Completed), 1, None)),
    ("is: Completed -Timer G-> Completed (final again)", InviteServer, false, &[Respond(486), At(500)], ex(Some(Completed), 1, None)),
    ("is: Completed -Timer H-> Terminated (no ACK)", InviteServer, false, &[Respond(486), At(S64)], ex(None, 0, None)),
    ("is: Completed -ACK-> Confirmed", InviteServer, false, &[Respond(486), Ack], ex(Some(Confirmed), 0, None)),
    ("is: Confirmed -ACK-> Confirmed (absorbed)", InviteServer, false, &[Respond(486), Ack, Ack], ex(Some(Confirmed), 0, None)),
    ("is: Confirmed -Timer I-> Terminated", InviteServer, false, &[Respond(486), Ack, At(5_000)], ex(None, 0, None)),
    ("is: reliable: Completed -Timer H only-> no resend", InviteServer, true, &[Respond(486), At(500)], ex(Some(Completed), 0, None)),
    // non-INVITE server (figure 8)
    ("nis: start -> Trying", NonInviteServer, false, &[], ex(Some(Trying), 0, None)),
    ("nis: Trying -request-> Trying (absorbed)", NonInviteServer, false, &[Retrans], ex(Some(Trying), 0, None)),
    ("nis: Trying -1xx from TU-> Proceeding", NonInviteServer, false, &[Respond(100)], ex(Some(Proceeding), 1, None)),
    ("nis: Proceeding -request-> Proceeding (1xx again)", NonInviteServer, false, &[Respond(100), Retrans], ex(Some(Proceeding), 1, None)),
    ("nis: Trying -final from TU-> Completed", NonInviteServer, false, &[Respond(200)], ex(Some(Completed), 1, None)),
    ("nis: Proceeding -final from TU-> Completed", NonInviteServer, false, &[Respond(100), Respond(401)], ex(Some(Completed), 1, None)),
    ("nis: Completed -request-> Completed (final again)", NonInviteServer, false, &[Respond(200), Retrans], ex(Some(Completed), 1, None)),
    ("nis: Completed -Timer J-> Terminated", NonInviteServer, false, &[Respond(200), At(S64)], ex(None, 0, None)),
    ("nis: reliable: Completed -Timer J (0)-> Terminated", NonInviteServer, true, &[Respond(200), At(0)], ex(None, 0, None)),
];

fn request(name: &str) -> Arc<Request> {
    let path = format!("{}/tests/fixtures/sip/{name}", env!("CARGO_MANIFEST_DIR"));
    match crate::sip::message::parse(&std::fs::read(path).unwrap(), 65_535) {
        Ok(SipMessage::Request(r)) => Arc::new(r),
        other => panic!("{name}: {other:?}"),
    }
}

fn event(o: &Output<u8>) -> Option<&'static str> {
    match o {
        Output::Deliver { .. } => Some("deliver"),
        Output::Timeout { .. } => Some("timeout"),
        Output::AckTimeout { .. } => Some("ack-timeout"),
        _ => None,
    }
}

/// Runs one row; returns the state after it and the last step's outputs.
fn run(kind: Kind, reliable: bool, steps: &[Step]) -> (Option<State>, Vec<Output<u8>>) {
    let start = Instant::now();
    let peer: Peer = if reliable {
        "tcp:127.0.0.1:5070".parse().unwrap()
    } else {
        "udp:127.0.0.1:5070".parse().unwrap()
    };
    let mut layer: Layer<u8> = Layer::default();
    let (key, mut last) = match kind {
        InviteClient | NonInviteClient => {
            let method = if kind == InviteClient {
                Method::Invite
            } else {
                Method::Bye
            };
            let key = TxKey::client("z9hG4bK-1", method);
            let out = layer.handle(
                start,
                Input::NewClient {
                    key: key.clone(),
                    kind,
                    bytes: Bytes::from_static(b"REQUEST"),
                    peer,
                    owner: 1,
                },
            );
            (key, out)
        }
        InviteServer | NonInviteServer => {
            let (name, method) = if kind == InviteServer {
                ("invite.sip", Method::Invite)
            } else {
                ("register.sip", Method::Register)
            };
            let key = TxKey::server("z9hG4bK-1", method);
            let out = layer.handle(
                start,
                Input::NewServer {
                    key: key.clone(),
                    peer,
                    request: request(name),
                    owner: 1,
                },
            );
            (key, out)
        }
    };
    let mut now = start;
    for step in steps {
        let input = match *step {
            Resp(code) => Input::Response {
                key: key.clone(),
                code,
                ack: (code >= 300).then(|| Bytes::from_static(b"ACK")),
            },
            Respond(code) => Input::Respond {
                key: key.clone(),
                code,
                bytes: Bytes::from(format!("SIP/2.0 {code}")),
            },
            Retrans => Input::Request {
                key: key.clone(),
                ack: false,
            },
            Ack => Input::Request {
                key: key.clone(),
                ack: true,
            },
            AckFor2xx => Input::AckFor2xx { key: key.clone() },
            At(ms) => {
                // Time moves in 100 ms ticks, as the shard's timer tick does; the
                // row sees what the last tick did.
                let target = start + Duration::from_millis(ms);
                loop {
                    now = (now + Duration::from_millis(100)).min(target);
                    last = layer.handle(now, Input::Tick);
                    if now >= target {
                        break;
                    }
                }
                continue;
            }
        };
        last = layer.handle(now, input);
    }
    (layer.get(&key).map(|e| e.state()), last)
}

#[test]
fn every_transition() {
    let mut failures = Vec::new();
    for (name, kind, reliable, steps, expect) in TRANSITIONS {
        let (state, out) = run(*kind, *reliable, steps);
        let got = Expect {
            state,
            transmits: out
                .iter()
                .filter(|o| matches!(o, Output::Transmit { .. }))
                .count(),
            event: out.iter().find_map(event),
        };
        if got != *expect {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The machines' timer values are RFC 3261's: T1, T2 and T4.
#[test]
fn timer_values() {
    assert_eq!(
        (T1, T2, T4),
        (
            Duration::from_millis(500),
            Duration::from_secs(4),
            Duration::from_secs(5)
        )
    );
    assert_eq!(S64, 32_000);
}

/// A finished server transaction keeps the response bytes only while a
/// retransmission may ask for them; the INVITE's 2xx goes with its ACK.
#[test]
fn a_finished_transaction_keeps_only_what_a_retransmission_needs() {
    let mut layer: Layer<u8> = Layer::default();
    let now = Instant::now();
    let peer: Peer = "udp:127.0.0.1:5070".parse().unwrap();
    let key = TxKey::server("z9hG4bK-2", Method::Invite);
    layer.handle(
        now,
        Input::NewServer {
            key: key.clone(),
            peer,
            request: request("invite.sip"),
            owner: 0,
        },
    );
    assert!(layer.get(&key).unwrap().request.is_some());
    layer.handle(
        now,
        Input::Respond {
            key: key.clone(),
            code: 200,
            bytes: Bytes::from_static(b"SIP/2.0 200 OK"),
        },
    );
    let e = layer.get(&key).unwrap();
    assert!(
        e.request.is_none(),
        "the request goes at the final response"
    );
    assert!(e.tx.retained_bytes() > 0, "the 2xx stays until the ACK");
    layer.handle(now, Input::AckFor2xx { key: key.clone() });
    assert_eq!(
        layer.get(&key).unwrap().tx.retained_bytes(),
        0,
        "the ACK frees the 2xx"
    );
    // Timers share the key: none holds a copy of it.
    assert!(layer.timers() >= 1);
}

/// The valid fixtures of tests/fixtures/sip, read through the typed view into the
/// layer: each request opens a server transaction whose final response is sent
/// again for its retransmission (and an INVITE's non-2xx is ACKed on its branch);
/// each response is delivered to the client transaction its Via and CSeq name.
#[test]
fn the_fixtures_through_the_layer() {
    use crate::sip::message::View;
    let now = Instant::now();
    let peer: Peer = "udp:127.0.0.1:5070".parse().unwrap();
    for name in [
        "invite.sip",
        "invite_compact_folded.sip",
        "register.sip",
        "bye.sip",
        "options_no_content_length.sip",
        "message_no_content_length_body.sip",
    ] {
        let mut layer: Layer<u8> = Layer::default();
        let req = request(name);
        let v = View::new(&req.headers);
        let key = TxKey::server(v.branch.expect(name), req.method);
        let first = layer.handle(
            now,
            Input::Request {
                key: key.clone(),
                ack: false,
            },
        );
        assert_eq!(first, vec![Output::Unmatched], "{name}");
        layer.handle(
            now,
            Input::NewServer {
                key: key.clone(),
                peer,
                request: req.clone(),
                owner: 0,
            },
        );
        let code = if req.method == Method::Invite {
            486
        } else {
            200
        };
        let bytes = Bytes::from(crate::sip::build::response(
            &req,
            Some(peer.addr),
            code,
            Some("t"),
            &[],
            None,
        ));
        let sent = layer.handle(
            now,
            Input::Respond {
                key: key.clone(),
                code,
                bytes: bytes.clone(),
            },
        );
        assert_eq!(
            sent,
            vec![Output::Transmit {
                peer,
                bytes: bytes.clone()
            }],
            "{name}"
        );
        let again = layer.handle(
            now,
            Input::Request {
                key: key.clone(),
                ack: false,
            },
        );
        assert_eq!(again, vec![Output::Transmit { peer, bytes }], "{name}");
        if req.method == Method::Invite {
            layer.handle(
                now,
                Input::Request {
                    key: key.clone(),
                    ack: true,
                },
            );
            assert_eq!(
                layer.get(&key).map(Entry::state),
                Some(State::Confirmed),
                "{name}"
            );
        } else {
            assert_eq!(
                layer.get(&key).map(Entry::state),
                Some(State::Completed),
                "{name}"
            );
        }
    }
    for (name, code) in [
        ("response_180_custom.sip", 180),
        ("response_200_invite_sdp.sip", 200),
    ] {
        let path = format!("{}/tests/fixtures/sip/{name}", env!("CARGO_MANIFEST_DIR"));
        let Ok(SipMessage::Response(resp)) =
            crate::sip::message::parse(&std::fs::read(path).unwrap(), 65_535)
        else {
            panic!("{name}");
        };
        let v = View::new(&resp.headers);
        let key = TxKey::client(v.branch.expect(name), v.method().expect(name));
        let mut layer: Layer<u8> = Layer::default();
        layer.handle(
            now,
            Input::NewClient {
                key: key.clone(),
                kind: Kind::InviteClient,
                bytes: Bytes::from_static(b"INVITE"),
                peer,
                owner: 9,
            },
        );
        let out = layer.handle(
            now,
            Input::Response {
                key: key.clone(),
                code: resp.status_code.code(),
                ack: None,
            },
        );
        assert_eq!(
            out,
            vec![Output::Deliver {
                key,
                owner: 9,
                code
            }],
            "{name}"
        );
    }
}

/// A retransmitted INVITE is absorbed by its transaction and never reaches the TU
/// as a new request.
#[test]
fn a_retransmitted_invite_is_absorbed() {
    let mut layer: Layer<u8> = Layer::default();
    let now = Instant::now();
    let peer: Peer = "udp:127.0.0.1:5070".parse().unwrap();
    let key = TxKey::server("z9hG4bK-3", Method::Invite);
    let first = layer.handle(
        now,
        Input::Request {
            key: key.clone(),
            ack: false,
        },
    );
    assert_eq!(first, vec![Output::Unmatched]);
    layer.handle(
        now,
        Input::NewServer {
            key: key.clone(),
            peer,
            request: request("invite.sip"),
            owner: 0,
        },
    );
    layer.handle(
        now,
        Input::Respond {
            key: key.clone(),
            code: 100,
            bytes: Bytes::from_static(b"SIP/2.0 100 Trying"),
        },
    );
    let again = layer.handle(
        now,
        Input::Request {
            key: key.clone(),
            ack: false,
        },
    );
    assert_eq!(
        again,
        vec![Output::Transmit {
            peer,
            bytes: Bytes::from_static(b"SIP/2.0 100 Trying")
        }]
    );
}
