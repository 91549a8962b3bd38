// Administration. A tenant's (role tenant_admin, or an operator for the tenant it
// chose): users, devices, DIDs and trunks: list, create, delete. The platform's (role
// operator): the tenants: list, create, delete, manage. One generic table-and-form per
// kind.

import { api, ApiError } from './api.js';
import { h, clear, field, id, announce, setFieldError, clearFieldErrors } from './dom.js';

/** The platform's tenants, for an operator; "Manage" opens a tenant's administration. */
export function renderPlatform(main) {
  const kind = {
    key: 'tenants', title: 'Tenants', noun: ['tenant', 'tenants'], addTitle: 'Add a tenant',
    load: async () => {
      const tenants = await api('GET', '/tenants') || [];
      // The users of each: one request per tenant, side by side.
      const counts = await Promise.all(tenants.map((x) => api('GET', `/tenants/${x.id}/users`)
        .then((users) => (users || []).length).catch(() => null)));
      return tenants.map((x, i) => ({ ...x, users: counts[i] }));
    },
    columns: [['Domain', (x) => x.domain], ['Name', (x) => x.name], ['Time zone', (x) => x.time_zone],
      ['Users', (x) => (x.users === null ? '?' : String(x.users))]],
    fields: [
      { name: 'domain', label: 'Domain', required: true, placeholder: 'example.com', hint: 'The SIP domain of its phones' },
      { name: 'name', label: 'Name', required: true },
      { name: 'time_zone', label: 'Time zone', value: browserTimeZone(), hint: 'IANA name, e.g. Europe/Zurich' },
    ],
    create: (v) => api('POST', '/tenants', { domain: v.domain, name: v.name, time_zone: v.time_zone || undefined }),
    remove: (x) => api('DELETE', `/tenants/${x.id}`),
    describe: (x) => x.domain,
    confirm: (x) => `Really delete ${x.domain} with all its users and phones`,
    actions: (x) => [h('a', {
      class: 'button secondary', href: `#/admin?tenant=${encodeURIComponent(x.id)}`,
      dataset: { action: 'manage' }, 'aria-label': `Manage ${x.domain}`,
    }, 'Manage')],
  };
  const panel = h('div', { id: 'admin-panel' });
  main.append(h('h1', {}, 'Platform'),
    h('p', { class: 'muted' }, 'Every tenant of this tsps. Manage one to administer its users, devices, numbers and trunks.'),
    h('section', { class: 'panel' }, panel));
  showKind(panel, kind);
}

/** "1 tenant", "3 tenants", "0 numbers". */
export function counted(n, [one, many]) {
  return `${n} ${n === 1 ? one : many}`;
}

function browserTimeZone() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; } catch (_) { return 'UTC'; }
}

