// Call history: the user's calls newest first, with search and filters, and why each
// call went where it went (the routing decision).

import { api, userPath } from './api.js';
import { h, clear, field, formatTime, formatDuration, party, words } from './dom.js';

const DIRECTIONS = [['', 'Any direction'], ['in', 'Incoming'], ['out', 'Outgoing']];
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
      const items = Array.isArray(r) ? r : (r && (r.items || r.calls)) || [];
      clear(body);
      for (const c of items) body.append(row(c));
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

function row(c) {
  const reasons = (c.decision && c.decision.reasons) || c.reasons || [];
  const duration = c.duration_seconds ?? c.duration_secs ?? c.duration
    ?? (c.answered_at && c.ended_at ? (new Date(c.ended_at) - new Date(c.answered_at)) / 1000 : null);
  return h('tr', { dataset: { callId: c.id || c.call_id || '', direction: c.direction || '', outcome: c.outcome || '' } },
    h('td', {}, c.direction === 'in' ? 'Incoming' : c.direction === 'out' ? 'Outgoing' : words(c.direction)),
    h('td', {}, party(c.peer || c.party)),
    h('td', {}, h('time', { datetime: c.started_at || c.at || '' }, formatTime(c.started_at || c.at))),
    h('td', {}, duration === null ? '' : formatDuration(duration)),
    h('td', {}, words(c.outcome)),
    h('td', {}, reasons.map((r) => (typeof r === 'string' ? words(r) : JSON.stringify(r))).join('; ')));
}
