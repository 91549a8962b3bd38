// The user's live state, kept current by the event stream of tsps: a WebSocket
// (`.../events/ws?since=<resume>`), or Server-Sent Events where a WebSocket cannot
// connect. A `snapshot` replaces everything; `line`, `line_ended`, `device` and `status`
// change one thing; a `message` (chat) is added to the messages this page has seen
// (a snapshot carries none: they are kept here, not on the server). After a drop the stream reconnects with backoff and passes the last
// `resume` it saw, so the server replays what was missed (or sends a new snapshot).
import { api } from './api.js';

/** Instant messages a page keeps (the oldest go first). */
const MAX_MESSAGES = 200;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
/** WebSocket attempts that never opened before the stream tries SSE instead. */
const WS_FAILURES_BEFORE_SSE = 3;

function preferSse() {
  try {
    return localStorage.getItem('tsps.events') === 'sse';
  } catch (_) {
    return false;
  }
}

export class LiveState extends EventTarget {
  constructor(user) {
    super();
    this.user = user;
    /** call_id → Line */
    this.lines = new Map();
    /** device_id → Device */
    this.devices = new Map();
    this.status = null;
    /** user_id → {user_id, presence, hook, attendant, lines: Map call_id → Line} */
    this.watched = new Map();
    /** Instant messages to and from the user, oldest first (see `addMessage`). */
    this.messages = [];
    /** The colleagues this page asked to watch (sent again when the server forgot). */
    this.watchIds = [];
    /** "connecting" | "live" | "reconnecting" | "stopped" */
    this.connection = 'connecting';
    this.resume = null;
    this.snapshotSeen = false;
    this.socket = null;
    this.source = null;
    // SSE by choice where a proxy blocks WebSockets: localStorage `tsps.events` = "sse".
    this.useSse = typeof WebSocket === 'undefined' || preferSse();
    this.wsFailures = 0;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
  }

