//! The shard's notifier: SUBSCRIBE in and NOTIFY/MESSAGE out (RFC 6665, RFC 4235,
//! RFC 3856, RFC 3428), and the users' instant messages to each other (chat, a call
//! rejected with a message) as MESSAGE to the recipient's phones. A subscription's dialog and its NOTIFY transactions belong to
//! the shard that received the SUBSCRIBE (by Call-ID, like every dialog); the tenant's
//! presence actor says when the watched user's state changed ([`WatcherUpdate`]).
//! The decisions are sans-IO (`sip::presence`); this file only executes them.

use super::*;
use crate::sip::presence::stats::Outcome;
use crate::sip::presence::subscription::{Input, Output, Phase, SubState};
use crate::sip::presence::{
    accepts, authorize, body, content_type, grant, may_watch, package_of, wants_im, SubDialog,
    SubEntry, Subscription, ALLOW_EVENTS,
};
use tsps_actors::presence::message::SendMessage;
use tsps_actors::presence::{
    Package, SubscriptionId, Unwatch, Watch, WatchError, WatchedState, WatcherUpdate,
};
use tsps_actors::user::GetBindings;

/// `Event` or its compact form `o` (RFC 6665 §8.2.1).
fn event_header(req: &Request) -> Option<&str> {
    h::first(&req.headers, "Event").or_else(|| h::first(&req.headers, "o"))
}

impl Shard {
    /// A SUBSCRIBE: out of dialog it creates a subscription, in dialog it refreshes or
    /// ends one.
    pub(super) fn on_subscribe(
        &mut self,
        req: &Arc<Request>,
        peer: Peer,
        key: TxKey,
        ctx: &mut Context<Self>,
    ) {
        let Some((package, _)) = event_header(req).and_then(package_of) else {
            self.refuse_subscribe(&key, 489, false, &[("Allow-Events", ALLOW_EVENTS)]);
            return;
        };
        let to_tag = h::first(&req.headers, "To").and_then(|t| h::param(t, "tag"));
        if to_tag.is_some() {
            self.on_resubscribe(req, key, package);
        } else {
            self.on_new_subscribe(req, peer, key, package, ctx);
        }
    }

    /// Refuses a SUBSCRIBE (counted by code): out of dialog with a fresh To tag, in
    /// dialog with the subscription's.
    fn refuse_subscribe(
        &mut self,
        key: &TxKey,
        code: u16,
        in_dialog: bool,
        extra: &[(&str, &str)],
    ) {
        self.ctx.presence_stats.rejected(code);
        let tag = (!in_dialog).then(build::token);
        self.respond(key, code, tag.as_deref(), extra, None);
    }

    fn requested_expires(req: &Request) -> Option<u32> {
        h::first(&req.headers, "Expires").and_then(|v| v.trim().parse::<u32>().ok())
    }

