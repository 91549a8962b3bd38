// The chat with a colleague: the conversation so far (from the live state's messages),
// a text box that sends with POST .../messages, and, where no call with them is up, a
// Call button that turns the chat into a call (click-to-dial the colleague). Used on a
// line card (the chat beside a call) and in the home page's Messages panel.
//
// Messages are not stored by tsps: what this page has seen since it loaded is shown.

import { api, userPath } from './api.js';
import { h, clear, announce, formatTime } from './dom.js';
import { dial, chosenDevice } from './calls.js';

const MAX_TEXT = 500;

export class ChatBox {
  /**
   * `partner` = {extension, name}; opts.callId ties what is sent to a call;
   * opts.escalate shows the Call button.
   */
  constructor(ctx, partner, opts = {}) {
    this.ctx = ctx;
    this.partner = partner;
    this.callId = opts.callId || null;
    this.escalate = Boolean(opts.escalate);
    this.shown = '';
    const label = `${partner.name || partner.extension} (${partner.extension})`;
    this.log = h('ol', { class: 'chat-log', 'aria-label': `Messages with ${label}`, 'aria-live': 'polite' });
    this.input = h('input', {
      name: 'text', autocomplete: 'off', maxlength: MAX_TEXT,
      placeholder: 'Message', 'aria-label': `Message to ${label}`, dataset: { chatInput: partner.extension },
    });
    this.error = h('div', { class: 'error', role: 'alert' });
    this.callButton = h('button', {
      type: 'button', class: 'secondary', dataset: { chatCall: partner.extension },
      onclick: () => this.call(),
    }, `Call ${partner.name || partner.extension}`);
    const form = h('form', { class: 'chat-form' },
      this.input,
      h('button', { type: 'submit', dataset: { chatSend: partner.extension } }, 'Send'),
      this.escalate ? this.callButton : null);
    form.addEventListener('submit', (e) => { e.preventDefault(); this.send(); });
    this.el = h('section', { class: 'chat', dataset: { chatWith: partner.extension } },
      this.log, form, this.error);
    this.render();
  }

  /** Redraws the log when the conversation changed; true when a message was added. */
  render() {
    const msgs = this.ctx.live.conversation(this.partner.extension);
    const key = msgs.map((m) => m.id).join();
    if (key === this.shown) return false;
    const grew = msgs.length > 0 && key.length > this.shown.length;
    this.shown = key;
    clear(this.log);
    if (msgs.length === 0) {
      this.log.append(h('li', { class: 'muted' }, 'No messages yet.'));
      return false;
    }
    const me = this.ctx.user.user_id;
    for (const m of msgs.slice(-50)) {
      const out = m.from === me;
      this.log.append(h('li', { dataset: { messageId: m.id, direction: out ? 'out' : 'in' } },
        h('span', { class: 'who' }, out ? 'You' : (m.from_name || m.from_extension)),
        h('span', { class: 'muted' }, ` ${formatTime(m.at)}`),
        h('div', { class: 'text' }, m.text)));
    }
    this.log.scrollTop = this.log.scrollHeight;
    return grew;
  }

  focus() {
    this.input.focus();
  }

  async send() {
    const text = this.input.value.trim();
    this.error.textContent = '';
    if (!text) { this.input.focus(); return; }
    const body = { to: this.partner.extension, text };
    if (this.callId) body.call_id = this.callId;
    try {
      const sent = await api('POST', userPath(this.ctx.user, '/messages'), body);
      this.input.value = '';
      // The stream brings it too; shown at once either way.
      if (this.ctx.live.addMessage(sent)) {
        this.ctx.live.dispatchEvent(new CustomEvent('change', { detail: { type: 'message', data: sent } }));
      }
      announce(`Message sent to ${this.partner.name || this.partner.extension}`);
    } catch (e) {
      this.error.textContent = `Not sent: ${e.message}`;
    }
    this.input.focus();
  }

  /** Escalates the chat: the user's device calls the colleague. */
  async call() {
    this.error.textContent = '';
    if (!chosenDevice(this.ctx)) {
      this.error.textContent = 'No device to call from: register a phone first.';
      return;
    }
    try {
      await dial(this.ctx, this.partner.extension);
      announce(`Calling ${this.partner.name || this.partner.extension}`);
    } catch (e) {
      this.error.textContent = `Call failed: ${e.message}`;
    }
  }
}
