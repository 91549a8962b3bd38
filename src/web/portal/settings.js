// Settings: the user's feature profile. A form for the common parts (forwarding, do not
// disturb, call waiting, ring time, simultaneous ring, attendant, rejecting calls with a
// message to the caller) and the full profile as JSON for the rest (handling codes,
// schedules, sequential ring, caller rules). Both show one profile: a field edited in
// the form is written into the JSON at once, an edit of the JSON refills the form, and
// Save sends exactly what the JSON shows (while it does not parse, there is nothing to
// save). The API's errors are shown beside the field they name (or beside the JSON).

import { api, userPath, ApiError } from './api.js';
import { h, field, announce, setFieldError, clearFieldErrors } from './dom.js';
import { toTarget, targetText } from './calls.js';

export function renderSettings(main, ctx) {
  const path = userPath(ctx.user, '/profile');
  const input = (name, attrs = {}) => h('input', { name, id: `profile-${name.replaceAll('.', '-')}`, autocomplete: 'off', dataset: { field: name }, ...attrs });
  const checkbox = (name) => input(name, { type: 'checkbox' });

  const c = {
    'forwarding.always': input('forwarding.always', { inputmode: 'tel' }),
    'forwarding.busy': input('forwarding.busy', { inputmode: 'tel' }),
    'forwarding.no_answer.target': input('forwarding.no_answer.target', { inputmode: 'tel' }),
    'forwarding.no_answer.seconds': input('forwarding.no_answer.seconds', { type: 'number', min: 5, max: 600 }),
    'forwarding.unreachable': input('forwarding.unreachable', { inputmode: 'tel' }),
    'dnd.enabled': checkbox('dnd.enabled'),
    'dnd.exceptions': input('dnd.exceptions'),
    call_waiting: checkbox('call_waiting'),
    ring_seconds: input('ring_seconds', { type: 'number', min: 5, max: 600 }),
    simultaneous: input('simultaneous'),
    attendant: input('attendant', { inputmode: 'tel' }),
    'default_handling.method': checkbox('default_handling.method'),
    'default_handling.text': input('default_handling.text', { maxlength: 500 }),
    'default_handling.code': h('select', { name: 'default_handling.code', id: 'profile-default_handling-code', dataset: { field: 'default_handling.code' } },
      h('option', { value: '480' }, 'Unavailable'),
      h('option', { value: '486' }, 'Busy'),
      h('option', { value: '603' }, 'Declined')),
  };
  const raw = h('textarea', { name: 'profile', id: 'profile-json', rows: 18, spellcheck: 'false', dataset: { field: '' } });
  const errors = h('div', { class: 'errors', role: 'alert', id: 'profile-errors', hidden: true });
  const saved = h('p', { class: 'ok', role: 'status', id: 'profile-saved' });
  const save = h('button', { type: 'submit', id: 'profile-save' }, 'Save settings');
  const hint = h('p', { class: 'muted', id: 'profile-json-broken', hidden: true },
    'The profile JSON does not parse: fix it to change the form or to save.');
  const targetHint = 'An extension, a +number, or "attendant"; empty for none';

  const checkField = (control, label) => h('div', { class: 'field inline' }, control,
    h('label', { for: control.id }, label),
    h('div', { class: 'field-error', id: `${control.id}-error`, hidden: true }));
  const form = h('form', { id: 'profile-form', novalidate: true },
    errors,
    h('fieldset', {}, h('legend', {}, 'Forwarding'),
      field('Always forward to', c['forwarding.always'], targetHint),
      field('When busy, forward to', c['forwarding.busy'], targetHint),
      h('div', { class: 'row' },
        field('When not answered, forward to', c['forwarding.no_answer.target'], targetHint),
        field('after (seconds)', c['forwarding.no_answer.seconds'])),
      field('When no phone is registered, forward to', c['forwarding.unreachable'], targetHint)),
    h('fieldset', {}, h('legend', {}, 'Availability'),
      checkField(c['dnd.enabled'], 'Do not disturb'),
      field('Handling codes that still ring during do not disturb', c['dnd.exceptions'], 'Comma separated, e.g. VIP, Family'),
      checkField(c.call_waiting, 'Call waiting (a second call may ring while on a call)')),
    h('fieldset', {}, h('legend', {}, 'Ringing'),
      field('Ring for (seconds)', c.ring_seconds),
      field('Also ring at the same time', c.simultaneous, 'Comma separated extensions or numbers'),
      field('Attendant', c.attendant, 'An extension or a number')),
    h('fieldset', {}, h('legend', {}, 'Reject calls with a message'),
      checkField(c['default_handling.method'], 'Reject every call and send the caller a message'),
      field('Message', c['default_handling.text'], 'Up to 500 characters, e.g. "In a meeting until 3, I will call back". Colleagues see it in their portal and on their phone.'),
      field('Turn the call away as', c['default_handling.code'])),
    h('details', {},
      h('summary', {}, 'Full profile (JSON): handling codes, schedules, sequential ring, caller rules'),
      field('Profile JSON', raw, 'The same profile as the fields above: an edit here shows there, and the other way round.')),
    h('div', { class: 'actions' }, save),
    hint,
    saved);

  /** The profile both views show: set from the server, the JSON or a form field. */
  let model = null;

  /** The form's fields from `p` (the JSON view is left as it is). */
  function showForm(p) {
    const f = p.forwarding || {};
    c['forwarding.always'].value = targetText(f.always);
    c['forwarding.busy'].value = targetText(f.busy);
    c['forwarding.no_answer.target'].value = f.no_answer ? targetText(f.no_answer.target) : '';
    c['forwarding.no_answer.seconds'].value = f.no_answer ? f.no_answer.seconds : 20;
    c['forwarding.unreachable'].value = targetText(f.unreachable);
    c['dnd.enabled'].checked = Boolean(p.dnd && p.dnd.enabled);
    c['dnd.exceptions'].value = ((p.dnd && p.dnd.exceptions) || []).join(', ');
    c.call_waiting.checked = p.call_waiting !== false;
    c.ring_seconds.value = p.ring_seconds ?? 30;
    c.simultaneous.value = (p.simultaneous || []).map(targetText).join(', ');
    c.attendant.value = targetText(p.attendant);
    const handling = p.default_handling || {};
    const withMessage = handling.method === 'reject_with_message';
    c['default_handling.method'].checked = withMessage;
    c['default_handling.text'].value = withMessage ? handling.text || '' : '';
    c['default_handling.code'].value = String(withMessage && handling.code ? handling.code : 480);
  }

  function show(p) {
    model = p;
    showForm(p);
    raw.value = JSON.stringify(p, null, 2);
    jsonBroken(null);
  }

  const optTarget = (v) => (v.trim() ? toTarget(v) : null);
  const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
  const number = (v, otherwise) => (String(v).trim() === '' ? otherwise : Number(v));
  const forwarding = (p) => (p.forwarding = { ...(p.forwarding || {}) });
  const noAnswer = (p) => {
    const target = optTarget(c['forwarding.no_answer.target'].value);
    forwarding(p).no_answer = target
      ? { target, seconds: number(c['forwarding.no_answer.seconds'].value, 20) } : null;
  };
  const handling = (p) => {
    if (c['default_handling.method'].checked) {
      p.default_handling = { method: 'reject_with_message', text: c['default_handling.text'].value, code: Number(c['default_handling.code'].value) };
    } else if (p.default_handling && p.default_handling.method === 'reject_with_message') {
      // Unticked: calls ring again (other handlings stay as the JSON says).
      p.default_handling = { method: 'ring' };
    }
  };
  /** Each form field writes only its own part of the profile. */
  const writes = {
    'forwarding.always': (p, v) => { forwarding(p).always = optTarget(v); },
    'forwarding.busy': (p, v) => { forwarding(p).busy = optTarget(v); },
    'forwarding.no_answer.target': noAnswer,
    'forwarding.no_answer.seconds': noAnswer,
    'forwarding.unreachable': (p, v) => { forwarding(p).unreachable = optTarget(v); },
    'dnd.enabled': (p) => { p.dnd = { ...(p.dnd || {}), enabled: c['dnd.enabled'].checked }; },
    'dnd.exceptions': (p, v) => { p.dnd = { ...(p.dnd || {}), exceptions: list(v) }; },
    call_waiting: (p) => { p.call_waiting = c.call_waiting.checked; },
    ring_seconds: (p, v) => { p.ring_seconds = number(v, 30); },
    simultaneous: (p, v) => { p.simultaneous = list(v).map(toTarget); },
    attendant: (p, v) => { p.attendant = optTarget(v); },
    'default_handling.method': handling,
    'default_handling.text': handling,
    'default_handling.code': handling,
  };
  for (const [name, control] of Object.entries(c)) {
    const edit = () => {
      if (!model) return;
      const p = structuredClone(model);
      writes[name](p, control.value);
      model = p;
      raw.value = JSON.stringify(p, null, 2);
      setFieldError(control, null);
    };
    control.addEventListener('input', edit);
    control.addEventListener('change', edit);
  }

  /** Marks the JSON as not parsing (`why`), or as fine (null): the form and Save wait. */
  function jsonBroken(why) {
    setFieldError(raw, why);
    hint.hidden = !why;
    save.disabled = Boolean(why);
    for (const set of form.querySelectorAll('fieldset')) set.disabled = Boolean(why);
  }

  raw.addEventListener('input', () => {
    let p;
    try {
      p = JSON.parse(raw.value);
    } catch (e) {
      jsonBroken(`Not valid JSON: ${e.message}`);
      return;
    }
    if (!p || typeof p !== 'object' || Array.isArray(p)) {
      jsonBroken('The profile is a JSON object: { ... }');
      return;
    }
    jsonBroken(null);
    model = p;
    showForm(p);
  });

  /** The control for an API field path: the longest form field that is a prefix of it. */
  function controlFor(fieldPath) {
    let best = null;
    for (const [name, control] of Object.entries(c)) {
      if ((fieldPath === name || fieldPath.startsWith(`${name}.`) || fieldPath.startsWith(`${name}[`))
        && (!best || name.length > best[0].length)) best = [name, control];
    }
    return best ? best[1] : raw;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    errors.hidden = true;
    saved.textContent = '';
    if (!model) return;
    try {
      const p = await api('PUT', path, model);
      show(p || model);
      saved.textContent = 'Settings saved.';
      announce('Settings saved');
    } catch (err) {
      const issues = err instanceof ApiError ? err.issues() : [];
      const byControl = new Map();
      for (const i of issues) {
        const control = controlFor(String(i.field || ''));
        const text = control === raw && i.field ? `${i.field}: ${i.reason}` : i.reason;
        byControl.set(control, [...(byControl.get(control) || []), text]);
      }
      for (const [control, texts] of byControl) setFieldError(control, texts.join('; '));
      if (byControl.has(raw)) raw.closest('details').open = true;
      errors.textContent = issues.length === 1 ? `Not saved: ${issues[0].field ? `${issues[0].field}: ` : ''}${issues[0].reason}`
        : issues.length ? `Not saved: ${issues.length} problems, see the marked fields.` : `Not saved: ${err.message}`;
      errors.hidden = false;
      const first = byControl.keys().next().value;
      if (first) first.focus();
    }
  });

  main.append(h('h1', {}, 'Settings'), h('section', { class: 'panel' }, form));
  api('GET', path).then(show).catch((err) => {
    errors.textContent = `Settings unavailable: ${err.message}`;
    errors.hidden = false;
  });
}