    fn on_new_subscribe(
        &mut self,
        req: &Arc<Request>,
        peer: Peer,
        key: TxKey,
        package: Package,
        ctx: &mut Context<Self>,
    ) {
        let accept = h::all(&req.headers, "Accept");
        if !accepts(&accept, package) {
            self.refuse_subscribe(&key, 406, false, &[("Accept", content_type(package))]);
            return;
        }
        let granted = match grant(Self::requested_expires(req), &self.ctx.settings.presence) {
            Ok(g) => g,
            Err(min) => {
                let min = min.to_string();
                self.refuse_subscribe(&key, 423, false, &[("Min-Expires", &min)]);
                return;
            }
        };
        let from = h::first(&req.headers, "From").unwrap_or("").to_string();
        let domain = h::uri_host(h::uri(&from)).to_ascii_lowercase();
        let dir = self.ctx.directory.current();
        let Some(tenant) = dir.tenant_by_domain(&domain).cloned() else {
            self.authenticate(req, peer, &key, &domain, None, true);
            return;
        };
        let Some(device) =
            self.authenticate(req, peer, &key, &tenant.domain, Some(tenant.id), true)
        else {
            return;
        };
        let Some(watcher) = dir.user(device.user_id).cloned() else {
            self.refuse_subscribe(&key, 403, false, &[]);
            return;
        };
        let target = req.uri.to_string();
        let watched = match authorize(&dir, &tenant, &watcher, &target) {
            Ok(u) => u.clone(),
            Err(r) => {
                debug!(watcher = %watcher.id, %target, code = r.code(), "subscription refused");
                self.refuse_subscribe(&key, r.code(), false, &[]);
                return;
            }
        };
        let (Some(contact), Some(remote_tag)) = (
            h::first(&req.headers, "Contact"),
            h::param(&from, "tag").map(str::to_string),
        ) else {
            self.refuse_subscribe(&key, 400, false, &[]);
            return;
        };
        let event = match package_of(event_header(req).unwrap_or("")) {
            Some((Package::Dialog, id)) => with_id("dialog", id),
            Some((Package::Presence, id)) => with_id("presence", id),
            None => return,
        };
        let dialog = SubDialog {
            call_id: h::first(&req.headers, "Call-ID").unwrap_or("").to_string(),
            local_tag: build::token(),
            remote_tag,
            local_party: build::strip_tag(h::first(&req.headers, "To").unwrap_or("")),
            remote_party: build::strip_tag(&from),
            local_cseq: 0,
            remote_cseq: h::first(&req.headers, "CSeq")
                .and_then(h::cseq)
                .map(|c| c.0)
                .unwrap_or(0),
            remote_target: h::uri(contact).to_string(),
            route_set: h::all(&req.headers, "Record-Route")
                .into_iter()
                .map(str::to_string)
                .collect(),
            peer,
            event,
            entity: format!("sip:{}@{}", watched.extension, tenant.domain),
            domain: tenant.domain.clone(),
            watched_name: watched.display_name.clone(),
            watched_extension: watched.extension.clone(),
            watcher: watcher.id,
            watcher_aor: format!("<sip:{}@{}>", watcher.extension, tenant.domain),
        };
        let id = SubscriptionId::next();
        self.subscriptions.insert(
            id,
            SubEntry {
                dialog,
                machine: Subscription::new(package),
                tenant: tenant.id,
            },
        );
        let watch = Watch {
            sub: id,
            watched: watched.id,
            watcher_device: device.id,
            package,
            im: wants_im(&target),
            per_device_limit: self.ctx.settings.presence.max_per_device,
            tenant_limit: dir
                .subscription_limit(tenant.id)
                .map_or(self.ctx.settings.presence.max_per_tenant, |n| n as usize),
            user_actor: self.ctx.actors.user(watched.id),
            updates: ctx.address().recipient(),
        };
        debug!(sub = %id, watcher = %watcher.id, watched = %watched.id, ?package, "subscribe");
        self.ctx
            .actors
            .presence(tenant.id)
            .send(watch)
            .into_actor(self)
            .map(move |res, act, _| act.on_watch_answer(id, key, granted, res))
            .spawn(ctx);
    }

    fn on_watch_answer(
        &mut self,
        id: SubscriptionId,
        key: TxKey,
        granted: u32,
        res: Result<Result<Arc<WatchedState>, WatchError>, MailboxError>,
    ) {
        let Some(entry) = self.subscriptions.subs.get(&id) else {
            return;
        };
        match res {
            Ok(Ok(state)) => {
                let tag = entry.dialog.local_tag.clone();
                let peer = entry.dialog.peer;
                let contact = self.ctx.contact(entry.dialog.peer.proto);
                let expires = granted.to_string();
                self.respond(
                    &key,
                    200,
                    Some(&tag),
                    &[("Expires", &expires), ("Contact", &contact)],
                    None,
                );
                let expires = Duration::from_secs(granted.into());
                self.keep_connection(peer, expires);
                self.sub_input(id, Input::Accepted { state, expires });
            }
            Ok(Err(e)) => {
                info!(sub = %id, error = %e, "subscription refused");
                self.refuse_subscribe(&key, 403, false, &[]);
                self.sub_input(id, Input::Refused);
            }
            Err(e) => {
                warn!(sub = %id, error = %e, "presence actor unavailable for SUBSCRIBE");
                self.refuse_subscribe(&key, 500, false, &[("Retry-After", "5")]);
                self.sub_input(id, Input::Refused);
            }
        }
    }

