// Personal contacts: list, add, edit, delete, each with an optional handling code;
// import a vCard or CSV file and export both. `#/contacts?number=…&name=…` opens the
// form prefilled (from the incoming-call window); `?id=…` opens that contact.

import { api, userPath, tenantPath, ApiError } from './api.js';
import { h, clear, append, field, announce, setFieldError, clearFieldErrors } from './dom.js';

// Every example here is one tsps accepts, whatever the tenant's dialing rules.
const NUMBERS_HINT = 'One per line: a colleague\'s extension (1002) or a number with its country code '
  + '(+41 79 555 01 01); a label may come first: "mobile: +41 79 555 01 01"';
const NUMBERS_HINT_NATIONAL = 'One per line: a colleague\'s extension (1002), a number with its country code '
  + '(+41 79 555 01 01) or as dialled in your country; a label may come first: "mobile: +41 79 555 01 01"';

export function renderContacts(main, ctx) {
  const base = userPath(ctx.user, '/contacts');
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const list = h('tbody', {});
  const status = h('p', { class: 'muted', role: 'status', id: 'contacts-status' }, 'Loading…');
  let contacts = [];
  let codes = [];

  // ---- the add/edit form ----
  const name = h('input', { name: 'name', id: 'contact-name', autocomplete: 'off' });
  const company = h('input', { name: 'company', id: 'contact-company', autocomplete: 'off' });
  const email = h('input', { name: 'email', id: 'contact-email', type: 'email', autocomplete: 'off' });
  const numbers = h('textarea', { name: 'numbers', id: 'contact-numbers', rows: 3 });
  const code = h('select', { name: 'handling_code', id: 'contact-code' });
  const formTitle = h('h2', { id: 'contact-form-title', tabindex: '-1' }, 'Add a contact');
  const formErrors = h('div', { class: 'errors', role: 'alert', hidden: true });
  const save = h('button', { type: 'submit', id: 'contact-save' }, 'Save contact');
  const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => resetForm() }, 'Cancel');
  const form = h('form', { id: 'contact-form', 'aria-labelledby': 'contact-form-title', novalidate: true },
    formTitle, formErrors,
    field('Name', name), field('Company', company), field('Email', email),
    field('Numbers', numbers, NUMBERS_HINT),
    field('Handling code', code),
    h('div', { class: 'actions' }, save, cancel));
  const controls = { name, company, email, numbers, handling_code: code };
  let editing = null;

  function fillCodes() {
    const current = code.value;
    clear(code).append(h('option', { value: '' }, 'None'), ...codes.map((c) => h('option', { value: c }, c)));
    code.value = current;
  }

  function resetForm() {
    editing = null;
    form.reset();
    clearFieldErrors(form);
    formErrors.hidden = true;
    formTitle.textContent = 'Add a contact';
  }

  function edit(c) {
    resetForm();
    editing = c;
    formTitle.textContent = `Edit ${c.name}`;
    name.value = c.name || '';
    company.value = c.company || '';
    email.value = c.email || '';
    numbers.value = (c.numbers || []).map((n) => (n.label ? `${n.label}: ${n.number}` : n.number)).join('\n');
    if (c.handling_code && !codes.includes(c.handling_code)) { codes.push(c.handling_code); fillCodes(); }
    code.value = c.handling_code || '';
    formTitle.focus();
  }

  function body() {
    return {
      name: name.value.trim(),
      company: company.value.trim() || null,
      email: email.value.trim() || null,
      handling_code: code.value || null,
      numbers: numbers.value.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
        const m = /^([^:+0-9()][^:]*):\s*(.+)$/.exec(l);
        return m ? { number: m[2].trim(), label: m[1].trim() } : { number: l };
      }),
    };
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    formErrors.hidden = true;
    if (!name.value.trim()) {
      setFieldError(name, 'A contact needs a name');
      name.focus();
      return;
    }
    try {
      if (editing) await api('PUT', `${base}/${editing.id}`, body());
      else await api('POST', base, body());
      announce(`Contact ${name.value.trim()} saved`);
      resetForm();
      await load();
    } catch (err) {
      showErrors(err);
    }
  });

  function showErrors(err) {
    const issues = err instanceof ApiError ? err.issues() : [];
    let first = null;
    for (const issue of issues) {
      const key = String(issue.field).split(/[.[]/)[0];
      const c = controls[key];
      if (c) { setFieldError(c, issue.reason); first = first || c; }
    }
    formErrors.textContent = issues.length
      ? issues.map((i) => `${i.field}: ${i.reason}`).join('; ')
      : err.message;
    formErrors.hidden = false;
    (first || name).focus();
  }

  // ---- the list ----
  function renderList() {
    clear(list);
    for (const c of contacts) {
      const actions = h('td', { class: 'actions' });
      const showButtons = () => clear(actions).append(
        h('button', { type: 'button', class: 'secondary', dataset: { action: 'edit' }, 'aria-label': `Edit ${c.name}`, onclick: () => edit(c) }, 'Edit'),
        h('button', { type: 'button', class: 'danger', dataset: { action: 'delete' }, 'aria-label': `Delete ${c.name}`, onclick: confirmDelete }, 'Delete'));
      function confirmDelete() {
        const yes = h('button', {
          type: 'button', class: 'danger', dataset: { action: 'confirm-delete' },
          onclick: async () => {
            try {
              await api('DELETE', `${base}/${c.id}`);
              announce(`Contact ${c.name} deleted`);
              await load();
            } catch (err) { status.textContent = `Not deleted: ${err.message}`; }
          },
        }, `Really delete ${c.name}`);
        clear(actions).append(yes, h('button', { type: 'button', class: 'secondary', onclick: showButtons }, 'Keep'));
        yes.focus();
      }
      showButtons();
      list.append(h('tr', { dataset: { contactId: c.id } },
        h('td', {}, c.name),
        h('td', {}, c.company || ''),
        h('td', {}, (c.numbers || []).map((n) => h('div', {}, n.label ? `${n.label}: ` : '', n.display || n.number))),
        h('td', {}, c.handling_code || ''),
        actions));
    }
    status.textContent = contacts.length ? `${contacts.length} contact${contacts.length === 1 ? '' : 's'}` : 'No contacts yet.';
  }

  async function load() {
    try {
      contacts = await api('GET', base) || [];
      renderList();
    } catch (err) {
      status.textContent = `Contacts unavailable: ${err.message}`;
    }
  }

  // ---- import and export ----
  const file = h('input', { type: 'file', id: 'contacts-file', accept: '.vcf,.vcard,.csv,text/vcard,text/csv' });
  const importResult = h('div', { role: 'status', id: 'import-result' });
  const importForm = h('form', { id: 'import-form', class: 'row' },
    field('vCard or CSV file', file),
    h('button', { type: 'submit' }, 'Import'));
  importForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = file.files && file.files[0];
    if (!f) { importResult.textContent = 'Choose a file first.'; file.focus(); return; }
    const isCsv = /\.csv$/i.test(f.name) || f.type === 'text/csv';
    try {
      const r = await api('POST', `${base}/import`, await f.text(), { contentType: isCsv ? 'text/csv' : 'text/vcard' });
      append(clear(importResult), [
        h('p', { class: 'ok' }, `${r.created} created, ${r.unchanged} unchanged, ${r.skipped} skipped.`),
        r.errors && r.errors.length
          ? h('ul', { class: 'error' }, r.errors.map((x) => h('li', {}, `line ${x.line}: ${x.message}`)))
          : null]);
      await load();
    } catch (err) {
      clear(importResult).append(h('p', { class: 'error' }, `Import failed: ${err.message}`));
    }
  });

  main.append(h('h1', {}, 'Contacts'),
    h('div', { class: 'grid two' },
      h('section', { class: 'panel', 'aria-labelledby': 'contacts-title' },
        h('h2', { id: 'contacts-title' }, 'Your contacts'),
        status,
        h('div', { class: 'table-wrap' }, h('table', { id: 'contacts-table' },
          h('caption', { class: 'sr-only' }, 'Personal contacts'),
          h('thead', {}, h('tr', {}, ['Name', 'Company', 'Numbers', 'Handling code', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
          list))),
      h('div', {},
        h('section', { class: 'panel' }, form),
        h('section', { class: 'panel', 'aria-labelledby': 'import-title' },
          h('h2', { id: 'import-title' }, 'Import and export'),
          importForm, importResult,
          h('p', {},
            h('a', { href: `/api/v1${base}/export?format=vcard`, download: 'contacts.vcf', id: 'export-vcard' }, 'Export vCard'),
            ' · ',
            h('a', { href: `/api/v1${base}/export?format=csv`, download: 'contacts.csv', id: 'export-csv' }, 'Export CSV'))))));

  fillCodes();
  // With a country code, numbers may also be written as dialled at home (079 ...).
  api('GET', tenantPath(ctx.user, '/settings')).then((st) => {
    if (st && st.dialing && st.dialing.country_code) {
      const hint = numbers.parentElement.querySelector('.muted');
      if (hint) hint.textContent = NUMBERS_HINT_NATIONAL;
    }
  }).catch(() => {});
  api('GET', userPath(ctx.user, '/profile')).then((p) => {
    codes = (p.handling_codes || []).map((c) => c.name);
    fillCodes();
  }).catch(() => {});
  load().then(() => {
    const wanted = params.get('id') && contacts.find((c) => c.id === params.get('id'));
    if (wanted) edit(wanted);
    else if (params.get('number')) {
      numbers.value = params.get('number');
      name.value = params.get('name') || '';
      name.focus();
    }
  });
}
