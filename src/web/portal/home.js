// Home: the user's lines live with a button for each allowed action (and a chat with
// the other party when it is a colleague), the device that commands use, a dial pad,
// the tenant directory with click-to-dial and messages, the conversations of this
// session, and recent calls.
//
// Line cards are keyed by call id and rebuilt only when their line changed, so a
// keyboard user's focus stays on the button they were on while events arrive.

import { api, userPath, tenantPath } from './api.js';
import { h, clear, field, announce, formatDuration, formatTime, since, icon, words } from './dom.js';
import { fromUser } from './history.js';
import {
  ACTION_LABEL, NEEDS_TARGET, MAX_DIALLED, command, dial, deviceChoices, chosenDevice, peerLabel, peerName,
  conferenceCandidates, lineLabel, actionLabel,
} from './calls.js';
import { ChatBox } from './chat.js';

const COUNTERPART = { hold: 'resume', resume: 'hold', answer: 'hold' };
const STATE_LABEL = { dialing: 'Dialing', ringing: 'Ringing', active: 'Connected', held: 'On hold' };

export function renderHome(main, ctx) {
  const linesList = h('ul', { class: 'lines', id: 'lines', 'aria-label': 'Your calls' });
  const noLines = h('p', { class: 'muted', id: 'no-lines' }, 'No calls right now.');
  const hook = h('span', { class: 'muted', id: 'hook' });
  const picker = h('select', { id: 'device-picker', name: 'device' });
  const pickerField = field('Device for calls', picker, 'Answering and dialling use this phone.');
  const dialError = h('div', { class: 'error', role: 'alert', id: 'dial-error' });
  const number = h('input', {
    id: 'dial-number', class: 'dial-number', name: 'destination', inputmode: 'tel',
    autocomplete: 'off', placeholder: 'Number or extension', maxlength: MAX_DIALLED,
  });
  const directoryList = h('ul', { class: 'directory', id: 'directory' });
  const filter = h('input', { id: 'directory-filter', type: 'search', placeholder: 'Name or extension' });
  const recent = h('ul', { class: 'recent', id: 'recent' }, h('li', { class: 'muted' }, 'Loading…'));
  const notice = h('div', { id: 'notice', hidden: true });
  const covered = h('section', { class: 'panel', id: 'covered', hidden: true, 'aria-labelledby': 'covered-title' },
    h('h2', { id: 'covered-title' }, 'Calls for people you cover'));
  const coveredList = h('ul', { class: 'lines', 'aria-live': 'polite' });
  covered.append(coveredList);

  const messagesPanel = h('section', { class: 'panel', id: 'messages', hidden: true, 'aria-labelledby': 'messages-title' },
    h('h2', { id: 'messages-title' }, 'Messages'));
  const conversations = h('div', { class: 'conversations' });
  messagesPanel.append(conversations);

  const cards = new Map(); // call_id → {li, json}
  const chats = new Map(); // call_id → {box: ChatBox, open: bool}: the chat beside a call
  const talks = new Map(); // extension → ChatBox: the Messages panel's conversations
  const opened = new Set(); // extensions the user opened a conversation with
  let openForm = null; // {callId, action}: the forward/transfer entry a user opened
  let users = [];

  // ---- lines ----
  function renderLines() {
    // Calls in the order they started (answered_at stays through holds; since moves).
    const started = (l) => String(l.answered_at || l.since);
    const lines = [...ctx.live.lines.values()].sort((a, b) => started(a).localeCompare(started(b)));
    const seen = new Set();
    for (const line of lines) {
      seen.add(line.call_id);
      const json = JSON.stringify(line);
      const known = cards.get(line.call_id);
      if (known && known.json === json) continue;
      const li = known ? known.li : h('li', { class: 'line' });
      const focused = li.contains(document.activeElement) ? document.activeElement.dataset.action : null;
      const chat = chats.get(line.call_id);
      const chatFocused = chat && chat.box.el.contains(document.activeElement);
      fillCard(li, line);
      cards.set(line.call_id, { li, json });
      if (!known) linesList.append(li);
      if (chatFocused) {
        chat.box.focus();
      } else if (focused) {
        // The same button, else its counterpart (Hold becomes Resume), else the first.
        const again = li.querySelector(`[data-action="${focused}"]`)
          || li.querySelector(`[data-action="${COUNTERPART[focused]}"]`)
          || li.querySelector('button');
        if (again) again.focus();
      }
    }
    for (const [callId, { li }] of cards) {
      if (!seen.has(callId)) {
        const hadFocus = li.contains(document.activeElement);
        li.remove();
        cards.delete(callId);
        // The conversation goes on in the Messages panel.
        const chat = chats.get(callId);
        if (chat) {
          opened.add(chat.box.partner.extension);
          chats.delete(callId);
          queueMicrotask(renderMessages);
        }
        if (hadFocus) number.focus();
      }
    }
    noLines.hidden = lines.length > 0;
    const s = ctx.live.status;
    hook.textContent = s ? `Phone: ${words(s.hook)}` : '';
  }

  function fillCard(li, line) {
    clear(li);
    li.dataset.callId = line.call_id;
    li.dataset.state = line.state;
    li.dataset.direction = line.direction;
    const device = line.device_id && ctx.live.devices.get(line.device_id);
    const headingId = `line-${line.call_id}`;
    const label = lineLabel(ctx, line);
    const conf = line.conference;
    if (conf) li.dataset.conference = conf.host ? 'host' : 'party';
    else delete li.dataset.conference;
    li.setAttribute('aria-labelledby', headingId);
    li.append(
      h('div', { class: 'peer', id: headingId },
        conf ? label : `${line.direction === 'in' ? 'From' : 'To'} ${label}`,
        conf && conf.host ? h('span', { class: 'badge host', dataset: { host: 'true' } }, 'you host') : null),
      h('div', { class: 'meta' },
        h('span', { class: 'state' }, STATE_LABEL[line.state] || line.state),
        line.remote_held ? h('span', { class: 'badge', dataset: { remoteHeld: 'true' } }, 'held by other side') : null,
        ' · ',
        // A connected call counts from its answer, through holds and resumes; a ringing
        // or dialing one from when it started to.
        h('span', { class: 'elapsed', dataset: { since: line.answered_at || line.since || '' } },
          formatDuration(since(line.answered_at || line.since))),
        device ? ` · on ${device.name}` : ''),
      h('div', { class: 'actions' },
        (line.allowed || []).map((action) => h('button', {
          type: 'button',
          class: action === 'release' || action === 'reject' ? 'danger' : action === 'answer' ? 'good' : '',
          dataset: { action },
          'aria-label': `${actionLabel(line, action)}: ${label}`,
          onclick: () => onAction(line, action),
        }, actionLabel(line, action)))),
    );
    // A conference has several parties: no chat with one of them beside it.
    const partner = conf ? null : colleague(line);
    if (partner) {
      const chat = chats.get(line.call_id);
      const open = Boolean(chat && chat.open);
      li.querySelector('.actions').append(h('button', {
        type: 'button', class: 'secondary', dataset: { action: 'chat' },
        'aria-expanded': String(open),
        'aria-label': `${open ? 'Close the chat with' : 'Chat with'} ${peerLabel(ctx, line.peer)}`,
        onclick: () => toggleChat(line),
      }, open ? 'Close chat' : 'Chat'));
      if (open) li.append(chat.box.el);
    }
    if (openForm && openForm.callId === line.call_id && (line.allowed || []).includes(openForm.action)) {
      li.append(openForm.action === 'conference' ? conferenceForm(line) : targetForm(line, openForm.action));
    }
  }

  /** The line's other party when it is a colleague (a chat partner), else null. */
  function colleague(line) {
    const ext = line.peer && line.peer.number;
    if (!ext || ext === ctx.user.extension || !ctx.directory.has(ext)) return null;
    return { extension: ext, name: peerName(ctx, line.peer) || ctx.directory.get(ext) };
  }

  function chatOf(line, partner) {
    let chat = chats.get(line.call_id);
    if (!chat) {
      chat = { box: new ChatBox(ctx, partner, { callId: line.call_id }), open: false };
      chats.set(line.call_id, chat);
    }
    return chat;
  }

  function toggleChat(line, open) {
    const partner = colleague(line);
    if (!partner) return;
    const chat = chatOf(line, partner);
    chat.open = open === undefined ? !chat.open : open;
    rebuild(line.call_id);
    renderMessages();
    if (chat.open && open === undefined) chat.box.focus();
  }

  // ---- messages ----
  /** A message arrived: the chat of its call opens; every chat shows what is new. */
  function onMessage(m) {
    if (m && m.from !== ctx.user.user_id) {
      const line = m.call_id && ctx.live.lines.get(m.call_id);
      const chat = line && chats.get(line.call_id);
      if (line && colleague(line) && !(chat && chat.open)) {
        toggleChat(line, true);
      } else if (!line || !colleague(line)) {
        opened.add(m.from_extension);
      }
    }
    for (const { box } of chats.values()) box.render();
    renderMessages();
  }

  /** The Messages panel: conversations of this session not shown beside a call. */
  function renderMessages() {
    const beside = new Set([...chats.values()].filter((c) => c.open).map((c) => c.box.partner.extension));
    const latest = new Map();
    for (const m of ctx.live.messages) {
      const ext = m.from === ctx.user.user_id ? m.to_extension : m.from_extension;
      latest.set(ext, m.at);
    }
    for (const ext of opened) if (!latest.has(ext)) latest.set(ext, '');
    const shown = [...latest.entries()]
      .filter(([ext]) => !beside.has(ext) && (opened.has(ext) || ctx.directory.has(ext)))
      .sort((a, b) => String(b[1]).localeCompare(String(a[1])))
      .slice(0, 5)
      .map(([ext]) => ext);
    const focusedExt = [...talks.entries()].find(([, box]) => box.el.contains(document.activeElement));
    clear(conversations);
    for (const ext of shown) {
      let box = talks.get(ext);
      if (!box) {
        box = new ChatBox(ctx, { extension: ext, name: ctx.directory.get(ext) || ext }, { escalate: true });
        talks.set(ext, box);
      }
      box.render();
      conversations.append(h('article', { class: 'conversation', dataset: { conversation: ext } },
        h('h3', {}, `${ctx.directory.get(ext) || ext} (${ext})`),
        box.el));
    }
    if (focusedExt && shown.includes(focusedExt[0])) focusedExt[1].focus();
    messagesPanel.hidden = shown.length === 0;
  }

  function openConversation(ext) {
    opened.add(ext);
    renderMessages();
    const box = talks.get(ext);
    if (box) box.focus();
  }

  function targetForm(line, action) {
    const input = h('input', {
      name: 'target', inputmode: 'tel', autocomplete: 'off', maxlength: MAX_DIALLED, dataset: { targetFor: action },
    });
    // Consultative transfer: the user's other answered calls, whose party may join this one's.
    const others = action === 'transfer'
      ? [...ctx.live.lines.values()].filter((o) => o.call_id !== line.call_id && (o.allowed || []).includes('transfer'))
      : [];
    const f = h('form', { class: 'inline-form', dataset: { form: action } },
      h('label', { for: input.id || (input.id = `${action}-${line.call_id}`) },
        action === 'transfer' ? 'Transfer to' : 'Forward to'),
      input,
      h('button', { type: 'submit', dataset: { submit: action } }, ACTION_LABEL[action]),
      others.map((o) => h('button', {
        type: 'button',
        dataset: { joinWith: o.call_id },
        onclick: () => { openForm = null; run(line, 'transfer', { replacesCall: o.call_id }); },
      }, `Join with ${peerLabel(ctx, o.peer)}`)),
      h('button', { type: 'button', class: 'secondary', onclick: () => { openForm = null; rebuild(line.call_id); } }, 'Cancel'));
    f.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!input.value.trim()) { input.focus(); return; }
      openForm = null;
      run(line, action, input.value.trim());
    });
    queueMicrotask(() => input.focus());
    return f;
  }

  /** Several other connected lines: the user picks the one to merge with. */
  function conferenceForm(line) {
    const others = conferenceCandidates(ctx, line);
    const f = h('div', {
      class: 'inline-form', role: 'group', dataset: { form: 'conference' },
      'aria-label': `Conference ${lineLabel(ctx, line)} with`,
    },
    h('span', { class: 'label-text' }, 'Conference with'),
    others.map((o) => h('button', {
      type: 'button',
      dataset: { conferenceWith: o.call_id },
      onclick: () => { openForm = null; run(line, 'conference', { with: o }); },
    }, lineLabel(ctx, o))),
    h('button', { type: 'button', class: 'secondary', onclick: () => { openForm = null; rebuild(line.call_id); } }, 'Cancel'));
    queueMicrotask(() => { const first = f.querySelector('button'); if (first) first.focus(); });
    return f;
  }

  function rebuild(callId) {
    const known = cards.get(callId);
    if (known) known.json = null;
    renderLines();
  }

  function onAction(line, action) {
    if (action === 'conference') {
      const others = conferenceCandidates(ctx, line);
      if (others.length === 1) {
        run(line, action, { with: others[0] });
        return;
      }
      if (others.length === 0) {
        dialError.textContent = 'Conference: there is no other connected call to merge with.';
        return;
      }
    }
    if (NEEDS_TARGET.has(action) || action === 'conference') {
      openForm = { callId: line.call_id, action };
      rebuild(line.call_id);
      return;
    }
    run(line, action);
  }

  async function run(line, action, arg) {
    const what = actionLabel(line, action);
    dialError.textContent = '';
    try {
      await command(ctx, line, action, arg);
      announce(`${what}: ${lineLabel(ctx, line)}`);
    } catch (e) {
      announce(`${what} failed: ${e.message}`);
      dialError.textContent = `${what} failed: ${e.message}`;
    }
    rebuild(line.call_id);
  }

  // ---- devices ----
  function renderDevices() {
    const choices = deviceChoices(ctx);
    const current = chosenDevice(ctx);
    clear(picker);
    if (choices.length === 0) picker.append(h('option', { value: '' }, 'No devices'));
    for (const c of choices) picker.append(h('option', { value: c.id, selected: c.id === current }, c.label));
    picker.disabled = choices.length === 0;
  }
  picker.addEventListener('change', () => {
    ctx.setDevice(picker.value);
    announce(`Calls use ${picker.selectedOptions[0] ? picker.selectedOptions[0].textContent : 'no device'}`);
  });

  // ---- dialling ----
  async function call(destination) {
    dialError.textContent = '';
    const to = String(destination || '').trim();
    if (!to) {
      dialError.textContent = 'Enter a number or extension to call.';
      number.focus();
      return;
    }
    if (!chosenDevice(ctx)) {
      dialError.textContent = 'No device to call from: register a phone first.';
      return;
    }
    try {
      await dial(ctx, to);
      announce(`Calling ${to}`);
    } catch (e) {
      dialError.textContent = `Call failed: ${e.message}`;
    }
  }

  const pad = h('div', { class: 'dialpad', role: 'group', 'aria-label': 'Dial pad' },
    ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'].map((d) => h('button', {
      type: 'button', dataset: { digit: d }, 'aria-label': `digit ${d}`,
      onclick: () => { if (number.value.length < MAX_DIALLED) number.value += d; },
    }, d)));
  const dialForm = h('form', { id: 'dial-form', 'aria-labelledby': 'dial-title' },
    h('h2', { id: 'dial-title' }, 'Dial'),
    field('Number', number),
    pad,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'good', id: 'call-button' }, icon('phone'), 'Call'),
      h('button', {
        type: 'button', class: 'secondary icon', 'aria-label': 'Delete last digit',
        onclick: () => { number.value = number.value.slice(0, -1); number.focus(); },
      }, icon('back'))),
    dialError);
  dialForm.addEventListener('submit', (e) => { e.preventDefault(); call(number.value); });

  // ---- directory ----
  function renderDirectory() {
    const q = filter.value.trim().toLowerCase();
    clear(directoryList);
    const shown = users.filter((u) => u.id !== ctx.user.user_id)
      .filter((u) => !q || u.display_name.toLowerCase().includes(q) || u.extension.includes(q));
    if (shown.length === 0) directoryList.append(h('li', { class: 'muted' }, q ? 'Nobody matches.' : 'Nobody else here yet.'));
    for (const u of shown) {
      const [state, label] = presenceOf(ctx.live.watched.get(u.id));
      directoryList.append(h('li', { dataset: { extension: u.extension, presence: state } },
        h('span', { class: `dot ${state}`, role: 'img', 'aria-label': label, title: label }),
        h('span', { class: 'who' }, u.display_name, ' ', h('span', { class: 'muted' }, u.extension)),
        h('button', {
          type: 'button', class: 'secondary', dataset: { message: u.extension },
          'aria-label': `Message ${u.display_name} (${u.extension})`,
          onclick: () => openConversation(u.extension),
        }, 'Message'),
        h('button', {
          type: 'button', class: 'icon secondary', dataset: { dial: u.extension },
          'aria-label': `Call ${u.display_name} (${u.extension})`,
          onclick: () => call(u.extension),
        }, icon('phone'))));
    }
  }
  filter.addEventListener('input', renderDirectory);

  // ---- calls of the colleagues whose attendant this user is ----
  function renderCovered() {
    clear(coveredList);
    let n = 0;
    for (const w of ctx.live.watched.values()) {
      const who = users.find((u) => u.id === w.user_id);
      for (const line of w.lines ? w.lines.values() : []) {
        n += 1;
        coveredList.append(h('li', { class: 'line', dataset: { watchedCallId: line.call_id, state: line.state } },
          h('span', {}, h('strong', {}, who ? `${who.display_name} (${who.extension})` : 'A colleague'), ': ',
            STATE_LABEL[line.state] || words(line.state), ' — ', lineLabel(ctx, line))));
      }
    }
    covered.hidden = n === 0;
  }

  // ---- information ----
  function renderRecent(items) {
    clear(recent);
    if (!items.length) {
      recent.append(h('li', { class: 'muted' }, 'No calls yet.'));
      return;
    }
    for (const c of items.slice(0, 5).map((x) => fromUser(x, ctx.user.user_id))) {
      recent.append(h('li', {},
        h('span', { 'aria-label': c.outgoing ? 'outgoing' : 'incoming' }, c.outgoing ? '→ ' : '← '),
        peerLabel(ctx, { number: c.party }), ' ', h('span', { class: 'muted' }, formatTime(c.at), ' · ', words(c.outcome))));
    }
  }

  main.append(
    h('h1', {}, `Hello, ${ctx.user.display_name}`),
    h('div', { class: 'grid home' },
      h('div', {},
        h('section', { class: 'panel', 'aria-labelledby': 'lines-title' },
          h('h2', { id: 'lines-title' }, 'Calls ', hook),
          noLines, linesList),
        messagesPanel,
        h('section', { class: 'panel' }, pickerField, dialForm)),
      h('div', {},
        h('section', { class: 'panel', 'aria-labelledby': 'directory-title' },
          h('h2', { id: 'directory-title' }, 'Directory'),
          h('p', { class: 'muted legend' }, 'Dots: green available, orange ringing, red on the phone, busy or do not disturb, grey away or no phone registered.'),
          field('Search the directory', filter),
          directoryList),
        covered,
        h('section', { class: 'panel', 'aria-labelledby': 'info-title' },
          h('h2', { id: 'info-title' }, 'Information'),
          notice,
          h('h3', {}, 'Recent calls'),
          recent,
          h('p', {}, h('a', { href: '#/history' }, 'All calls'))))));

  const onChange = (e) => {
    // New names for numbers: every card is redrawn.
    if (e && e.detail && e.detail.type === 'directory') for (const c of cards.values()) c.json = null;
    renderLines();
    renderDevices();
    const type = e && e.detail && e.detail.type;
    if (type === 'message') onMessage(e.detail.data);
    if (type === 'directory') renderMessages();
    if (!type || ['snapshot', 'watched', 'presence'].includes(type)) renderDirectory();
    if (!type || ['snapshot', 'watched', 'watched_line', 'watched_line_ended'].includes(type)) renderCovered();
    // A call of the user ended: its record is written shortly after (a queued writer).
    if (type === 'line_ended') {
      clearTimeout(recentTimer);
      recentTimer = setTimeout(loadRecent, 1000);
    }
  };
  let recentTimer = null;
  const loadRecent = () => api('GET', userPath(ctx.user, '/calls/history?limit=5'))
    .then((r) => renderRecent(Array.isArray(r) ? r : []))
    .catch(() => renderRecent([]));
  ctx.live.addEventListener('change', onChange);
  onChange();
  const ticker = setInterval(() => {
    for (const el of linesList.querySelectorAll('.elapsed')) el.textContent = formatDuration(since(el.dataset.since));
  }, 1000);

  api('GET', tenantPath(ctx.user, '/users')).then((list) => {
    users = list || [];
    renderDirectory();
    // Status lights: watch the colleagues (the server caps the list at 500).
    const ids = users.filter((u) => u.id !== ctx.user.user_id).map((u) => u.id).slice(0, 500);
    return ctx.live.watch(ids).then(() => {
      renderDirectory();
      renderCovered();
    });
  })
    .catch((e) => { clear(directoryList).append(h('li', { class: 'error' }, `Directory unavailable: ${e.message}`)); });
  loadRecent();
  api('GET', tenantPath(ctx.user, '/settings')).then((s) => {
    if (s && s.notice) {
      clear(notice).append(h('h2', {}, 'Notice'), h('p', { class: 'notice' }, s.notice));
      notice.hidden = false;
    }
  }).catch(() => { /* no notice then */ });

  return () => {
    ctx.live.removeEventListener('change', onChange);
    clearInterval(ticker);
    clearTimeout(recentTimer);
  };
}

/**
 * A colleague's status light: [css state, spoken label]. A call shows first; then a
 * colleague without a registered phone (cannot be reached), do not disturb, and what
 * they set.
 */
function presenceOf(w) {
  if (!w) return ['unknown', 'status unknown'];
  if (w.hook === 'busy') return ['busy', 'on the phone'];
  if (w.hook === 'ringing') return ['ringing', 'ringing'];
  if (w.registered === false) return ['offline', 'no phone registered'];
  if (w.dnd) return ['dnd', 'do not disturb'];
  switch (w.presence) {
    case 'available': return ['available', 'available'];
    case 'do_not_disturb': return ['dnd', 'do not disturb'];
    case 'busy': return ['busy', 'busy'];
    case 'in_meeting': return ['away', 'in a meeting'];
    default: return ['away', 'away'];
  }
}
