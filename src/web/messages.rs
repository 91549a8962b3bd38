//! `POST /tenants/{tenant_id}/users/{user_id}/messages`: an instant message from the
//! user to a colleague of the same tenant (the chat beside a call in the portal). It
//! reaches the recipient's event stream as a `message` and the recipient's SIP phones
//! as a SIP MESSAGE; nothing is stored (see `tsps_actors::presence::message`).

use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::{rule_schemas, ApiState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tsps_actors::feature::profile::check_message;
use tsps_actors::presence::message::{compose, MessageEvent, MessageId};
use tsps_actors::{CallId, Directory, TenantId, UserId};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// The recipient: a user id or an extension of the same tenant.
    #[schema(example = "1002")]
    pub to: String,
    #[schema(schema_with = rule_schemas::message_text)]
    pub text: String,
    /// The call the message is about (the portal's chat on a line).
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub call_id: Option<CallId>,
}

/// The message as sent; the same fields reach the recipient's stream (docs/events.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct SentMessage {
    #[schema(value_type = uuid::Uuid)]
    pub id: MessageId,
    #[schema(value_type = uuid::Uuid)]
    pub from: UserId,
    pub from_extension: String,
    pub from_name: String,
    #[schema(value_type = uuid::Uuid)]
    pub to: UserId,
    pub to_extension: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub call_id: Option<CallId>,
    pub at: DateTime<Utc>,
}

impl From<&MessageEvent> for SentMessage {
    fn from(m: &MessageEvent) -> Self {
        SentMessage {
            id: m.id,
            from: m.from,
            from_extension: m.from_extension.clone(),
            from_name: m.from_name.clone(),
            to: m.to,
            to_extension: m.to_extension.clone(),
            text: m.text.clone(),
            call_id: m.call,
            at: m.at,
        }
    }
}

/// Sends an instant message to a colleague: their event stream gets a `message`, their
/// registered SIP phones a MESSAGE (text/plain, from the sender's extension). Not
/// stored; a recipient of another tenant is not found.
#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/messages", tag = "events",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = MessageBody,
    responses((status = 202, body = SentMessage, description = "on its way"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such sender or recipient in this tenant"),
        (status = 422, body = ErrorBody, description = "`invalid_message`: the text is \
            empty, longer than 500 characters or has control characters; a message to oneself"),
        (status = 503, body = ErrorBody, description = "messages cannot be delivered now")))]
pub async fn send_message(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<(StatusCode, Json<SentMessage>), ApiError> {
    let dir = st.directory.get();
    if dir.user(user_id).is_none_or(|u| u.tenant_id != tenant_id) {
        return Err(ApiError::not_found(format!("user not found: {user_id}")));
    }
    let to = recipient(&dir, tenant_id, &body.to)
        .ok_or_else(|| ApiError::not_found("no such recipient in this tenant"))?;
    let mut issues = Vec::new();
    if let Err(reason) = check_message(&body.text) {
        issues.push(FieldIssue::new("text", reason));
    }
    if to == user_id {
        issues.push(FieldIssue::new("to", "a message to oneself"));
    }
    if !issues.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_message",
            "invalid message",
            issues,
        ));
    }
    let msg = compose(
        &dir,
        tenant_id,
        user_id,
        to,
        body.text,
        body.call_id,
        st.clock.now(),
    )
    .map_err(|e| ApiError::not_found(e.to_string()))?;
    let sent = SentMessage::from(&msg);
    if !st.live.send_message(msg) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "messages cannot be delivered now",
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

/// `to` as a user id or an extension, among the users of `tenant` only.
fn recipient(dir: &Directory, tenant: TenantId, to: &str) -> Option<UserId> {
    let to = to.trim();
    match to.parse::<UserId>() {
        Ok(id) => dir.user(id).filter(|u| u.tenant_id == tenant).map(|u| u.id),
        Err(_) => dir.user_by_extension(tenant, to).map(|u| u.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsps_actors::events::Event;
    use tsps_actors::model::{Tenant, User};

    fn dir() -> Directory {
        let tenant = |n, d: &str| Tenant {
            id: TenantId::for_test(n),
            domain: d.into(),
            name: d.into(),
            time_zone: "UTC".into(),
        };
        let user = |n, t, ext: &str| User {
            id: UserId::for_test(n),
            tenant_id: TenantId::for_test(t),
            extension: ext.into(),
            display_name: format!("User {ext}"),
            portal_login: None,
        };
        Directory::new(
            vec![tenant(1, "a.test"), tenant(2, "b.test")],
            vec![user(1, 1, "1001"), user(2, 1, "1002"), user(11, 2, "1002")],
            vec![],
            vec![],
            vec![],
        )
    }

    #[test]
    fn the_recipient_is_an_id_or_an_extension_of_the_same_tenant() {
        let (d, a) = (dir(), TenantId::for_test(1));
        let u = UserId::for_test;
        assert_eq!(recipient(&d, a, "1002"), Some(u(2)));
        assert_eq!(recipient(&d, a, " 1002 "), Some(u(2)));
        assert_eq!(recipient(&d, a, &u(2).to_string()), Some(u(2)));
        // Tenant B's user, by id or by its (shared) extension: never reached from A.
        assert_eq!(recipient(&d, a, &u(11).to_string()), None);
        assert_eq!(
            recipient(&d, TenantId::for_test(2), "1002"),
            Some(u(11)),
            "B's own 1002"
        );
        assert_eq!(recipient(&d, a, "1009"), None);
        assert_eq!(recipient(&d, a, ""), None);
    }

    #[test]
    fn a_message_crosses_nodes_without_its_local_mark() {
        let m = compose(
            &dir(),
            TenantId::for_test(1),
            UserId::for_test(1),
            UserId::for_test(2),
            "hi".into(),
            Some(CallId::for_test(3)),
            Utc::now(),
        )
        .unwrap();
        let wire = serde_json::to_string(&Event::Message(m.clone())).unwrap();
        assert!(!wire.contains("local"), "{wire}");
        let Event::Message(back) = serde_json::from_str(&wire).unwrap() else {
            panic!("a message")
        };
        assert!(
            !back.local,
            "another node's SIP layer does not send it again"
        );
        assert_eq!(
            MessageEvent {
                local: true,
                ..back
            },
            m
        );
        let view = serde_json::to_value(SentMessage::from(&m)).unwrap();
        assert_eq!(view["call_id"], serde_json::json!(CallId::for_test(3)));
        assert_eq!(view["from_extension"], "1001");
    }
}
