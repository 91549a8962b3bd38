// The portal's entry: finds out whether someone is logged in, then routes by the URL
// hash (#/, #/history, #/contacts, #/settings, #/admin, #/platform) to one page module
// at a time, among the pages of the session's role. The live event stream and the
// incoming-call window live as long as a user's session, so a call rings on whatever
// page the user is on. A platform operator has no phone: no stream, no calls, only the
// platform's tenants and the administration of one of them (#/admin?tenant=<id>).

import { api, setCsrfToken, setUnauthorizedHandler, userPath } from './api.js';
import { h, clear, announce, words } from './dom.js';
import { LiveState } from './events.js';
import { IncomingCalls } from './incoming.js';
import { renderLogin } from './login.js';
import { renderHome } from './home.js';
import { renderHistory } from './history.js';
import { renderContacts } from './contacts.js';
import { renderSettings } from './settings.js';
import { renderAdmin, renderPlatform } from './admin.js';

const PRESENCE = ['available', 'busy', 'away', 'in_meeting', 'do_not_disturb'];

/** Roles with a phone: the user's own pages. */
const PHONE = ['user', 'tenant_admin'];

// `roles` may open the page; `nav` (default: `roles`) see it in the top bar. The first
// page a role may open is its start page.
const PAGES = [
  { hash: '#/', title: 'Home', render: renderHome, roles: PHONE },
  { hash: '#/history', title: 'Call history', render: renderHistory, roles: PHONE },
  { hash: '#/contacts', title: 'Contacts', render: renderContacts, roles: PHONE },
  { hash: '#/settings', title: 'Settings', render: renderSettings, roles: PHONE },
  { hash: '#/platform', title: 'Platform', render: renderPlatform, roles: ['operator'] },
  // An operator opens it from the Platform page, for the tenant it chose.
  { hash: '#/admin', title: 'Administration', render: renderAdmin, roles: ['tenant_admin', 'operator'], nav: ['tenant_admin'] },
];

const isOperator = (session) => session.user.role === 'operator';
const pagesOf = (role) => PAGES.filter((p) => p.roles.includes(role));

const app = {
  session: null,
  live: null,
  incoming: null,
  cleanup: null,
  /** The device the user's commands use; kept per user in localStorage. */
  deviceId: null,
  directory: new Map(),
};

/** What page modules get: the session's user, live state and shared choices. */
function context() {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  return {
    user: app.session.user,
    /** The hash's query (`#/admin?tenant=<id>`). */
    params,
    /** The tenant the page is about: the user's own; for an operator, the one chosen. */
    tenantId: isOperator(app.session) ? params.get('tenant') : app.session.user.tenant_id,
    live: app.live,
    /** extension → display name of the tenant's users (names callers without a contact). */
    directory: app.directory,
    getDevice: () => app.deviceId,
    setDevice: (idValue) => {
      app.deviceId = idValue || null;
      try {
        localStorage.setItem(`tsps.device.${app.session.user.user_id}`, idValue || '');
      } catch (_) { /* storage disabled: keep it for this page only */ }
    },
    navigate: (hash) => { location.hash = hash; },
  };
}

async function boot() {
  setUnauthorizedHandler(() => {
    if (app.session) {
      endSession();
      announce('Your session ended. Please log in again.');
      showLogin();
    }
  });
  document.getElementById('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  try {
    const me = await api('GET', '/auth/me', undefined, { allow401: true });
    startSession(me);
  } catch (_) {
    showLogin();
    return;
  }
  route();
}

function startSession(me) {
  app.session = me;
  setCsrfToken(me.csrf_token);
  if (isOperator(me)) {
    // No phone, no stream, no directory of one tenant.
    renderTopbar();
    return;
  }
  try {
    app.deviceId = localStorage.getItem(`tsps.device.${me.user.user_id}`) || null;
  } catch (_) {
    app.deviceId = null;
  }
  app.live = new LiveState(me.user);
  app.live.addEventListener('connection', showConnection);
  app.live.addEventListener('change', (e) => {
    if (e.detail.type === 'status' || e.detail.type === 'snapshot') showPresence();
    // A colleague's message is read out on whatever page the user is.
    const m = e.detail.type === 'message' && e.detail.data;
    if (m && m.from !== me.user.user_id) announce(`Message from ${m.from_name || m.from_extension}: ${m.text}`);
  });
  app.directory = new Map();
  app.incoming = new IncomingCalls(document.getElementById('incoming'), context());
  app.live.start();
  api('GET', `/tenants/${me.user.tenant_id}/users`).then((users) => {
    for (const u of users || []) app.directory.set(u.extension, u.display_name);
    if (app.live) app.live.dispatchEvent(new CustomEvent('change', { detail: { type: 'directory' } }));
  }).catch(() => { /* names stay numbers */ });
  renderTopbar();
}

