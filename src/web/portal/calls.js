// Call commands shared by the home page and the incoming-call window: one function per
// `allowed` action of a line, the click-to-dial request, and forward targets as text.

import { api, userPath, tenantPath } from './api.js';

export const ACTION_LABEL = {
  answer: 'Answer',
  reject: 'Reject',
  forward: 'Forward',
  attendant: 'To attendant',
  hold: 'Hold',
  resume: 'Resume',
  transfer: 'Transfer',
  conference: 'Conference',
  release: 'Hang up',
};

/** Actions that need a destination typed or chosen first. */
export const NEEDS_TARGET = new Set(['forward', 'transfer']);
// The longest number or extension tsps accepts (ControlError::TargetTooLong).
export const MAX_DIALLED = 32;

/**
 * Runs `action` on `line`; `arg` is the device id (answer), the target text, for a
 * consultative transfer `{replacesCall: <the user's other call>}`, or for a conference
 * `{with: <the user's other connected line>}`.
 */
export function command(ctx, line, action, arg) {
  const u = ctx.user;
  const id = encodeURIComponent(line.call_id);
  switch (action) {
    case 'answer':
      return api('POST', userPath(u, `/calls/${id}/answer`), { device_id: arg || chosenDevice(ctx) });
    case 'reject':
      // Releasing a call that rings to the user declines it (603): the user's own
      // endpoint, which a plain user may use (the tenant override is the admin's).
      return api('POST', userPath(u, `/calls/${id}/release`), {});
    case 'attendant':
      return api('POST', userPath(u, `/calls/${id}/attendant`), {});
    case 'forward':
      return api('POST', userPath(u, `/calls/${id}/forward`), { target: toTarget(arg) });
    case 'transfer':
      // Consultative: `arg` names the user's other call, whose party joins this one's.
      if (arg && arg.replacesCall) {
        return api('POST', userPath(u, `/calls/${id}/transfer`), { replaces_call: arg.replacesCall });
      }
      return api('POST', userPath(u, `/calls/${id}/transfer`), { target: String(arg || '').trim() });
    case 'conference': {
      const { call, with: other } = conferencePair(line, arg && arg.with);
      return api('POST', userPath(u, `/calls/${encodeURIComponent(call)}/conference`), { with: other });
    }
    case 'hold':
    case 'resume':
    case 'release':
      return api('POST', userPath(u, `/calls/${id}/${action}`), {});
    default:
      return Promise.reject(new Error(`unknown action ${action}`));
  }
}

/**
 * Which call a merge keeps: the one that already is a conference (the server refuses
 * to merge a conference into a two-party call), else the line the user clicked.
 * `other` is the other line or its call id.
 */
export function conferencePair(line, other) {
  const otherId = other && typeof other === 'object' ? other.call_id : other;
  const otherLine = other && typeof other === 'object' ? other : null;
  if (otherLine && otherLine.conference && !line.conference) {
    return { call: otherLine.call_id, with: line.call_id };
  }
  return { call: line.call_id, with: otherId };
}

/** The user's other lines this one may be merged with (both connected). */
export function conferenceCandidates(ctx, line) {
  return [...ctx.live.lines.values()].filter((o) => o.call_id !== line.call_id
    && (o.state === 'active' || o.state === 'held')
    && (o.allowed || []).includes('conference'));
}

/** "Bob, Carol": the other parties of a conference line. */
export function conferenceParties(ctx, line) {
  const parties = (line.conference && line.conference.parties) || [];
  return parties.map((p) => peerName(ctx, p) || p.number || 'unknown').join(', ');
}

/** What a line is called: "Conference with Bob, Carol", else "Bob (1002)". */
export function lineLabel(ctx, line) {
  if (line.conference) {
    const parties = conferenceParties(ctx, line);
    return parties ? `Conference with ${parties}` : 'Conference';
  }
  return peerLabel(ctx, line.peer);
}

/** A button's text: release ends a conference for its host, leaves it for the others. */
export function actionLabel(line, action) {
  if (action === 'release' && line.conference) return line.conference.host ? 'End conference' : 'Leave';
  return ACTION_LABEL[action] || action.replaceAll('_', ' ');
}

/** Click-to-dial: the chosen device rings first, then calls `destination`. */
export function dial(ctx, destination) {
  return api('POST', userPath(ctx.user, '/calls'), {
    device_id: chosenDevice(ctx),
    destination: String(destination).trim(),
  });
}

/** The device commands use: the user's choice, else the first registered device. */
export function chosenDevice(ctx) {
  const chosen = ctx.getDevice();
  const devices = [...ctx.live.devices.values()];
  if (chosen && (devices.length === 0 || devices.some((d) => d.device_id === chosen))) return chosen;
  const registered = devices.find((d) => d.registered) || devices[0];
  return registered ? registered.device_id : chosen;
}

/** Devices for a picker: {id, label, registered}. */
export function deviceChoices(ctx) {
  return [...ctx.live.devices.values()]
    .sort((a, b) => String(a.name).localeCompare(String(b.name)))
    .map((d) => ({
      id: d.device_id,
      name: d.name || d.device_id,
      label: `${d.name || d.device_id}${d.registered ? '' : ' (offline)'}`,
      registered: Boolean(d.registered),
      remoteAnswer: Boolean(d.remote_answer),
    }));
}

/**
 * Text as typed → a profile target: "attendant", "devices", "+41…"/"00…" (a number),
 * other digits (an extension of the tenant).
 */
export function toTarget(text) {
  const t = String(text || '').trim();
  if (t === 'attendant' || t === 'devices') return t;
  if (t.startsWith('+') || t.startsWith('00')) return { number: t };
  if (/^[0-9]+$/.test(t)) return { extension: t };
  return { number: t };
}

/** A profile target → the text `toTarget` reads back. */
export function targetText(target) {
  if (!target) return '';
  if (typeof target === 'string') return target;
  return target.extension || target.number || '';
}

/** The peer's name: the matched contact's, else the colleague's from the directory. */
export function peerName(ctx, peer) {
  if (!peer) return '';
  if (peer.name) return peer.name;
  return (ctx.directory && ctx.directory.get(peer.number)) || '';
}

/** "Bob (1002)", or the number alone when nobody by that number is known. */
export function peerLabel(ctx, peer) {
  const name = peerName(ctx, peer);
  const number = (peer && peer.number) || '';
  if (name && number) return `${name} (${number})`;
  return name || number || 'unknown';
}