export function renderAdmin(main, ctx) {
  if (!ctx.tenantId) {
    // An operator who came here without choosing a tenant.
    main.append(h('h1', {}, 'Administration'),
      h('p', {}, 'Choose a tenant on the ', h('a', { href: '#/platform' }, 'Platform'), ' page.'));
    return;
  }
  const t = (rest) => `/tenants/${ctx.tenantId}${rest}`;
  const operator = ctx.user.role === 'operator';
  let users = [];
  const userName = (uid) => {
    const u = users.find((x) => x.id === uid);
    return u ? `${u.display_name} (${u.extension})` : uid;
  };
  const loadUsers = async () => { users = await api('GET', t('/users')) || []; return users; };
  const userOptions = () => users.map((u) => [u.id, `${u.display_name} (${u.extension})`]);

  const kinds = [
    {
      key: 'users', title: 'Users', noun: ['user', 'users'], addTitle: 'Add a user',
      load: loadUsers,
      columns: [['Extension', (u) => u.extension], ['Name', (u) => u.display_name], ['Portal login', (u) => u.portal_login || '']],
      fields: [
        { name: 'extension', label: 'Extension', required: true, inputmode: 'numeric' },
        { name: 'display_name', label: 'Name', required: true },
        { name: 'portal_login', label: 'Portal login' },
      ],
      create: (v) => api('POST', t('/users'), { extension: v.extension, display_name: v.display_name, portal_login: v.portal_login || null }),
      remove: (u) => api('DELETE', t(`/users/${u.id}`)),
      describe: (u) => `${u.display_name} (${u.extension})`,
    },
    {
      key: 'devices', title: 'Devices', noun: ['device', 'devices'], addTitle: 'Add a device',
      load: async () => {
        await loadUsers();
        const lists = await Promise.all(users.map((u) => api('GET', t(`/users/${u.id}/devices`)).catch(() => [])));
        return lists.flat();
      },
      columns: [['SIP user name', (d) => d.sip_username], ['User', (d) => userName(d.user_id)],
        ['Digest', (d) => ((d.digest_algorithms || []).length ? d.digest_algorithms.join(', ') : 'platform default')]],
      fields: [
        { name: 'user_id', label: 'User', required: true, options: userOptions },
        { name: 'sip_username', label: 'SIP user name', required: true },
        { name: 'password', label: 'SIP password', required: true, type: 'password', autocomplete: 'new-password', hint: 'At least 8 characters' },
        {
          name: 'digest', label: 'Digest algorithms',
          hint: 'Phones that know only MD5 (baresip and many softphones) fail when SHA-256 is offered too',
          options: () => [['', 'Platform default'], ['MD5', 'MD5 only'], ['SHA-256', 'SHA-256 only'], ['SHA-256,MD5', 'SHA-256, then MD5']],
        },
      ],
      create: (v) => api('POST', t(`/users/${v.user_id}/devices`), {
        sip_username: v.sip_username,
        password: v.password,
        digest_algorithms: v.digest ? v.digest.split(',') : [],
      }),
      fieldOf: { digest_algorithms: 'digest' },
      remove: (d) => api('DELETE', t(`/users/${d.user_id}/devices/${d.id}`)),
      describe: (d) => d.sip_username,
    },
    {
      key: 'dids', title: 'Numbers (DIDs)', noun: ['number', 'numbers'], addTitle: 'Add a number',
      load: async () => { await loadUsers(); return await api('GET', t('/dids')) || []; },
      columns: [['Number', (d) => d.number], ['Rings', (d) => userName(d.user_id)]],
      fields: [
        { name: 'number', label: 'Number (E.164)', required: true, inputmode: 'tel', placeholder: '+41445550100' },
        { name: 'user_id', label: 'User', required: true, options: userOptions },
      ],
      create: (v) => api('POST', t('/dids'), { number: v.number, user_id: v.user_id }),
      remove: (d) => api('DELETE', t(`/dids/${encodeURIComponent(d.number)}`)),
      describe: (d) => d.number,
    },
    {
      key: 'trunks', title: 'Trunks', noun: ['trunk', 'trunks'], addTitle: 'Add a trunk',
      load: async () => await api('GET', t('/trunks')) || [],
      columns: [['Name', (x) => x.name], ['Peer', (x) => `${x.peer_host}:${x.peer_port} (${x.transport})`],
        ['Inbound sources', (x) => (x.inbound_sources || []).join(', ')]],
      fields: [
        { name: 'name', label: 'Name', required: true },
        { name: 'peer_host', label: 'Peer host', required: true },
        { name: 'peer_port', label: 'Peer port', type: 'number', value: '5060' },
        { name: 'transport', label: 'Transport', options: () => [['udp', 'UDP'], ['tcp', 'TCP']] },
        { name: 'username', label: 'User name' },
        { name: 'password', label: 'Password', type: 'password', autocomplete: 'new-password' },
        // Which tenant a call from an address belongs to is the platform's to say.
        ...(operator ? [{ name: 'inbound_sources', label: 'Inbound sources', hint: 'The carrier\'s addresses or networks (at most a /16), comma separated' }] : []),
      ],
      note: operator ? undefined : 'The addresses your carrier calls from are assigned by the platform operator.',
      create: (v) => api('POST', t('/trunks'), {
        name: v.name,
        peer_host: v.peer_host,
        peer_port: v.peer_port ? Number(v.peer_port) : undefined,
        transport: v.transport || undefined,
        username: v.username || undefined,
        password: v.password || undefined,
        inbound_sources: operator ? (v.inbound_sources || '').split(',').map((s) => s.trim()).filter(Boolean) : undefined,
      }),
      remove: (x) => api('DELETE', t(`/trunks/${x.id}`)),
      describe: (x) => x.name,
    },
  ];

  const panel = h('div', { id: 'admin-panel', role: 'tabpanel' });
  const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'What to manage' });
  const tabButtons = kinds.map((k) => h('button', {
    type: 'button', role: 'tab', id: `tab-${k.key}`, 'aria-controls': 'admin-panel', dataset: { tab: k.key },
    onclick: () => select(k), onkeydown: (e) => arrows(e, k),
  }, k.title));
  tabs.append(...tabButtons);

  function arrows(e, k) {
    const i = kinds.indexOf(k);
    const next = e.key === 'ArrowRight' ? (i + 1) % kinds.length : e.key === 'ArrowLeft' ? (i + kinds.length - 1) % kinds.length : -1;
    if (next >= 0) { e.preventDefault(); select(kinds[next]); tabButtons[next].focus(); }
  }

  function select(kind) {
    tabButtons.forEach((b, i) => {
      const on = kinds[i] === kind;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
    });
    panel.setAttribute('aria-labelledby', `tab-${kind.key}`);
    showKind(panel, kind);
  }

  const heading = h('h1', {}, 'Administration');
  main.append(heading);
  if (ctx.user.role === 'operator') {
    // Which tenant the operator is in, and the way back.
    const which = h('p', { id: 'admin-tenant' }, h('a', { href: '#/platform' }, '← All tenants'));
    main.append(which);
    api('GET', t('')).then((tenant) => {
      heading.textContent = `Administration · ${tenant.name}`;
      which.append(` · ${tenant.domain}`);
    }).catch((err) => { which.append(` · ${err.message}`); });
  }
  main.append(noticeForm(t), tabs, h('section', { class: 'panel' }, panel));
  select(kinds[0]);
}

