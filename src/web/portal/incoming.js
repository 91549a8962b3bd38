// The incoming-call window: one card per line that rings in (state "ringing",
// direction "in"), on whatever page the user is. It says who calls and why the call
// reached this user (the routing decision), and offers what the line allows: answer on a
// chosen device, forward (to the profile's targets or a typed one), the attendant,
// reject, and the caller's contact. The region is assertive and focus moves to the new
// card; when the last card goes, focus returns to where it was.

import { api, userPath } from './api.js';
import { h, clear, append, announce, words, id } from './dom.js';
import { ACTION_LABEL, MAX_DIALLED, command, deviceChoices, chosenDevice, targetText, peerName, peerLabel } from './calls.js';

export class IncomingCalls {
  constructor(region, ctx) {
    this.region = region;
    this.ctx = ctx;
    this.cards = new Map(); // call_id → {el, json}
    this.dismissed = new Set();
    /** call_id → what the window says after "Answer" on a phone that cannot pick up by itself. */
    this.notes = new Map();
    this.returnFocus = null;
    this.presets = [];
    this.onChange = () => this.render();
    ctx.live.addEventListener('change', this.onChange);
    this.loadPresets();
    this.render();
  }

  destroy() {
    this.ctx.live.removeEventListener('change', this.onChange);
    clear(this.region);
    this.cards.clear();
  }

  /** Forward targets the user set up in the profile: offered as one-click buttons. */
  async loadPresets() {
    try {
      const p = await api('GET', userPath(this.ctx.user, '/profile'));
      const found = [];
      const f = p.forwarding || {};
      for (const t of [f.always, f.busy, f.unreachable, f.no_answer && f.no_answer.target,
        ...(f.selective || []).map((s) => s.target), ...(p.simultaneous || [])]) {
        const text = targetText(t);
        if (text && text !== 'devices' && text !== 'attendant' && !found.includes(text)) found.push(text);
      }
      this.presets = found;
      for (const entry of this.cards.values()) entry.json = null;
      this.render();
    } catch (_) {
      this.presets = [];
    }
  }

  render() {
    const ringing = [...this.ctx.live.lines.values()]
      .filter((l) => l.state === 'ringing' && l.direction === 'in' && !this.dismissed.has(l.call_id));
    const seen = new Set();
    let added = null;
    for (const line of ringing) {
      seen.add(line.call_id);
      const json = JSON.stringify([line, this.presets, deviceChoices(this.ctx), this.ctx.directory.size, this.notes.get(line.call_id)]);
      const known = this.cards.get(line.call_id);
      if (known && known.json === json) continue;
      const el = known ? known.el : h('section', { class: 'call-window', role: 'group' });
      // A refill replaces the card's controls: keep the focus and what was typed.
      const active = el.contains(document.activeElement) ? document.activeElement : null;
      const focused = active && (active.dataset.action ? `[data-action="${active.dataset.action}"]`
        : active.dataset.targetFor ? `input[data-target-for="${active.dataset.targetFor}"]` : null);
      const typed = el.querySelector('input[data-target-for="forward"]');
      const typedValue = typed ? typed.value : '';
      this.fill(el, line);
      const retyped = el.querySelector('input[data-target-for="forward"]');
      if (retyped && typedValue) retyped.value = typedValue;
      this.cards.set(line.call_id, { el, json });
      if (!known) {
        if (this.cards.size === 1 && !this.region.contains(document.activeElement)) {
          this.returnFocus = document.activeElement;
        }
        this.region.append(el);
        added = { el, line };
      } else if (focused) {
        const again = el.querySelector(focused);
        if (again) again.focus();
      }
    }
    for (const [callId, { el }] of this.cards) {
      if (!seen.has(callId)) {
        el.remove();
        this.cards.delete(callId);
      }
    }
    for (const callId of this.dismissed) {
      if (!this.ctx.live.lines.has(callId)) this.dismissed.delete(callId);
    }
    for (const callId of this.notes.keys()) {
      if (!seen.has(callId)) this.notes.delete(callId);
    }
    if (added) {
      announce(`Incoming call from ${peerLabel(this.ctx, added.line.peer)}`);
      const first = added.el.querySelector('[data-action="answer"]') || added.el.querySelector('button');
      if (first) first.focus();
    }
    if (this.cards.size === 0 && this.returnFocus) {
      const back = this.returnFocus;
      this.returnFocus = null;
      if (back && document.contains(back)) back.focus();
    }
  }