    /// A SUBSCRIBE in an existing subscription's dialog: refresh or unsubscribe.
    fn on_resubscribe(&mut self, req: &Arc<Request>, key: TxKey, package: Package) {
        let call_id = h::first(&req.headers, "Call-ID").unwrap_or("");
        let to_tag = h::first(&req.headers, "To")
            .and_then(|t| h::param(t, "tag"))
            .unwrap_or("");
        let Some(id) = self.subscriptions.of_dialog(call_id, to_tag) else {
            self.refuse_subscribe(&key, 481, true, &[]);
            return;
        };
        let cseq = h::first(&req.headers, "CSeq")
            .and_then(h::cseq)
            .map(|c| c.0)
            .unwrap_or(0);
        let granted = grant(Self::requested_expires(req), &self.ctx.settings.presence);
        let Some(entry) = self.subscriptions.subs.get_mut(&id) else {
            return;
        };
        if entry.machine.phase != Phase::Active {
            self.refuse_subscribe(&key, 481, true, &[]);
            return;
        }
        if cseq <= entry.dialog.remote_cseq {
            self.refuse_subscribe(&key, 500, true, &[("Retry-After", "1")]);
            return;
        }
        entry.dialog.remote_cseq = cseq;
        if entry.machine.package != package {
            self.refuse_subscribe(&key, 489, true, &[("Allow-Events", ALLOW_EVENTS)]);
            return;
        }
        let granted = match granted {
            Ok(g) => g,
            Err(min) => {
                let min = min.to_string();
                self.refuse_subscribe(&key, 423, true, &[("Min-Expires", &min)]);
                return;
            }
        };
        // The subscriber table may have changed since the subscription began: a
        // refresh is authorized again (an unsubscribe always goes through).
        let dir = self.ctx.directory.current();
        let allowed = granted == 0
            || dir
                .user(entry.dialog.watcher)
                .zip(dir.user_by_extension(entry.tenant, &entry.dialog.watched_extension))
                .is_some_and(|(watcher, watched)| may_watch(&dir, watcher, watched));
        if !allowed {
            debug!(sub = %id, "refresh of a subscription no longer allowed");
            self.refuse_subscribe(&key, 403, true, &[]);
            self.sub_input(id, Input::Revoke);
            return;
        }
        if let Some(c) = h::first(&req.headers, "Contact") {
            entry.dialog.remote_target = h::uri(c).to_string();
        }
        let peer = entry.dialog.peer;
        let contact = self.ctx.contact(peer.proto);
        let expires = granted.to_string();
        self.respond(
            &key,
            200,
            None,
            &[("Expires", &expires), ("Contact", &contact)],
            None,
        );
        let input = if granted == 0 {
            Input::Unsubscribe
        } else {
            let expires = Duration::from_secs(granted.into());
            self.keep_connection(peer, expires);
            Input::Refresh { expires }
        };
        self.sub_input(id, input);
    }

    /// NOTIFYs go back over the connection the SUBSCRIBE came on: keep it open as long
    /// as the subscription (and a little).
    fn keep_connection(&self, peer: Peer, expires: Duration) {
        if peer.proto.is_reliable() {
            self.ctx
                .transports
                .keep_alive(peer.addr, expires + Duration::from_secs(32));
        }
    }

    /// Feeds the subscription's state machine and executes what it says.
    fn sub_input(&mut self, id: SubscriptionId, input: Input) {
        let Some(entry) = self.subscriptions.subs.get_mut(&id) else {
            return;
        };
        let (was, folded) = (entry.machine.phase, entry.machine.folded());
        let outputs = entry.machine.handle(Instant::now(), input);
        let (m, stats) = (&entry.machine, &self.ctx.presence_stats);
        // The gauge counts active subscriptions: granted, not ended.
        match (was == Phase::Active, m.phase == Phase::Active) {
            (false, true) => stats.subscription_started(m.package),
            (true, false) => stats.subscription_ended(m.package),
            _ => {}
        }
        stats.folded(m.folded() - folded);
        for out in outputs {
            match out {
                Output::Notify {
                    state,
                    version,
                    sub_state,
                } => self.send_notify(id, &state, version, sub_state),
                Output::Im(state) => self.subscriptions.pending_im.push((id, state)),
                Output::Timer(at) => self.subscriptions.timers.schedule(at, id),
                Output::Unwatch => {
                    if let Some(e) = self.subscriptions.subs.get(&id) {
                        self.ctx
                            .actors
                            .presence(e.tenant)
                            .do_send(Unwatch { sub: id });
                    }
                }
                Output::Remove => {
                    debug!(sub = %id, "subscription over");
                    self.subscriptions.remove(id);
                }
            }
        }
    }

