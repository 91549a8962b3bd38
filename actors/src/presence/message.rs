//! Instant messages between users of one tenant: the chat beside a call in the portal,
//! and the text a caller gets when the callee's profile rejects the call with a
//! message (`Handling::RejectWithMessage`).
//!
//! A message is an event on the bus ([`Event::Message`]): the push hub puts it in the
//! recipient's stream (and the sender's, so every session of the sender shows the
//! conversation), and [`route_messages`] hands it to the SIP layer, which sends it as a
//! SIP `MESSAGE` (RFC 3428, `text/plain`) to each registered contact of the recipient,
//! From the sender's extension. Messages are not stored: they live in the streams'
//! replay rings like any other event, and are gone after that.
//!
//! Tenant wall: [`compose`] takes sender and recipient from the directory and refuses
//! a pair that is not of the given tenant.

use crate::directory::Directory;
use crate::events::{Event, EventBus};
pub use crate::events::{MessageEvent, MessageId};
use crate::ids::{CallId, TenantId, UserId};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::broadcast;
use tracing::{debug, warn};

/// Why a message cannot be composed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("no such sender in this tenant")]
    UnknownSender,
    #[error("no such recipient in this tenant")]
    UnknownRecipient,
}

/// A message from `from` to `to`, both users of `tenant` (anything else is refused:
/// nothing crosses a tenant).
pub fn compose(
    dir: &Directory,
    tenant: TenantId,
    from: UserId,
    to: UserId,
    text: String,
    call: Option<CallId>,
    at: DateTime<Utc>,
) -> Result<MessageEvent, MessageError> {
    let sender = dir
        .user(from)
        .filter(|u| u.tenant_id == tenant)
        .ok_or(MessageError::UnknownSender)?;
    let recipient = dir
        .user(to)
        .filter(|u| u.tenant_id == tenant)
        .ok_or(MessageError::UnknownRecipient)?;
    Ok(MessageEvent {
        id: MessageId::new(),
        tenant,
        from,
        from_extension: sender.extension.clone(),
        from_name: sender.display_name.clone(),
        to,
        to_extension: recipient.extension.clone(),
        text,
        call,
        at,
        local: true,
    })
}

/// Sends a message: on the bus for the streams (here and, in a cluster, on the other
/// nodes) and for this node's SIP layer.
pub fn send(bus: &EventBus, mut msg: MessageEvent) {
    msg.local = true;
    bus.publish(Event::Message(msg));
}

/// Whom the text of a call rejected with a message goes to: the calling user, or the
/// user whose external phone (a mobile, through the trunk) placed the call. None for
/// any other outside caller: a SIP MESSAGE through a trunk is not offered.
pub fn rejected_caller(
    dir: &Directory,
    tenant: TenantId,
    caller_user: Option<UserId>,
    caller_number: &str,
) -> Option<UserId> {
    if let Some(u) = caller_user {
        return Some(u);
    }
    let number = caller_number.trim();
    if number.is_empty() {
        return None;
    }
    dir.users()
        .filter(|u| u.tenant_id == tenant)
        .find(|u| {
            dir.external_phones_of_user(u.id)
                .any(|p| p.number == number || p.number.trim_start_matches('+') == number)
        })
        .map(|u| u.id)
}

/// The callee's profile rejected the call with `text`: the message to the caller (see
/// [`rejected_caller`]) from the callee, if one can be sent, and a note for the call's
/// reasons. Pure: the caller sends the message ([`send`]).
#[allow(clippy::too_many_arguments)]
pub fn on_reject(
    dir: &Directory,
    tenant: TenantId,
    call: CallId,
    callee: Option<UserId>,
    caller_user: Option<UserId>,
    caller_number: &str,
    text: String,
    now: DateTime<Utc>,
) -> (String, Option<MessageEvent>) {
    let Some(callee) = callee else {
        return ("message not sent: no callee".into(), None);
    };
    let Some(to) = rejected_caller(dir, tenant, caller_user, caller_number) else {
        let note = format!(
            "message not sent: outside caller {caller_number} (no instant messages through trunks)"
        );
        return (note, None);
    };
    match compose(dir, tenant, callee, to, text, Some(call), now) {
        Ok(msg) => (format!("message sent to {}", msg.to_extension), Some(msg)),
        Err(e) => (format!("message not sent: {e}"), None),
    }
}

/// The port toward the SIP layer: send this message as SIP MESSAGE to each registered
/// contact of its recipient.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct SendMessage(pub Arc<MessageEvent>);

