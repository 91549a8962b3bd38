// The login screen: tenant domain, extension (or portal login) and password; or, for a
// platform operator, "Platform operator" ticked, login and password (no domain).

import { api } from './api.js';
import { h, field, setFieldError, clearFieldErrors } from './dom.js';

const FIELD_OF = { domain: 'domain', login: 'login', password: 'password' };

export function renderLogin(main, { onLoggedIn }) {
  const remembered = (() => {
    try { return localStorage.getItem('tsps.domain') || ''; } catch (_) { return ''; }
  })();
  const rememberedOperator = (() => {
    try { return localStorage.getItem('tsps.operator') === '1'; } catch (_) { return false; }
  })();
  const domain = h('input', { name: 'domain', autocomplete: 'organization', required: true, value: remembered, autocapitalize: 'none', spellcheck: 'false' });
  const login = h('input', { name: 'login', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const operator = h('input', { name: 'operator', type: 'checkbox', checked: rememberedOperator });
  const error = h('div', { class: 'errors', id: 'login-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const controls = { domain, login, password };
  const domainField = field('Domain', domain, 'Your company\'s SIP domain, e.g. example.com');
  const loginLabel = h('span', {}, 'Extension or login');
  const loginField = field(loginLabel, login);

  // An operator belongs to no tenant: the domain field goes away.
  const showOperator = () => {
    domainField.hidden = operator.checked;
    domain.required = !operator.checked;
    loginLabel.textContent = operator.checked ? 'Operator login' : 'Extension or login';
  };
  operator.addEventListener('change', () => {
    showOperator();
    (operator.checked || domain.value ? login : domain).focus();
  });
  showOperator();

  const form = h('form', { class: 'panel login', novalidate: true, 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'tsps portal'),
    h('p', { class: 'muted' }, 'Log in to see and control your phones.'),
    error,
    domainField,
    loginField,
    field('Password', password),
    h('label', { class: 'field inline checkbox' }, operator, 'Platform operator (no domain)'),
    submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    error.hidden = true;
    const asOperator = operator.checked;
    const missing = Object.entries(controls)
      .filter(([name]) => !(asOperator && name === 'domain'))
      .filter(([, c]) => !c.value.trim());
    if (missing.length) {
      for (const [, c] of missing) setFieldError(c, 'Required');
      missing[0][1].focus();
      return;
    }
    submit.disabled = true;
    const body = asOperator
      ? { operator: true, login: login.value.trim(), password: password.value }
      : { domain: domain.value.trim(), login: login.value.trim(), password: password.value };
    try {
      const me = await api('POST', '/auth/login', body, { allow401: true });
      try {
        localStorage.setItem('tsps.operator', asOperator ? '1' : '0');
        if (!asOperator) localStorage.setItem('tsps.domain', domain.value.trim());
      } catch (_) { /* optional */ }
      onLoggedIn(me);
    } catch (err) {
      submit.disabled = false;
      const message = err.status === 401 || err.status === 403
        ? (asOperator ? 'Wrong login or password.' : 'Wrong domain, login or password.')
        : err.status === 429
          ? 'Too many attempts. Wait a moment and try again.'
          : `Login failed: ${err.message}`;
      error.textContent = message;
      error.hidden = false;
      for (const issue of err.issues ? err.issues() : []) {
        const c = controls[FIELD_OF[issue.field]];
        if (c) setFieldError(c, issue.reason);
      }
      password.value = '';
      password.focus();
    }
  });

  main.append(form);
  (remembered || rememberedOperator ? login : domain).focus();
}