function endSession() {
  if (app.cleanup) { app.cleanup(); app.cleanup = null; }
  if (app.live) app.live.stop();
  if (app.incoming) app.incoming.destroy();
  app.live = null;
  app.incoming = null;
  app.session = null;
  setCsrfToken(null);
  document.getElementById('topbar').hidden = true;
}

function showLogin() {
  const main = document.getElementById('main');
  clear(main);
  document.title = 'Log in · tsps portal';
  renderLogin(main, {
    onLoggedIn: (me) => {
      startSession(me);
      if (location.hash === '' || location.hash === '#/login') location.hash = '#/';
      route();
      announce(`Logged in as ${me.user.display_name}`);
    },
  });
}

async function logout() {
  try {
    await api('POST', '/auth/logout', {}, { allow401: true });
  } catch (_) { /* logged out on this side either way */ }
  endSession();
  location.hash = '#/login';
  showLogin();
  announce('Logged out');
}

function renderTopbar() {
  const { user } = app.session;
  const nav = clear(document.getElementById('nav'));
  for (const p of PAGES) {
    if (!(p.nav || p.roles).includes(user.role)) continue;
    nav.append(h('li', {}, h('a', { href: p.hash, dataset: { page: p.hash.slice(2) || 'home' } }, p.title)));
  }
  const operator = isOperator(app.session);
  document.getElementById('who').textContent = operator
    ? `${user.display_name} · platform operator`
    : `${user.display_name} · ${user.extension}`;
  document.getElementById('connection').hidden = operator;
  document.querySelector('.me .presence').hidden = operator;
  if (operator) {
    document.getElementById('topbar').hidden = false;
    return;
  }
  const presence = clear(document.getElementById('presence'));
  for (const p of PRESENCE) presence.append(h('option', { value: p }, words(p)));
  presence.onchange = async () => {
    try {
      await api('PUT', userPath(user, '/status'), { presence: presence.value });
      announce(`Presence set to ${words(presence.value)}`);
    } catch (e) {
      announce(`Presence not changed: ${e.message}`);
      showPresence();
    }
  };
  document.getElementById('topbar').hidden = false;
  showConnection();
  // The stream's snapshot brings the presence too; this covers a slow stream.
  api('GET', userPath(user, '/status')).then((s) => {
    if (s && s.presence && !(app.live && app.live.status)) presence.value = s.presence;
  }).catch(() => {});
}

function showPresence() {
  const s = app.live && app.live.status;
  if (s && s.presence) document.getElementById('presence').value = s.presence;
}

function showConnection() {
  const el = document.getElementById('connection');
  const state = app.live ? app.live.connection : 'stopped';
  el.dataset.state = state;
  el.textContent = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', stopped: 'Offline' }[state] || state;
}

function route() {
  if (!app.session) {
    showLogin();
    return;
  }
  const hash = location.hash.split('?')[0] || '#/';
  const allowed = pagesOf(app.session.user.role);
  const page = allowed.find((p) => p.hash === hash) || allowed[0];
  if (app.cleanup) { app.cleanup(); app.cleanup = null; }
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === page.hash) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = clear(document.getElementById('main'));
  document.title = `${page.title} · tsps portal`;
  main.dataset.page = page.hash.slice(2) || 'home';
  const result = page.render(main, context());
  app.cleanup = typeof result === 'function' ? result : null;
  // Move focus to the new page's heading so keyboard and screen-reader users land there.
  const heading = main.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

// Tests and support staff can ask for the state the page shows.
window.tspsPortal = {
  get live() { return app.live; },
  get session() { return app.session; },
};

boot();