/** The tenant's notice to its users (shown on every home page), kept in the settings. */
function noticeForm(t) {
  const box = h('textarea', { name: 'notice', id: 'admin-notice', rows: 3, maxlength: 1000 });
  const status = h('p', { class: 'muted', role: 'status' });
  const save = h('button', { type: 'submit', id: 'notice-save', disabled: true }, 'Save notice');
  const form = h('form', { id: 'notice-form', class: 'panel', novalidate: true },
    h('h2', {}, 'Notice to users'), field('Shown on every user\'s home page (empty: none)', box), save, status);
  let settings = null;
  api('GET', t('/settings')).then((s) => {
    settings = s || {};
    box.value = settings.notice || '';
    save.disabled = false;
  }).catch((err) => { status.textContent = `Not available: ${err.message}`; });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!settings) return;
    clearFieldErrors(form);
    try {
      settings = await api('PUT', t('/settings'), { ...settings, notice: box.value.trim() || null });
      status.textContent = settings.notice ? 'Notice saved' : 'Notice removed';
      announce(status.textContent);
    } catch (err) {
      const issues = err instanceof ApiError ? err.issues() : [];
      for (const i of issues) if (i.field === 'notice') setFieldError(box, i.reason);
      status.textContent = `Not saved: ${err.message}`;
    }
  });
  return form;
}

