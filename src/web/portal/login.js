// The login screen: tenant domain, extension (or portal login) and password.

import { api } from './api.js';
import { h, field, setFieldError, clearFieldErrors } from './dom.js';

const FIELD_OF = { domain: 'domain', login: 'login', password: 'password' };

export function renderLogin(main, { onLoggedIn }) {
  const remembered = (() => {
    try { return localStorage.getItem('tsps.domain') || ''; } catch (_) { return ''; }
  })();
  const domain = h('input', { name: 'domain', autocomplete: 'organization', required: true, value: remembered, autocapitalize: 'none', spellcheck: 'false' });
  const login = h('input', { name: 'login', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('div', { class: 'errors', id: 'login-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const controls = { domain, login, password };

  const form = h('form', { class: 'panel login', novalidate: true, 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'tsps portal'),
    h('p', { class: 'muted' }, 'Log in to see and control your phones.'),
    error,
    field('Domain', domain, 'Your company\'s SIP domain, e.g. example.com'),
    field('Extension or login', login),
    field('Password', password),
    submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    error.hidden = true;
    const missing = Object.entries(controls).filter(([, c]) => !c.value.trim());
    if (missing.length) {
      for (const [, c] of missing) setFieldError(c, 'Required');
      missing[0][1].focus();
      return;
    }
    submit.disabled = true;
    try {
      const me = await api('POST', '/auth/login', {
        domain: domain.value.trim(),
        login: login.value.trim(),
        password: password.value,
      }, { allow401: true });
      try { localStorage.setItem('tsps.domain', domain.value.trim()); } catch (_) { /* optional */ }
      onLoggedIn(me);
    } catch (err) {
      submit.disabled = false;
      const message = err.status === 401 || err.status === 403
        ? 'Wrong domain, login or password.'
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
  (remembered ? login : domain).focus();
}
