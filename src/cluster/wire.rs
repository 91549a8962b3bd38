//! What nodes say to each other through Redis, and the names of the channels and keys.
//!
//! Every message is one JSON object: `{"node": "<sender>", "msg": "<kind>", ...}`. The
//! bus events inside keep their own serde shape (`actors/src/events.rs`), so a node
//! re-publishes exactly what the sender published.

use serde::{Deserialize, Serialize};
use std::fmt;
use tsps_actors::events::{CallEvent, Event, StatusEvent};
use tsps_actors::model::Binding;
use tsps_actors::user::BindingChange;
use tsps_actors::{TenantId, UserId};

/// One running tsps process: random at start unless configured (`redis.node_id`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl NodeId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message with its sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wire {
    pub node: NodeId,
    #[serde(flatten)]
    pub msg: Msg,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum Msg {
    /// A call event of the sender's, or the sender's own part of a user's status
    /// (its calls only). Device events do not travel: bindings do.
    Event { event: Event },
    /// The sender's whole live state, after a gap: every event so far of each of its
    /// live calls, and its users that are not idle. Sent on the events channel, so it
    /// is ordered with the sender's events.
    Sync {
        calls: Vec<Vec<CallEvent>>,
        statuses: Vec<StatusEvent>,
    },
    /// Registration changes the sender took (the hash is written before).
    Bindings {
        tenant: TenantId,
        user: UserId,
        changes: Vec<BindingChange>,
    },
    /// The sender is alive (every [`super::HEARTBEAT`]).
    Heartbeat,
    /// The sender (re)connected: every node answers with its `Sync`.
    Hello,
    /// The sender stops: its calls and hook states end now.
    Bye,
    /// Feature-server data of a user changed in the store (reload the user actor).
    UserChanged { tenant: TenantId, user: UserId },
    /// Feature-server data every user of a tenant sees changed.
    TenantChanged { tenant: TenantId },
    /// Provisioning changed (reload the directory).
    DirectoryChanged,
}

impl Wire {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("wire messages serialize")
    }

    pub fn decode(payload: &[u8]) -> Result<Wire, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

/// What is kept in a user's bindings hash: the binding and the node that took it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBinding {
    pub node: NodeId,
    pub binding: Binding,
}

