// Every page of the portal for a tenant admin: it renders, its form controls are
// labelled, nothing logs an error, and its main job works against the real API:
// contacts (add, a refused number shown at its field, edit, delete), settings (a 422
// shown beside the field it names, then a good save), history (filters), admin (add
// and delete a user), and the home page on a phone-sized screen.

import { scenario, login, credentials, unlabelledControls, settled, WAIT_MS, BASE } from './lib.mjs';

async function visit(t, page, name) {
  await page.click(`#nav a[data-page="${name}"]`);
  await page.waitForSelector(`main[data-page="${name}"] h1`);
  const unlabelled = await unlabelledControls(page);
  t.check(`${name}: every control is labelled`, unlabelled.length === 0, unlabelled);
  t.check(`${name}: nav marks the current page`, await page.getAttribute(`#nav a[data-page="${name}"]`, 'aria-current') === 'page');
}

await scenario('pages', async (t) => {
  const page = await t.newPage({ label: 'admin' });
  await login(page, credentials());
  await page.waitForSelector('#directory li[data-extension]');
  t.check('home: the directory lists colleagues', (await page.$$('#directory li[data-extension]')).length >= 1);
  t.check('home: every control is labelled', (await unlabelledControls(page)).length === 0, await unlabelledControls(page));
  await page.keyboard.press('Tab');
  const tag = await page.evaluate(() => document.activeElement.tagName);
  t.check('home: Tab from the heading reaches a control', ['BUTTON', 'A', 'INPUT', 'SELECT'].includes(tag), tag);
  await t.shot(page, 'home');

  // ---- presence, from the top bar ----
  await page.selectOption('#presence', 'away');
  const statusUrl = await page.evaluate(() => {
    const u = window.tspsPortal.session.user;
    return `/api/v1/tenants/${u.tenant_id}/users/${u.user_id}/status`;
  });
  let presence = null;
  for (const until = Date.now() + WAIT_MS; Date.now() < until;) {
    presence = (await (await page.request.get(`${BASE()}${statusUrl}`)).json()).presence;
    if (presence === 'away') break;
    await page.waitForTimeout(100);
  }
  t.check('presence set from the top bar', presence === 'away', presence);

  // ---- history ----
  await visit(t, page, 'history');
  await settled(page, '#history-status');
  await page.selectOption('#history-direction', 'incoming');
  await settled(page, '#history-status');
  t.check('history: a table with the six columns', (await page.$$eval('#history-table th', (th) => th.length)) === 6);
  t.check('history: answers without an error', !/unavailable/i.test(await page.textContent('#history-status')), await page.textContent('#history-status'));
  await t.shot(page, 'history');

  // ---- contacts ----
  await visit(t, page, 'contacts');
  await settled(page, '#contacts-status');
  await page.fill('#contact-name', 'Anna Muster');
  await page.fill('#contact-numbers', 'call me');
  await page.click('#contact-save');
  await page.waitForSelector('#contact-numbers[aria-invalid="true"]');
  t.check('contacts: a bad number is shown at the numbers field', /letters|number/i.test(await page.textContent('#contact-numbers-error')), await page.textContent('#contact-numbers-error'));
  await t.shot(page, 'contacts-invalid');
  await page.fill('#contact-numbers', 'work: +41 44 555 01 00');
  await page.fill('#contact-company', 'Muster AG');
  await page.click('#contact-save');
  await page.waitForSelector('#contacts-table tr[data-contact-id]:has-text("Anna Muster")');
  t.check('contacts: the number is shown as people read it', (await page.textContent('#contacts-table tbody')).includes('+41 44 555 01 00'),
    await page.textContent('#contacts-table tbody'));
  await page.click('#contacts-table tr:has-text("Anna Muster") [data-action="edit"]');
  await page.fill('#contact-name', 'Anna Muster-Meier');
  await page.click('#contact-save');
  await page.waitForSelector('#contacts-table tr:has-text("Anna Muster-Meier")');
  t.check('contacts: edited', true);
  await t.shot(page, 'contacts');
  await page.click('#contacts-table tr:has-text("Anna Muster-Meier") [data-action="delete"]');
  await page.click('#contacts-table tr:has-text("Anna Muster-Meier") [data-action="confirm-delete"]');
  await page.waitForSelector('#contacts-table tr:has-text("Anna Muster-Meier")', { state: 'detached' });
  t.check('contacts: deleted', true);
  // The form's own example is a number tsps takes, and a colleague is a contact by extension.
  const hint = await page.textContent('#contact-numbers ~ .muted');
  const example = (/\((\+[0-9 ]+)\)/.exec(hint) || [])[1];
  t.check('contacts: the hint gives an example', Boolean(example), hint);
  await page.fill('#contact-name', 'Example Number');
  await page.fill('#contact-numbers', `mobile: ${example}`);
  await page.click('#contact-save');
  await page.waitForSelector('#contacts-table tr[data-contact-id]:has-text("Example Number")');
  t.check('contacts: the hint\'s example is accepted', true);
  await page.fill('#contact-name', 'Bob at his desk');
  await page.fill('#contact-numbers', '1002');
  await page.click('#contact-save');
  const bob = await page.waitForSelector('#contacts-table tr[data-contact-id]:has-text("Bob at his desk")');
  t.check('contacts: a colleague by extension', (await bob.textContent()).includes('1002'), await bob.textContent());
  await page.fill('#contact-name', 'Nobody');
  await page.fill('#contact-numbers', '1099');
  await page.click('#contact-save');
  await page.waitForSelector('#contact-numbers[aria-invalid="true"]');
  t.check('contacts: an extension nobody has is refused, saying so',
    /no extension of this tenant/.test(await page.textContent('#contact-numbers-error')), await page.textContent('#contact-numbers-error'));
  await page.click('#contact-form button:has-text("Cancel")');

  // ---- settings ----
  await visit(t, page, 'settings');
  await page.waitForFunction(() => (document.querySelector('#profile-json')?.value || '').length > 2);
  const ext = await page.evaluate(() => window.tspsPortal.session.user.extension);
  await page.fill('#profile-forwarding-busy', ext);
  await page.click('#profile-save');
  await page.waitForSelector('#profile-forwarding-busy[aria-invalid="true"]');
  const busyError = await page.textContent('#profile-forwarding-busy-error');
  t.check('settings: a forward to oneself is refused at its field', /loop|own/i.test(busyError), busyError);
  t.check('settings: the summary is an alert', await page.isVisible('#profile-errors[role="alert"]'));
  await t.shot(page, 'settings-invalid');
  await page.fill('#profile-forwarding-busy', '');
  await page.check('#profile-dnd-enabled');
  await page.click('#profile-save');
  await page.waitForSelector('#profile-saved:has-text("saved")');
  t.check('settings: a good profile saves', (await page.inputValue('#profile-json')).includes('"enabled": true'));
  await t.shot(page, 'settings');

  // One profile behind both views: a JSON edit shows in the form and is what is saved.
  await page.click('#profile-form details summary');
  const edited = JSON.parse(await page.inputValue('#profile-json'));
  edited.call_waiting = false;
  edited.ring_seconds = 45;
  await page.fill('#profile-json', JSON.stringify(edited, null, 2));
  t.check('settings: a JSON edit shows in the form',
    !(await page.isChecked('#profile-call_waiting')) && (await page.inputValue('#profile-ring_seconds')) === '45');
  await page.click('#profile-save');
  await page.waitForSelector('#profile-saved:has-text("saved")');
  await page.reload();
  await page.waitForFunction(() => (document.querySelector('#profile-json')?.value || '').length > 2);
  t.check('settings: what the JSON said is what was saved',
    !(await page.isChecked('#profile-call_waiting')) && (await page.inputValue('#profile-ring_seconds')) === '45',
    await page.inputValue('#profile-json'));
  // A form edit shows in the JSON at once.
  await page.fill('#profile-ring_seconds', '50');
  t.check('settings: a form edit shows in the JSON', JSON.parse(await page.inputValue('#profile-json')).ring_seconds === 50);
  // JSON that does not parse: said beside it, and there is nothing to save.
  await page.click('#profile-form details summary');
  await page.fill('#profile-json', '{"ring_seconds": ');
  await page.waitForSelector('#profile-json[aria-invalid="true"]');
  t.check('settings: broken JSON is said beside it', /Not valid JSON/.test(await page.textContent('#profile-json-error')));
  t.check('settings: broken JSON cannot be saved', await page.isDisabled('#profile-save'));
  t.check('settings: broken JSON says why', await page.isVisible('#profile-json-broken'));
  // A value of the wrong type: the error names the field, not a line and column.
  await page.fill('#profile-json', JSON.stringify({ ...edited, ring_seconds: 'forty' }, null, 2));
  t.check('settings: fixed JSON can be saved again', !(await page.isDisabled('#profile-save')));
  await page.click('#profile-save');
  await page.waitForSelector('#profile-errors:not([hidden])');
  const typeError = await page.textContent('#profile-errors');
  t.check('settings: a type error names its field', /ring_seconds/.test(typeError) && /whole number/.test(typeError), typeError);
  t.check('settings: a type error says no line and column', !/line \d+ column/.test(typeError), typeError);
  t.check('settings: the field with the wrong type is marked',
    /whole number/.test(await page.textContent('#profile-ring_seconds-error')), await page.textContent('#profile-ring_seconds-error'));
  await t.shot(page, 'settings-type-error');

  // ---- admin ----
  await visit(t, page, 'admin');
  await page.waitForSelector('#admin-panel table[data-kind="users"] tbody tr');
  await page.fill('form[data-kind="users"] input[name="extension"]', '1009');
  await page.fill('form[data-kind="users"] input[name="display_name"]', 'Eve');
  await page.click('form[data-kind="users"] button[type="submit"]');
  await page.waitForSelector('#admin-panel table[data-kind="users"] tr:has-text("Eve")');
  t.check('admin: a user was added', true);
  await t.shot(page, 'admin-users');
  await page.click('#admin-panel tr:has-text("Eve") [data-action="delete"]');
  await page.click('#admin-panel tr:has-text("Eve") [data-action="confirm-delete"]');
  await page.waitForSelector('#admin-panel table[data-kind="users"] tr:has-text("Eve")', { state: 'detached' });
  t.check('admin: the user was deleted', true);
  for (const tab of ['devices', 'dids', 'trunks']) {
    await page.click(`[data-tab="${tab}"]`);
    await page.waitForSelector(`#admin-panel table[data-kind="${tab}"]`);
    await settled(page, '#admin-panel [role="status"]');
    t.check(`admin: ${tab} listed`, !/Not available/.test(await page.textContent('#admin-panel [role="status"]')), await page.textContent('#admin-panel [role="status"]'));
    await t.shot(page, `admin-${tab}`);
  }

  // ---- the tenant's notice: saved by the admin, shown on the home page ----
  await page.click('#nav a[data-page="admin"]');
  await page.waitForSelector('#notice-save:not([disabled])');
  await page.fill('#admin-notice', 'Office closed on Friday afternoon.');
  await page.click('#notice-save');
  await page.waitForSelector('#notice-form [role="status"]:has-text("Notice saved")');
  await page.click('#nav a[data-page="home"]');
  await page.waitForSelector('#notice:not([hidden]) >> text=Office closed on Friday afternoon.');
  t.check('home: the tenant notice is shown', true);
  await t.shot(page, 'home-notice');

  // ---- a phone-sized screen ----
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('#nav a[data-page="home"]');
  await page.waitForSelector('main[data-page="home"] h1');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  t.check('home fits a phone screen', overflow <= 0, overflow);
  await t.shot(page, 'home-phone');

  const unexpected = t.result.failed_requests.filter((r) => !(r.status === 401 && r.url.endsWith('/auth/me'))
    && !(r.status === 422 && r.method !== 'GET')
    // The profile with a value of the wrong type, sent on purpose.
    && !(r.status === 400 && r.method === 'PUT' && r.url.endsWith('/profile')));
  t.check('no unexpected failed requests', unexpected.length === 0, unexpected);
});
