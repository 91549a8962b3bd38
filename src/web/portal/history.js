// Call history: the user's calls newest first, with search and filters, and why each
// call went where it went (the routing decision).

import { api, userPath } from './api.js';
import { peerLabel } from './calls.js';
import { h, clear, field, formatTime, formatDuration, words } from './dom.js';

const DIRECTIONS = [['', 'Any direction'], ['incoming', 'Incoming'], ['outgoing', 'Outgoing']];
const OUTCOMES = ['', 'answered', 'busy', 'no_answer', 'cancelled', 'unavailable', 'rejected', 'failed'];
const PAGE_SIZE = 100;
const SEARCH_DELAY_MS = 250;

export function renderHistory(main, ctx) {
  const q = h('input', { type: 'search', name: 'q', id: 'history-q', placeholder: 'Name or number' });
  const direction = h('select', { name: 'direction', id: 'history-direction' },
    DIRECTIONS.map(([v, label]) => h('option', { value: v }, label)));
  const outcome = h('select', { name: 'outcome', id: 'history-outcome' },
    OUTCOMES.map((v) => h('option', { value: v }, v ? words(v) : 'Any outcome')));
  const status = h('p', { class: 'muted', role: 'status', id: 'history-status' }, 'Loading…');
  const body = h('tbody', {});
  const table = h('table', { id: 'history-table' },
    h('caption', { class: 'sr-only' }, 'Your calls, newest first'),
    h('thead', {}, h('tr', {},
      ['Direction', 'Party', 'Time', 'Duration', 'Outcome', 'Routing decision'].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  const form = h('form', { class: 'row', role: 'search', 'aria-label': 'Filter calls' },
    field('Search', q), field('Direction', direction), field('Outcome', outcome),
    h('button', { type: 'submit' }, 'Search'));

  let generation = 0;
  async function load() {
    const mine = ++generation;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (q.value.trim()) params.set('q', q.value.trim());
    if (direction.value) params.set('direction', direction.value);
    if (outcome.value) params.set('outcome', outcome.value);
    status.textContent = 'Loading…';
    try {
      const r = await api('GET', userPath(ctx.user, `/calls/history?${params}`));
      if (mine !== generation) return; // a newer search answered first
      const items = Array.isArray(r) ? r : [];
      clear(body);
      for (const c of items) body.append(row(c, ctx));
      status.textContent = items.length ? `${items.length} call${items.length === 1 ? '' : 's'}` : 'No calls match.';
    } catch (e) {
      if (mine !== generation) return;
      clear(body);
      status.textContent = `History unavailable: ${e.message}`;
    }
  }

  let timer = null;
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  direction.addEventListener('change', load);
  outcome.addEventListener('change', load);
  q.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(load, SEARCH_DELAY_MS);
  });

  main.append(h('h1', {}, 'Call history'),
    h('section', { class: 'panel' }, form, status, h('div', { class: 'table-wrap' }, table)));
  load();
  return () => clearTimeout(timer);
}

/**
 * A call record as the user sees it: the API's CallView (caller, callee, their user ids,
 * started/answered/ended times, outcome, decision reasons) turned to this user's side.
 */
export function fromUser(c, userId) {
  const outgoing = c.caller_user_id === userId;
  // A call that reached the user by a transfer or a forward: the user is on a leg only.
  // Their own leg says which side they took, and how long they talked.
  const mine = c.caller_user_id !== userId && c.callee_user_id !== userId
    ? [...(c.legs || [])].reverse().find((l) => l.user_id === userId) : null;
  const span = mine && mine.answered_at ? mine : c;
  const answered = span.answered_at && span.ended_at ? (new Date(span.ended_at) - new Date(span.answered_at)) / 1000 : null;
  const party = mine ? (mine.role === 'caller' ? c.callee : c.caller) : (outgoing ? c.callee : c.caller);
  return {
    id: c.id,
    outgoing,
    party,
    at: c.started_at,
    duration: answered,
    outcome: c.outcome,
    reasons: c.decision || [],
  };
}

function row(c, ctx) {
  const v = fromUser(c, ctx.user.user_id);
  return h('tr', { dataset: { callId: v.id || '', direction: v.outgoing ? 'outgoing' : 'incoming', outcome: v.outcome || '' } },
    h('td', {}, v.outgoing ? 'Outgoing' : 'Incoming'),
    h('td', {}, peerLabel(ctx, { number: v.party })),
    h('td', {}, h('time', { datetime: v.at || '' }, formatTime(v.at))),
    h('td', {}, v.duration === null ? '' : formatDuration(v.duration)),
    h('td', {}, words(v.outcome)),
    h('td', {}, v.reasons.map(words).join('; ')));
}
