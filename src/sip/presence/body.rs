//! Notification bodies: RFC 4235 dialog-info, RFC 3863 PIDF with RFC 4480 RPID
//! activities, and the text of an RFC 3428 instant message. Pure functions of a
//! [`WatchedState`]. Every string that comes from outside (names, numbers) is escaped
//! for XML, and numbers are percent-encoded before they go into a URI.

use std::fmt::Write as _;
use tsps_actors::presence::{Activity, DialogState, Hook, WatchedState};

pub const DIALOG_INFO: &str = "application/dialog-info+xml";
pub const PIDF: &str = "application/pidf+xml";

/// XML character data or attribute value: the five predefined entities, and the
/// characters XML 1.0 does not allow at all are dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The user part of a SIP URI for a number as received (a trunk's caller may send
/// anything): unreserved characters and `+` stay, everything else is %-encoded.
pub fn uri_user(number: &str) -> String {
    let mut out = String::with_capacity(number.len());
    for b in number.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*+".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn state_name(s: DialogState) -> &'static str {
    match s {
        DialogState::Trying => "trying",
        DialogState::Early => "early",
        DialogState::Confirmed => "confirmed",
        DialogState::Terminated => "terminated",
    }
}

/// A full-state dialog-info document (RFC 4235 §4): one `<dialog>` per call of the
/// watched user. `entity` is the watched user's address of record, `domain` the
/// tenant's (for the remote party's URI).
pub fn dialog_info(entity: &str, domain: &str, version: u32, state: &WatchedState) -> String {
    let mut s = String::with_capacity(256 + 320 * state.dialogs.len());
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" \
         state=\"full\" entity=\"{}\">\n",
        escape(entity)
    );
    for d in &state.dialogs {
        let direction = if d.initiator {
            "initiator"
        } else {
            "recipient"
        };
        let remote_uri = format!("sip:{}@{}", uri_user(&d.remote.number), domain);
        let display = d
            .remote
            .name
            .as_deref()
            .map(|n| format!(" display=\"{}\"", escape(n)))
            .unwrap_or_default();
        let _ = write!(
            s,
            "  <dialog id=\"{}\" direction=\"{direction}\">\n\
             \x20   <state>{}</state>\n\
             \x20   <local><identity>{}</identity></local>\n\
             \x20   <remote><identity{display}>{}</identity></remote>\n\
             \x20 </dialog>\n",
            d.call,
            state_name(d.state),
            escape(entity),
            escape(&remote_uri),
        );
    }
    s.push_str("</dialog-info>\n");
    s
}

fn activity_element(a: Activity) -> &'static str {
    match a {
        Activity::OnThePhone => "<rpid:on-the-phone/>",
        Activity::Busy => "<rpid:busy/>",
        Activity::Away => "<rpid:away/>",
        Activity::Meeting => "<rpid:meeting/>",
    }
}

/// A PIDF document (RFC 3863) with one tuple (basic open/closed) and a person element
/// carrying the RPID activity (RFC 4480), if any.
pub fn pidf(entity: &str, state: &WatchedState) -> String {
    let p = &state.presence;
    let basic = if p.open { "open" } else { "closed" };
    let entity = escape(entity);
    let mut s = String::with_capacity(640);
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{entity}\">\n\
         \x20 <tuple id=\"tsps\">\n\
         \x20   <status><basic>{basic}</basic></status>\n\
         \x20   <contact>{entity}</contact>\n\
         \x20   <note>{}</note>\n\
         \x20 </tuple>\n\
         \x20 <dm:person id=\"p\">\n",
        escape(p.note)
    );
    if let Some(a) = p.activity {
        let _ = writeln!(
            s,
            "    <rpid:activities>{}</rpid:activities>",
            activity_element(a)
        );
    }
    let _ = write!(
        s,
        "    <dm:note>{}</dm:note>\n  </dm:person>\n</presence>\n",
        escape(p.note)
    );
    s
}