/// Hands this node's messages from the bus to the SIP layer until the bus closes (run
/// it as a task): one shard per recipient (by user id), so a user's messages leave in
/// order. Messages of other nodes are left to them.
pub async fn route_messages(
    mut rx: broadcast::Receiver<Arc<Event>>,
    sip: Vec<Recipient<SendMessage>>,
) {
    if sip.is_empty() {
        return;
    }
    loop {
        match rx.recv().await {
            Ok(ev) => {
                let Event::Message(m) = &*ev else { continue };
                if !m.local {
                    continue;
                }
                let shard = (m.to.as_uuid().as_u128() % sip.len() as u128) as usize;
                debug!(id = %m.id, to = %m.to, "instant message to the recipient's phones");
                sip[shard].do_send(SendMessage(Arc::new(m.clone())));
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(missed = n, "instant messages fell behind the event bus");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DeviceId;
    use crate::model::{ExternalPhone, Tenant, User};

    fn dir() -> Directory {
        let (a, b) = (TenantId::for_test(1), TenantId::for_test(2));
        let tenant = |id, d: &str| Tenant {
            id,
            domain: d.into(),
            name: d.into(),
            time_zone: "UTC".into(),
        };
        let user = |n, tenant, ext: &str, name: &str| User {
            id: UserId::for_test(n),
            tenant_id: tenant,
            extension: ext.into(),
            display_name: name.into(),
            portal_login: None,
        };
        Directory::new(
            vec![tenant(a, "a.test"), tenant(b, "b.test")],
            vec![
                user(1, a, "1001", "Alice"),
                user(2, a, "1002", "Bob"),
                user(11, b, "1001", "Dave"),
            ],
            vec![],
            vec![],
            vec![],
        )
        .with_external_phones(vec![ExternalPhone {
            id: DeviceId::for_test(7),
            tenant_id: a,
            user_id: UserId::for_test(1),
            number: "+41790000001".into(),
            label: "Mobile".into(),
        }])
    }

    #[test]
    fn a_message_is_composed_inside_one_tenant_only() {
        let d = dir();
        let (a, b) = (TenantId::for_test(1), TenantId::for_test(2));
        let u = UserId::for_test;
        let m = compose(&d, a, u(1), u(2), "hi".into(), None, Utc::now()).unwrap();
        assert_eq!(
            (
                m.from_extension.as_str(),
                m.from_name.as_str(),
                m.to_extension.as_str()
            ),
            ("1001", "Alice", "1002")
        );
        assert!(m.local);
        assert_eq!(
            compose(&d, a, u(1), u(11), "x".into(), None, Utc::now()),
            Err(MessageError::UnknownRecipient),
            "tenant B's user is no recipient in tenant A"
        );
        assert_eq!(
            compose(&d, b, u(1), u(11), "x".into(), None, Utc::now()),
            Err(MessageError::UnknownSender)
        );
        assert_eq!(
            compose(&d, a, u(1), u(9), "x".into(), None, Utc::now()),
            Err(MessageError::UnknownRecipient)
        );
    }

    #[test]
    fn the_rejected_caller_is_a_user_or_the_owner_of_an_external_phone() {
        let d = dir();
        let a = TenantId::for_test(1);
        let u = UserId::for_test;
        assert_eq!(rejected_caller(&d, a, Some(u(2)), "1002"), Some(u(2)));
        assert_eq!(rejected_caller(&d, a, None, "+41790000001"), Some(u(1)));
        assert_eq!(rejected_caller(&d, a, None, "41790000001"), Some(u(1)));
        assert_eq!(rejected_caller(&d, a, None, "+41790000002"), None);
        assert_eq!(rejected_caller(&d, a, None, ""), None);
        // Another tenant's phone numbers are not looked at.
        assert_eq!(
            rejected_caller(&d, TenantId::for_test(2), None, "+41790000001"),
            None
        );
    }

    #[actix::test]
    async fn only_this_nodes_messages_go_to_the_sip_layer() {
        struct Sip(tokio::sync::mpsc::UnboundedSender<Arc<MessageEvent>>);
        impl Actor for Sip {
            type Context = Context<Self>;
        }
        impl Handler<SendMessage> for Sip {
            type Result = ();
            fn handle(&mut self, m: SendMessage, _: &mut Self::Context) {
                let _ = self.0.send(m.0);
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sip = Sip(tx).start().recipient();
        let bus = EventBus::new(16);
        let task = tokio::spawn(route_messages(bus.subscribe(), vec![sip]));
        let d = dir();
        let a = TenantId::for_test(1);
        let (alice, bob) = (UserId::for_test(1), UserId::for_test(2));
        let mut remote = compose(&d, a, alice, bob, "from afar".into(), None, Utc::now()).unwrap();
        remote.local = false;
        bus.publish_here(Event::Message(remote));
        send(
            &bus,
            compose(&d, a, bob, alice, "here".into(), None, Utc::now()).unwrap(),
        );
        let m = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.text, "here", "the other node's message is not sent again");
        assert!(rx.try_recv().is_err());
        task.abort();
    }
}