  fill(el, line) {
    clear(el);
    const titleId = id('incoming-title');
    el.setAttribute('aria-labelledby', titleId);
    el.dataset.callId = line.call_id;
    const allowed = new Set(line.allowed || []);
    const status = h('div', { class: 'error', role: 'alert' });
    const act = async (action, arg) => {
      status.textContent = '';
      try {
        await command(this.ctx, line, action, arg);
        announce(`${ACTION_LABEL[action]}: ${peerLabel(this.ctx, line.peer)}`);
      } catch (e) {
        status.textContent = `${ACTION_LABEL[action]} failed: ${e.message}`;
      }
    };
    const decision = line.decision || {};
    const reasons = decision.reasons || [];

    const name = peerName(this.ctx, line.peer);
    const number = (line.peer && line.peer.number) || '';
    append(el, [
      h('h2', { id: titleId }, 'Incoming call'),
      h('div', { class: 'caller', dataset: { caller: '' } }, name || number || 'Unknown caller'),
      name && number ? h('div', { dataset: { callerNumber: '' } }, number) : null,
      reasons.length || decision.contact
        ? h('ul', { class: 'decision', 'aria-label': 'Why this call rings here' },
          decision.contact ? h('li', {}, `Contact: ${contactName(decision.contact)}`) : null,
          reasons.map((r) => h('li', {}, reasonText(r))))
        : null]);

    const note = this.notes.get(line.call_id);
    if (note) el.append(h('p', { class: 'notice', role: 'status', dataset: { answerNote: '' } }, note));
    if (allowed.has('answer')) {
      const devices = deviceChoices(this.ctx);
      const picker = h('select', { dataset: { answerDevice: '' } },
        devices.map((d) => h('option', { value: d.id, selected: d.id === chosenDevice(this.ctx) }, d.label)));
      picker.id = id('answer-device');
      // Only a phone with remote answer picks up when told to; any other can be made to
      // ring alone, and the user picks it up.
      const chosen = () => devices.find((d) => d.id === picker.value);
      const label = () => (chosen() && !chosen().remoteAnswer ? 'Ring only this phone' : 'Answer');
      const button = h('button', {
        type: 'button', class: 'good', dataset: { action: 'answer' },
        onclick: async () => {
          const d = chosen();
          await act('answer', picker.value);
          if (d && !d.remoteAnswer && !status.textContent) {
            this.notes.set(line.call_id,
              `Only ${d.name} rings now. It cannot be answered from the browser: pick it up to answer, or forward the call.`);
            this.cards.get(line.call_id).json = null;
            this.render();
            const forward = el.querySelector('input[data-target-for="forward"]');
            if (forward) forward.focus();
          }
        },
      }, label());
      picker.addEventListener('change', () => { button.textContent = label(); });
      el.append(h('div', { class: 'inline-form' },
        button,
        h('label', { for: picker.id }, 'on'),
        picker));
    }
    if (allowed.has('forward')) {
      const input = h('input', {
        id: id('forward-to'), inputmode: 'tel', autocomplete: 'off', maxlength: MAX_DIALLED, dataset: { targetFor: 'forward' },
      });
      const form = h('form', { class: 'inline-form' },
        h('label', { for: input.id }, 'Forward to'), input,
        h('button', { type: 'submit', dataset: { action: 'forward' } }, 'Forward'));
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        if (input.value.trim()) act('forward', input.value.trim());
        else input.focus();
      });
      el.append(form);
      if (this.presets.length) {
        el.append(h('div', { class: 'actions', role: 'group', 'aria-label': 'Forward to a saved target' },
          this.presets.map((t) => h('button', {
            type: 'button', class: 'secondary', dataset: { action: 'forward-preset', target: t },
            onclick: () => act('forward', t),
          }, `Forward to ${t}`))));
      }
    }
    append(el, [h('div', { class: 'actions' },
      allowed.has('attendant') ? h('button', { type: 'button', class: 'secondary', dataset: { action: 'attendant' }, onclick: () => act('attendant') }, 'To attendant') : null,
      allowed.has('reject') ? h('button', { type: 'button', class: 'danger', dataset: { action: 'reject' }, onclick: () => act('reject') }, 'Reject') : null,
      h('a', { href: contactHref(line), dataset: { action: 'contact' } }, decision.contact ? 'Open contact' : 'Add to contacts'),
      h('button', {
        type: 'button', class: 'secondary', dataset: { action: 'dismiss' },
        'aria-label': 'Hide this window (the call keeps ringing)',
        onclick: () => { this.dismissed.add(line.call_id); this.render(); },
      }, 'Hide')),
    status]);
  }
}

function contactName(contact) {
  if (typeof contact === 'string') return contact;
  return contact.name || contact.id || '';
}

function contactHref(line) {
  const number = line.peer && line.peer.number ? line.peer.number : '';
  const contact = line.decision && line.decision.contact;
  const contactId = contact && typeof contact === 'object' ? contact.id : null;
  const params = new URLSearchParams();
  if (contactId) params.set('id', contactId);
  if (number) params.set('number', number);
  const name = line.decision && line.decision.contact;
  if (name && !contactId) params.set('name', name);
  return `#/contacts?${params}`;
}

/** A decision reason as words: strings as they come, objects by their kind. */
function reasonText(r) {
  if (typeof r === 'string') return words(r);
  if (r && typeof r === 'object') {
    const kind = r.kind || r.reason || r.type || Object.keys(r)[0];
    const rest = Object.entries(r).filter(([k]) => k !== 'kind' && k !== 'reason' && k !== 'type')
      .map(([k, v]) => `${words(k)} ${typeof v === 'object' ? JSON.stringify(v) : v}`);
    return [words(kind), ...rest].join(', ');
  }
  return String(r);
}