    fn send_notify(
        &mut self,
        id: SubscriptionId,
        state: &WatchedState,
        version: u32,
        sub_state: SubState,
    ) {
        let Some(entry) = self.subscriptions.subs.get_mut(&id) else {
            return;
        };
        let package = entry.machine.package;
        let d = &mut entry.dialog;
        d.local_cseq += 1;
        let body = match package {
            Package::Dialog => body::dialog_info(&d.entity, &d.domain, version, state),
            Package::Presence => body::pidf(&d.entity, state),
        };
        let branch = build::branch();
        let via = self.ctx.via(d.peer.proto, &branch);
        let contact = self.ctx.contact(d.peer.proto);
        let from = format!("{};tag={}", d.local_party, d.local_tag);
        let to = format!("{};tag={}", d.remote_party, d.remote_tag);
        let extra = [
            ("Event", d.event.clone()),
            ("Subscription-State", sub_state.header()),
        ];
        let bytes = build::request_typed(
            &RequestSpec {
                method: "NOTIFY",
                uri: &d.remote_target,
                via: &via,
                from: &from,
                to: &to,
                call_id: &d.call_id,
                cseq: d.local_cseq,
                max_forwards: 70,
                contact: Some(&contact),
                routes: &d.route_set,
                extra: &extra,
                body: Some(body.as_bytes()),
            },
            content_type(package),
        );
        let peer = d.peer;
        self.subscriptions.notifies.insert(branch.clone(), id);
        let key = TxKey {
            branch: branch.into(),
            method: Method::Notify,
            server: false,
        };
        self.start_client(key, Kind::NonInviteClient, bytes, peer, None);
    }

    /// Sends the instant messages decided so far: looks up the watcher's registered
    /// contacts (the user actor owns them), then sends one MESSAGE to each.
    fn flush_im(&mut self, ctx: &mut Context<Self>) {
        for (id, state) in std::mem::take(&mut self.subscriptions.pending_im) {
            let Some(entry) = self.subscriptions.subs.get(&id) else {
                continue;
            };
            let d = &entry.dialog;
            let im = Im {
                text: body::im_text(&d.watched_name, &d.watched_extension, state.hook),
                from_name: d.watched_name.clone(),
                from: d.entity.clone(),
                to: d.watcher_aor.clone(),
            };
            let watcher = d.watcher;
            self.im_to_user(watcher, im, ctx);
        }
    }

    /// Sends `im` to each registered contact of `user` (the user actor owns them).
    fn im_to_user(&mut self, user: tsps_actors::UserId, im: Im, ctx: &mut Context<Self>) {
        let Some(actor) = self.ctx.actors.user(user) else {
            return;
        };
        actor
            .send(GetBindings)
            .into_actor(self)
            .map(move |res, act, _| match res {
                Ok(bindings) => {
                    for b in bindings {
                        act.send_im(&im, &b);
                    }
                }
                Err(e) => warn!(error = %e, "user actor unavailable for an instant message"),
            })
            .spawn(ctx);
    }