/// Channel and key names under the configured prefix (`redis.prefix`, `tsps:` by
/// default), so that several clusters (or parallel tests) can share one Redis.
#[derive(Clone, Debug)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// Call events, statuses and syncs.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Registration changes.
    pub fn bindings(&self) -> String {
        format!("{}bindings", self.prefix)
    }

    /// Heartbeats, hello and bye, store changes.
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// The hash of one user's bindings (tenant first: tenancy by key).
    pub fn bindings_key(&self, tenant: TenantId, user: UserId) -> String {
        format!("{}bindings:{tenant}:{user}", self.prefix)
    }

    /// The field of one binding in its user's hash: device and contact.
    pub fn binding_field(b: &Binding) -> String {
        format!("{}|{}", b.device_id, b.contact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use tsps_actors::events::{CallEventKind, DeviceEvent};
    use tsps_actors::feature::Presence;
    use tsps_actors::model::{CallDirection, CallOutcome, Party};
    use tsps_actors::user::UserStatus;
    use tsps_actors::{CallId, DeviceId, LegId};

    fn at() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 2).unwrap()
    }

    fn call(kind: CallEventKind) -> Event {
        Event::Call(CallEvent {
            call: CallId::for_test(1),
            tenant: TenantId::for_test(2),
            at: at(),
            kind,
        })
    }

    fn roundtrip(e: &Event) {
        let text = serde_json::to_string(e).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, e, "{text}");
    }

    /// Every kind of event survives the trip between nodes unchanged.
    #[test]
    fn every_event_round_trips() {
        let leg = LegId::for_test(3);
        let user = Some(UserId::for_test(4));
        let kinds = vec![
            CallEventKind::Started {
                direction: CallDirection::Internal,
                caller: "1001".into(),
                callee: "1002".into(),
                caller_user: user,
                callee_user: None,
                caller_leg: Some(leg),
            },
            CallEventKind::Decided {
                user: UserId::for_test(4),
                contact: Some("Carol".into()),
                reasons: vec!["1002: ring devices".into()],
                attendant: true,
            },
            CallEventKind::Overridden {
                action: "forward".into(),
            },
            CallEventKind::LegDialing {
                leg,
                target: "sip:1002@127.0.0.1:5070".into(),
                side: Party::Callee,
                user,
                device: Some(DeviceId::for_test(5)),
            },
            CallEventKind::LegEnded {
                leg,
                code: Some(486),
            },
            CallEventKind::LegJoined {
                leg,
                side: Party::Caller,
                user: None,
                device: None,
                number: "+41445550100".into(),
                from_call: CallId::for_test(9),
            },
            CallEventKind::PartyChanged {
                side: Party::Callee,
                number: "1003".into(),
                user,
            },
            CallEventKind::Ringing { leg },
            CallEventKind::Answered { leg },
            CallEventKind::MediaChanged {
                by: Party::Caller,
                held: true,
            },
            CallEventKind::Ended {
                outcome: CallOutcome::NoAnswer,
                hangup_by: None,
            },
        ];
        for k in kinds {
            roundtrip(&call(k));
        }
        roundtrip(&Event::Device(DeviceEvent {
            tenant: TenantId::for_test(2),
            user: UserId::for_test(4),
            device: DeviceId::for_test(5),
            contacts: 2,
            at: at(),
        }));
        roundtrip(&Event::Status(StatusEvent {
            tenant: TenantId::for_test(2),
            user: UserId::for_test(4),
            presence: Presence::InMeeting,
            hook: UserStatus::Ringing,
            registered: true,
            dnd: false,
            at: at(),
        }));
    }

    /// The events keep the JSON shape they had before they travelled (flat, with the
    /// `event` tag), with the variant named in `type`.
    #[test]
    fn events_keep_their_json_shape() {
        let e = call(CallEventKind::Ringing {
            leg: LegId::for_test(3),
        });
        let Event::Call(inner) = &e else {
            unreachable!()
        };
        let mut flat = serde_json::to_value(inner).unwrap();
        assert_eq!(
            flat,
            json!({
                "call": CallId::for_test(1),
                "tenant": TenantId::for_test(2),
                "at": "2026-11-21T10:15:02Z",
                "event": "ringing",
                "leg": LegId::for_test(3),
            })
        );
        flat["type"] = json!("call");
        assert_eq!(serde_json::to_value(&e).unwrap(), flat);
        let s = StatusEvent {
            tenant: TenantId::for_test(2),
            user: UserId::for_test(4),
            presence: Presence::Available,
            hook: UserStatus::Busy,
            registered: true,
            dnd: false,
            at: at(),
        };
        assert_eq!(
            serde_json::to_value(Event::Status(s)).unwrap(),
            json!({
                "type": "status",
                "tenant": TenantId::for_test(2),
                "user": UserId::for_test(4),
                "presence": "available",
                "hook": "busy",
                "registered": true,
                "dnd": false,
                "at": "2026-11-21T10:15:02Z",
            })
        );
    }

    #[test]
    fn messages_round_trip_with_their_sender() {
        let node = NodeId("n1".into());
        let binding = Binding {
            tenant_id: TenantId::for_test(2),
            user_id: UserId::for_test(4),
            device_id: DeviceId::for_test(5),
            contact: "sip:1002@127.0.0.1:5070".into(),
            received: "udp:127.0.0.1:5070".into(),
            expires_at: at(),
            call_id: "r1".into(),
            cseq: 3,
        };
        let msgs = vec![
            Msg::Event {
                event: call(CallEventKind::Answered {
                    leg: LegId::for_test(3),
                }),
            },
            Msg::Sync {
                calls: vec![vec![]],
                statuses: vec![],
            },
            Msg::Bindings {
                tenant: TenantId::for_test(2),
                user: UserId::for_test(4),
                changes: vec![
                    BindingChange::Saved(binding.clone()),
                    BindingChange::Removed(binding),
                ],
            },
            Msg::Heartbeat,
            Msg::Hello,
            Msg::Bye,
            Msg::UserChanged {
                tenant: TenantId::for_test(2),
                user: UserId::for_test(4),
            },
            Msg::TenantChanged {
                tenant: TenantId::for_test(2),
            },
            Msg::DirectoryChanged,
        ];
        for msg in msgs {
            let w = Wire {
                node: node.clone(),
                msg,
            };
            let text = w.encode();
            assert_eq!(Wire::decode(text.as_bytes()).unwrap(), w, "{text}");
        }
        let hb = Wire {
            node,
            msg: Msg::Heartbeat,
        };
        assert_eq!(hb.encode(), r#"{"node":"n1","msg":"heartbeat"}"#);
        assert!(Wire::decode(b"{\"node\":\"n1\",\"msg\":\"nonsense\"}").is_err());
    }

    #[test]
    fn names_carry_the_prefix_and_the_tenant() {
        let n = Names::new("t7:");
        assert_eq!(n.events(), "t7:events");
        assert_eq!(n.nodes(), "t7:nodes");
        assert_eq!(
            n.bindings_key(TenantId::for_test(1), UserId::for_test(2)),
            format!(
                "t7:bindings:{}:{}",
                TenantId::for_test(1),
                UserId::for_test(2)
            )
        );
    }
}

#[cfg(test)]
mod older_nodes {
    use tsps_actors::events::Event;

    /// A status from a node without `registered` and `dnd` reads as reachable, not
    /// do-not-disturb.
    #[test]
    fn a_status_without_reachability_is_reachable() {
        let e: Event = serde_json::from_value(serde_json::json!({
            "type": "status",
            "tenant": "00000000-0000-0000-0000-000000000002",
            "user": "00000000-0000-0000-0000-000000000004",
            "presence": "available",
            "hook": "busy",
            "at": "2026-11-21T10:15:02Z",
        }))
        .unwrap();
        let Event::Status(s) = e else { panic!() };
        assert!(s.registered && !s.dnd);
    }
}