async function showKind(panel, kind) {
  clear(panel);
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
  const body = h('tbody', {});
  const table = h('table', { dataset: { kind: kind.key } },
    h('caption', {}, kind.title),
    h('thead', {}, h('tr', {}, kind.columns.map(([c]) => h('th', { scope: 'col' }, c)), h('th', { scope: 'col' }, 'Actions'))),
    body);
  const errors = h('div', { class: 'errors', role: 'alert', hidden: true });
  const controls = {};
  const form = h('form', { class: 'admin-create', dataset: { kind: kind.key }, novalidate: true },
    h('h2', {}, kind.addTitle), errors);
  panel.append(status, h('div', { class: 'table-wrap' }, table), form);

  let items = [];
  try {
    items = await kind.load();
  } catch (err) {
    status.textContent = `Not available: ${err.message}`;
  }
  for (const f of kind.fields) {
    const control = f.options
      ? h('select', { name: f.name, id: id(`admin-${f.name}`) }, f.options().map(([v, label]) => h('option', { value: v }, label)))
      : h('input', {
        name: f.name, id: id(`admin-${f.name}`), type: f.type || 'text', autocomplete: f.autocomplete || 'off',
        inputmode: f.inputmode, placeholder: f.placeholder, value: f.value,
      });
    controls[f.name] = control;
    form.append(field(f.label, control, f.hint));
  }
  if (kind.note) form.append(h('p', { class: 'muted' }, kind.note));
  form.append(h('button', { type: 'submit' }, 'Add'));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    errors.hidden = true;
    const values = Object.fromEntries(Object.entries(controls).map(([k, c]) => [k, c.value.trim()]));
    // Every problem at once: the required fields left empty, and whatever tsps finds
    // wrong with the rest (it checks all fields of a body in one answer).
    const problems = new Map(kind.fields.filter((f) => f.required && !values[f.name]).map((f) => [f.name, 'Required']));
    let failure = null;
    try {
      await kind.create(values);
    } catch (err) {
      failure = err;
    }
    if (!failure) {
      announce(`Added the ${kind.noun[0]}`);
      showKind(panel, kind);
      return;
    }
    const issues = failure instanceof ApiError ? failure.issues() : [];
    for (const i of issues) {
      // `inbound_sources[1]` belongs to the inbound_sources field; some API names differ.
      const name = (kind.fieldOf && kind.fieldOf[i.field]) || String(i.field || '').split(/[.[]/)[0];
      if (controls[name] && !problems.has(name)) problems.set(name, i.reason);
      else if (controls[name] && problems.get(name) !== 'Required') problems.set(name, `${problems.get(name)}; ${i.reason}`);
    }
    for (const [name, reason] of problems) setFieldError(controls[name], reason);
    const marked = problems.size;
    errors.textContent = marked > 1 ? `Not added: ${marked} fields need a change, see the marked fields.`
      : marked === 1 && !issues.length ? 'Not added: fill in the marked field.'
        : `Not added: ${failure.message}`;
    errors.hidden = false;
    const first = kind.fields.find((f) => problems.has(f.name));
    if (first) controls[first.name].focus();
  });

  for (const item of items) {
    const actions = h('td', { class: 'actions' });
    const extra = kind.actions ? kind.actions(item) : [];
    const showDelete = () => clear(actions).append(...extra, h('button', {
      type: 'button', class: 'danger', dataset: { action: 'delete' }, 'aria-label': `Delete ${kind.describe(item)}`,
      onclick: () => {
        const yes = h('button', {
          type: 'button', class: 'danger', dataset: { action: 'confirm-delete' },
          onclick: async () => {
            try {
              await kind.remove(item);
              announce(`Deleted ${kind.describe(item)}`);
              showKind(panel, kind);
            } catch (err) { status.textContent = `Not deleted: ${err.message}`; }
          },
        }, kind.confirm ? kind.confirm(item) : `Really delete ${kind.describe(item)}`);
        clear(actions).append(yes, h('button', { type: 'button', class: 'secondary', onclick: showDelete }, 'Keep'));
        yes.focus();
      },
    }, 'Delete'));
    showDelete();
    body.append(h('tr', { dataset: { id: item.id || item.number || '' } }, kind.columns.map(([, fn]) => h('td', {}, fn(item))), actions));
  }
  if (!status.textContent.startsWith('Not')) status.textContent = counted(items.length, kind.noun);
}