    /// An out-of-dialog MESSAGE (RFC 3428) to one registered contact of the watcher:
    /// the watched user's new hook state in plain text, from the watched user's address.
    fn send_im(&mut self, im: &Im, b: &tsps_actors::model::Binding) {
        let peer = contact_peer(&b.contact, b.received.parse().ok(), |addr| {
            self.ctx.transports.is_connected(addr)
        });
        let Some(peer) = peer else {
            debug!(contact = %b.contact, "cannot reach the watcher's contact");
            return;
        };
        let name: String = im
            .from_name
            .chars()
            .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
            .collect();
        let from = format!("\"{name}\" <{}>;tag={}", im.from, build::token());
        let call_id = format!("tsps{}.{}", self.idx, uuid::Uuid::new_v4().simple());
        let branch = build::branch();
        let via = self.ctx.via(peer.proto, &branch);
        let bytes = build::request_typed(
            &RequestSpec {
                method: "MESSAGE",
                uri: &b.contact,
                via: &via,
                from: &from,
                to: &im.to,
                call_id: &call_id,
                cseq: 1,
                max_forwards: 70,
                contact: None,
                routes: &[],
                extra: &[],
                body: Some(im.text.as_bytes()),
            },
            "text/plain;charset=UTF-8",
        );
        let key = TxKey {
            branch: branch.into(),
            method: Method::Message,
            server: false,
        };
        self.start_client(key, Kind::NonInviteClient, bytes, peer, None);
    }

    /// A final response to a request of ours that belongs to no leg.
    pub(super) fn on_uac_response(&mut self, key: &TxKey, code: u16) {
        match key.method {
            Method::Notify => {
                self.ctx.presence_stats.notify_ended(Outcome::of(code));
                if let Some(id) = self.subscriptions.notifies.remove(&*key.branch) {
                    self.sub_input(id, Input::NotifyAnswered { code });
                }
            }
            Method::Message => {
                self.ctx.presence_stats.message_ended(Outcome::of(code));
                if code >= 300 {
                    debug!(code, "instant message refused by the watcher");
                }
            }
            _ => {}
        }
    }

    /// A request of ours that belongs to no leg got no final response (Timer F).
    pub(super) fn on_uac_timeout(&mut self, key: &TxKey) {
        match key.method {
            Method::Notify => {
                self.ctx.presence_stats.notify_ended(Outcome::Timeout);
                if let Some(id) = self.subscriptions.notifies.remove(&*key.branch) {
                    self.sub_input(id, Input::NotifyTimedOut);
                }
            }
            Method::Message => self.ctx.presence_stats.message_ended(Outcome::Timeout),
            _ => {}
        }
    }

    /// Expiry timers of the subscriptions (run from the shard's tick).
    pub(super) fn subscriptions_tick(&mut self) {
        if self.subscriptions.timers.is_empty() {
            return;
        }
        for id in self.subscriptions.timers.expired(Instant::now()) {
            self.sub_input(id, Input::Timer);
        }
    }
}

/// An instant message about to be sent to each of the watcher's contacts.
struct Im {
    text: String,
    from_name: String,
    /// The watched user's address of record.
    from: String,
    to: String,
}

fn with_id(package: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{package};id={id}"),
        None => package.to_string(),
    }
}

impl SipContext {
    /// Where instant messages between users leave as SIP MESSAGE: one entry per shard
    /// (empty until the shards have started).
    pub fn messengers(&self) -> Vec<Recipient<SendMessage>> {
        self.shards
            .get()
            .map(|s| s.iter().map(|a| a.clone().recipient()).collect())
            .unwrap_or_default()
    }
}

/// A user's instant message to another user of the tenant (chat, or the text of a
/// call rejected with a message): a MESSAGE to each registered contact of the
/// recipient, From the sender's extension and name, `text/plain`.
impl Handler<SendMessage> for Shard {
    type Result = ();

    fn handle(&mut self, msg: SendMessage, ctx: &mut Self::Context) {
        let m = msg.0;
        let dir = self.ctx.directory.current();
        let Some(tenant) = dir.tenant(m.tenant) else {
            return;
        };
        let im = Im {
            text: m.text.clone(),
            from_name: m.from_name.clone(),
            from: format!("sip:{}@{}", m.from_extension, tenant.domain),
            to: format!("<sip:{}@{}>", m.to_extension, tenant.domain),
        };
        debug!(id = %m.id, to = %m.to, "instant message");
        self.im_to_user(m.to, im, ctx);
    }
}

impl Handler<WatcherUpdate> for Shard {
    type Result = ();

    fn handle(&mut self, msg: WatcherUpdate, ctx: &mut Self::Context) {
        self.sub_input(
            msg.sub,
            Input::Update {
                state: msg.state,
                notify: msg.notify,
                im: msg.im,
            },
        );
        self.flush_im(ctx);
    }
}
