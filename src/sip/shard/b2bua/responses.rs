//! Responses to the requests tsps sent on a leg (initial INVITE, re-INVITE, BYE,
//! CANCEL, talk NOTIFY), and their timeouts, as leg events.

use super::*;

impl Shard {
    pub(in crate::sip::shard) fn reack(&mut self, v: &View) {
        let Some(tag) = v.from_tag else {
            return;
        };
        if let Some(leg) = self
            .dialogs
            .get(&DialogKey::new(v.call_id, tag))
            .and_then(|id| self.legs.get(id))
        {
            if let Some(ack) = &leg.last_ack {
                self.ctx.transports.send(leg.peer, ack.clone());
            }
        }
    }

    pub(in crate::sip::shard) fn on_client_response(
        &mut self,
        owner: Option<(LegId, Purpose)>,
        resp: &Response,
        v: &View,
        code: u16,
        cseq: u32,
    ) {
        let Some((leg_id, purpose)) = owner else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        match purpose {
            Purpose::Initial => {
                if code == 100 {
                    return;
                }
                if let Some(tag) = v.to_tag {
                    if code < 300 {
                        leg.remote_tag = Some(tag.to_string());
                    }
                }
                if code < 200 {
                    leg.provisional_seen = true;
                    if leg.cancel_pending {
                        self.send_cancel(leg_id);
                        return;
                    }
                    self.notify(
                        leg_id,
                        LegEventKind::Progress {
                            code,
                            body: body_of(&resp.body),
                        },
                    );
                } else if code < 300 {
                    if leg.answered {
                        // A retransmitted 2xx: re-send our ACK if we have sent it.
                        if let Some(ack) = &leg.last_ack {
                            self.ctx.transports.send(leg.peer, ack.clone());
                        }
                        return;
                    }
                    leg.answered = true;
                    leg.confirmed = true;
                    leg.ack_cseq = Some(cseq);
                    // Only a challenged INVITE is sent again with its offer; an answered
                    // one never is.
                    leg.invite_body = None;
                    if let Some(c) = v.contact_uri() {
                        leg.remote_target = c.to_string();
                    }
                    let mut rr: Vec<String> = h::all(&resp.headers, "Record-Route")
                        .into_iter()
                        .map(str::to_string)
                        .collect();
                    rr.reverse();
                    leg.route_set = rr;
                    self.notify(
                        leg_id,
                        LegEventKind::Answered {
                            body: body_of(&resp.body),
                        },
                    );
                } else if (code == 401 || code == 407) && leg.trunk.is_some() && !leg.auth_tried {
                    leg.auth_tried = true;
                    self.retry_with_auth(leg_id, resp, code);
                } else if (300..400).contains(&code) {
                    let targets = h::all(&resp.headers, "Contact")
                        .into_iter()
                        .map(|c| {
                            let uri = h::uri(c);
                            tsps_actors::ports::RedirectTarget {
                                uri: uri.to_string(),
                                user: h::uri_user(uri).map(str::to_string),
                                host: h::uri_host(uri).to_ascii_lowercase(),
                            }
                        })
                        .collect();
                    self.notify(leg_id, LegEventKind::Redirected { code, targets });
                    self.drop_leg(leg_id);
                } else {
                    self.notify(leg_id, LegEventKind::Failed { code });
                    self.drop_leg(leg_id);
                }
            }
            Purpose::ReInvite => {
                if code < 200 {
                    return;
                }
                if code < 300 {
                    leg.ack_cseq = Some(cseq);
                    self.notify(
                        leg_id,
                        LegEventKind::ReAnswer {
                            code,
                            body: body_of(&resp.body),
                        },
                    );
                } else {
                    self.notify(leg_id, LegEventKind::ReAnswer { code, body: None });
                }
            }
            Purpose::Bye => {
                if code >= 200 {
                    self.drop_leg(leg_id);
                }
            }
            Purpose::Talk => {
                if code >= 300 {
                    // The phone will not answer by itself; it keeps ringing.
                    info!(leg = %leg_id, code, "the device refused the remote answer");
                }
            }
            Purpose::Cancel => {}
        }
    }

    pub(in crate::sip::shard) fn on_client_timeout(&mut self, owner: Option<(LegId, Purpose)>) {
        let Some((leg, purpose)) = owner else { return };
        match purpose {
            Purpose::Initial => {
                self.notify(leg, LegEventKind::Failed { code: 408 });
                self.drop_leg(leg);
            }
            Purpose::ReInvite => self.notify(
                leg,
                LegEventKind::ReAnswer {
                    code: 408,
                    body: None,
                },
            ),
            Purpose::Bye => self.drop_leg(leg),
            Purpose::Cancel | Purpose::Talk => {}
        }
    }
}