/// The text of the instant message sent on a hook state change.
pub fn im_text(name: &str, extension: &str, hook: Hook) -> String {
    let what = match hook {
        Hook::Idle => "is available",
        Hook::Ringing => "is ringing",
        Hook::Dialing => "is calling",
        Hook::OnCall => "is on the phone",
        Hook::Held => "has a call on hold",
    };
    if name.is_empty() {
        format!("{extension} {what}")
    } else {
        format!("{name} ({extension}) {what}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsps_actors::lines::Peer;
    use tsps_actors::presence::{DialogView, PresenceView};
    use tsps_actors::{CallId, UserId};

    fn state(dialogs: Vec<DialogView>, presence: PresenceView) -> WatchedState {
        WatchedState {
            user: UserId::for_test(2),
            seq: 1,
            hook: Hook::Idle,
            dialogs,
            presence,
        }
    }

    fn available() -> PresenceView {
        PresenceView {
            open: true,
            activity: None,
            note: "Available",
        }
    }

    #[test]
    fn escaping_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("<a href=\"x\">Tom & Jerry's</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&apos;s&lt;/a&gt;"
        );
        assert_eq!(uri_user("+41 44<>\"@x"), "+41%2044%3C%3E%22%40x");
    }

    #[test]
    fn empty_dialog_info_is_full_state_with_a_version() {
        let body = dialog_info("sip:1002@a.test", "a.test", 0, &state(vec![], available()));
        assert_eq!(
            body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"0\" \
             state=\"full\" entity=\"sip:1002@a.test\">\n</dialog-info>\n"
        );
    }

    #[test]
    fn a_dialog_element_names_state_direction_and_both_parties_escaped() {
        let call = CallId::for_test(7);
        let d = DialogView {
            call,
            state: DialogState::Early,
            initiator: false,
            remote: Peer {
                number: "+41<44>".into(),
                name: Some("Alice \"<script>\" & Co".into()),
            },
            held: false,
        };
        let body = dialog_info("sip:1002@a.test", "a.test", 3, &state(vec![d], available()));
        let expected = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"3\" \
             state=\"full\" entity=\"sip:1002@a.test\">\n\
             \x20 <dialog id=\"{call}\" direction=\"recipient\">\n\
             \x20   <state>early</state>\n\
             \x20   <local><identity>sip:1002@a.test</identity></local>\n\
             \x20   <remote><identity display=\"Alice &quot;&lt;script&gt;&quot; &amp; Co\">\
             sip:+41%3C44%3E@a.test</identity></remote>\n\
             \x20 </dialog>\n\
             </dialog-info>\n"
        );
        assert_eq!(body, expected);
    }

    #[test]
    fn pidf_shows_basic_and_the_rpid_activity() {
        let on_phone = PresenceView {
            open: true,
            activity: Some(Activity::OnThePhone),
            note: "On the phone",
        };
        let body = pidf("sip:1002@a.test", &state(vec![], on_phone));
        assert_eq!(
            body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
             xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
             xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:1002@a.test\">\n\
             \x20 <tuple id=\"tsps\">\n\
             \x20   <status><basic>open</basic></status>\n\
             \x20   <contact>sip:1002@a.test</contact>\n\
             \x20   <note>On the phone</note>\n\
             \x20 </tuple>\n\
             \x20 <dm:person id=\"p\">\n\
             \x20   <rpid:activities><rpid:on-the-phone/></rpid:activities>\n\
             \x20   <dm:note>On the phone</dm:note>\n\
             \x20 </dm:person>\n\
             </presence>\n"
        );
        let closed = PresenceView {
            open: false,
            activity: None,
            note: "Offline",
        };
        let body = pidf("sip:1002@a.test", &state(vec![], closed));
        assert!(body.contains("<basic>closed</basic>"), "{body}");
        assert!(!body.contains("rpid:activities"), "{body}");
    }

    #[test]
    fn im_text_names_the_user_and_the_hook_state() {
        assert_eq!(
            im_text("Bob", "1002", Hook::OnCall),
            "Bob (1002) is on the phone"
        );
        assert_eq!(im_text("", "1002", Hook::Idle), "1002 is available");
    }
}