  base() {
    return `/api/v1/tenants/${this.user.tenant_id}/users/${this.user.user_id}/events`;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) { this.socket.onclose = null; this.socket.close(); }
    if (this.source) this.source.close();
    this.socket = null;
    this.source = null;
    this.setConnection('stopped');
  }

  /** Drops the connection as a network failure would (tests and "reconnect now"). */
  reconnect() {
    if (this.socket) this.socket.close();
    else if (this.source) { this.source.close(); this.source = null; this.scheduleReconnect(); }
  }

  connect() {
    if (this.stopped) return;
    const query = this.resume ? `?since=${encodeURIComponent(this.resume)}` : '';
    if (this.useSse) {
      this.connectSse(query);
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let opened = false;
    const ws = new WebSocket(`${scheme}//${location.host}${this.base()}/ws${query}`);
    this.socket = ws;
    ws.onopen = () => {
      opened = true;
      this.wsFailures = 0;
      this.attempt = 0;
      this.setConnection('live');
    };
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => {
      if (this.socket !== ws) return;
      this.socket = null;
      // 4401: the server ended the stream because the session (or token) ended.
      if (e.code === 4401) {
        this.sessionEnded();
        return;
      }
      if (!opened) {
        this.wsFailures += 1;
        if (this.wsFailures >= WS_FAILURES_BEFORE_SSE && typeof EventSource !== 'undefined') this.useSse = true;
      }
      this.scheduleReconnect();
    };
  }

  connectSse(query) {
    // EventSource reconnects by itself and sends Last-Event-ID; `since` covers the first
    // connection after a WebSocket had been used.
    const src = new EventSource(`${this.base()}/sse${query}`, { withCredentials: true });
    this.source = src;
    src.onopen = () => { this.attempt = 0; this.setConnection('live'); };
    src.onmessage = (e) => this.receive(e.data);
    for (const type of ['snapshot', 'line', 'line_ended', 'device', 'status']) {
      src.addEventListener(type, (e) => this.receive(e.data));
    }
    src.onerror = () => {
      if (src.readyState === EventSource.CLOSED) {
        // Refused (a 401 after the session ended) or gone: the session decides.
        this.source = null;
        this.sessionEnded();
      } else {
        this.setConnection('reconnecting');
      }
    };
  }

  /**
   * The stream was closed for its credentials, or refused: ask whether the session
   * still holds. A 401 there shows the login (api.js's handler); otherwise reconnect.
   */
  sessionEnded() {
    if (this.stopped) return;
    this.setConnection('reconnecting');
    api('GET', '/auth/me').then(
      () => this.scheduleReconnect(),
      (err) => { if (!(err && err.status === 401)) this.scheduleReconnect(); },
    );
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.setConnection('reconnecting');
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt += 1;
    // Jitter keeps many portals from reconnecting in step after a server restart.
    const delay = ceiling / 2 + Math.random() * ceiling / 2;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setConnection(state) {
    if (this.connection === state) return;
    this.connection = state;
    this.dispatchEvent(new CustomEvent('connection', { detail: state }));
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (_) {
      return;
    }
    if (!msg || typeof msg !== 'object' || !msg.type) return;
    if (msg.type !== 'snapshot' && this.isStale(msg.resume)) return;
    if (msg.resume) this.resume = msg.resume;
    this.apply(msg.type, msg.data || {});
  }

  /**
   * Watches colleagues (`PUT .../watch`): their status lights follow. The list is kept
   * and sent again whenever a snapshot comes without it (a restarted server, a stream
   * it dropped, another node: it holds watch lists in memory).
   */
  watch(ids) {
    this.watchIds = Array.isArray(ids) ? ids : [];
    return api('PUT', `/tenants/${this.user.tenant_id}/users/${this.user.user_id}/watch`, { users: this.watchIds })
      .then((r) => {
        if (r && Array.isArray(r.watched)) {
          this.setWatched(r.watched);
          this.dispatchEvent(new CustomEvent('change', { detail: { type: 'watched', data: r.watched } }));
        }
        return r;
      });
  }

  /** Colleagues watched (`PUT .../watch`), from a snapshot or a `watched` message. */
  setWatched(list) {
    this.watched = new Map((Array.isArray(list) ? list : []).map((w) => [w.user_id, {
      ...w, lines: new Map((w.lines || []).map((l) => [l.call_id, l])),
    }]));
  }

  /**
   * Keeps an instant message (from the stream, or as the send request answered it);
   * false when it was already there. The newest MAX_MESSAGES stay.
   */
  addMessage(m) {
    if (!m || !m.id || this.messages.some((x) => x.id === m.id)) return false;
    this.messages.push(m);
    if (this.messages.length > MAX_MESSAGES) this.messages.splice(0, this.messages.length - MAX_MESSAGES);
    return true;
  }

  /** The conversation with the colleague at `extension`, oldest first. */
  conversation(extension) {
    const me = this.user.user_id;
    return this.messages.filter((m) => (m.from === me ? m.to_extension : m.from_extension) === extension);
  }

  /** A replayed message this client already applied (same epoch, seq not newer). */
  isStale(resume) {
    if (!resume || !this.resume) return false;
    const [epoch, seq] = String(resume).split(':');
    const [lastEpoch, lastSeq] = String(this.resume).split(':');
    return epoch === lastEpoch && Number(seq) <= Number(lastSeq);
  }

  apply(type, data) {
    switch (type) {
      case 'snapshot':
        this.lines = new Map((data.lines || []).map((l) => [l.call_id, l]));
        this.devices = new Map((data.devices || []).map((d) => [d.device_id, d]));
        this.status = data.status || null;
        this.setWatched(data.watched);
        this.snapshotSeen = true;
        // The server forgot what this page watches: tell it again (its answer fills
        // the lights; no loop: it answers with `watched`, not a snapshot).
        if (this.watchIds.length && !(data.watched || []).length) {
          this.watch(this.watchIds).catch(() => { /* the next snapshot tries again */ });
        }
        break;
      case 'watched':
        this.setWatched(data);
        break;
      case 'presence': {
        const w = this.watched.get(data.user_id);
        if (w) Object.assign(w, { presence: data.presence, hook: data.hook, registered: data.registered, dnd: data.dnd });
        break;
      }
      case 'watched_line': {
        const w = this.watched.get(data.user_id);
        if (w && data.line && data.line.call_id) w.lines.set(data.line.call_id, data.line);
        break;
      }
      case 'watched_line_ended': {
        const w = this.watched.get(data.user_id);
        if (w && data.line) w.lines.delete(data.line.call_id);
        break;
      }
      case 'line':
        if (data.call_id) this.lines.set(data.call_id, data);
        break;
      case 'line_ended':
        this.lines.delete(data.call_id);
        break;
      case 'device':
        if (data.device_id) this.devices.set(data.device_id, data);
        break;
      case 'status':
        this.status = data;
        break;
      case 'message':
        if (!this.addMessage(data)) return;
        break;
      default:
        return; // a newer server's type: ignore
    }
    this.dispatchEvent(new CustomEvent('change', { detail: { type, data } }));
  }
}
