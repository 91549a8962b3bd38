// A platform operator in the portal: logs in without a domain ("Platform operator"
// ticked), sees the Platform page (every tenant with its users count) and no phone
// pages, creates the tenant c.test, opens it ("Manage": the tenant administration,
// scoped to c.test) and adds a user there, creates and deletes d.test (with the
// confirmation), and logs out. The Rust side checks the result through the API.

import { scenario, BASE, env, unlabelledControls, settled, WAIT_MS } from './lib.mjs';

const tenantRow = (domain) => `#admin-panel table[data-kind="tenants"] tbody tr:has(td:text-is("${domain}"))`;

/** The Users cell of a tenant's row, once it reads `want`. */
async function usersCount(page, domain, want) {
  for (const until = Date.now() + WAIT_MS; Date.now() < until;) {
    const cells = await page.$$eval(`${tenantRow(domain)} td`, (tds) => tds.map((td) => td.textContent));
    if (cells[3] === want) return cells[3];
    await page.waitForTimeout(100);
  }
  return (await page.$$eval(`${tenantRow(domain)} td`, (tds) => tds.map((td) => td.textContent)))[3];
}

await scenario('operator', async (t) => {
  const login = env('TSPS_LOGIN');
  const password = env('TSPS_PASSWORD');
  const page = await t.newPage({ label: 'operator' });
  await page.goto(`${BASE()}/portal/`);
  await page.waitForSelector('#login-title');

  // ---- login: no domain for an operator ----
  await page.check('input[name="operator"]');
  t.check('login: the domain field goes away for an operator', !(await page.isVisible('input[name="domain"]')));
  t.check('login: every control is labelled', (await unlabelledControls(page)).length === 0, await unlabelledControls(page));
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', `${password}-wrong`);
  await page.click('form.login button[type="submit"]');
  await page.waitForSelector('#login-error:not([hidden])');
  t.check('login: a wrong password is refused', /wrong login or password/i.test(await page.textContent('#login-error')), await page.textContent('#login-error'));
  await page.fill('input[name="password"]', password);
  await t.shot(page, 'operator-login');
  await page.click('form.login button[type="submit"]');
  await page.waitForSelector('main[data-page="platform"] h1');

  // ---- the Platform page, and nothing of a phone ----
  const nav = await page.$$eval('#nav a', (as) => as.map((a) => a.dataset.page));
  t.check('nav: only the Platform page', JSON.stringify(nav) === '["platform"]', nav);
  t.check('top bar: no presence, no live connection', !(await page.isVisible('#presence')) && !(await page.isVisible('#connection')));
  t.check('top bar: says who', /platform operator/.test(await page.textContent('#who')), await page.textContent('#who'));
  const role = await page.evaluate(() => window.tspsPortal.session.user.role);
  t.check('the session is the operator\'s', role === 'operator', role);
  await page.waitForSelector(tenantRow('a.test'));
  await settled(page, '#admin-panel [role="status"]');
  t.check('platform: a.test with its 3 users', await usersCount(page, 'a.test', '3') === '3');
  t.check('platform: b.test with its 1 user', await usersCount(page, 'b.test', '1') === '1');
  t.check('platform: every control is labelled', (await unlabelledControls(page)).length === 0, await unlabelledControls(page));
  // The home page is no page of an operator's: the Platform page stands in.
  await page.goto(`${BASE()}/portal/#/`);
  await page.waitForSelector('main[data-page="platform"] h1');
  t.check('home is not an operator\'s page', true);
  await page.waitForSelector(tenantRow('a.test'));
  await t.shot(page, 'platform');

  // ---- create c.test ----
  await page.fill('form[data-kind="tenants"] input[name="domain"]', 'c.test');
  await page.fill('form[data-kind="tenants"] input[name="name"]', 'Tenant C');
  await page.fill('form[data-kind="tenants"] input[name="time_zone"]', 'Europe/Zurich');
  await page.click('form[data-kind="tenants"] button[type="submit"]');
  await page.waitForSelector(tenantRow('c.test'));
  t.check('platform: c.test created, no users yet', await usersCount(page, 'c.test', '0') === '0');
  // A taken domain is refused and said so.
  await page.fill('form[data-kind="tenants"] input[name="domain"]', 'c.test');
  await page.fill('form[data-kind="tenants"] input[name="name"]', 'Again');
  await page.click('form[data-kind="tenants"] button[type="submit"]');
  await page.waitForSelector('form[data-kind="tenants"] .errors:not([hidden])');
  t.check('platform: a domain taken is refused', /exists/i.test(await page.textContent('form[data-kind="tenants"] .errors')), await page.textContent('form[data-kind="tenants"] .errors'));
  await t.shot(page, 'platform-c-test-created');

  // ---- manage c.test: its administration ----
  await page.click(`${tenantRow('c.test')} [data-action="manage"]`);
  await page.waitForSelector('main[data-page="admin"] #admin-panel table[data-kind="users"]');
  await page.waitForFunction(() => /Tenant C/.test(document.querySelector('main h1').textContent));
  t.check('manage: the page names the tenant', /c\.test/.test(await page.textContent('#admin-tenant')), await page.textContent('#admin-tenant'));
  await settled(page, '#admin-panel [role="status"]');
  t.check('manage: c.test has no users yet', /^0 users/.test(await page.textContent('#admin-panel [role="status"]')), await page.textContent('#admin-panel [role="status"]'));
  await page.fill('form[data-kind="users"] input[name="extension"]', '3001');
  await page.fill('form[data-kind="users"] input[name="display_name"]', 'Cleo');
  await page.fill('form[data-kind="users"] input[name="portal_login"]', 'cleo');
  await page.click('form[data-kind="users"] button[type="submit"]');
  await page.waitForSelector('#admin-panel table[data-kind="users"] tr:has-text("Cleo")');
  t.check('manage: a user added to c.test', true);
  await settled(page, '#admin-panel [role="status"]');
  t.check('manage: counted in the singular', (await page.textContent('#admin-panel [role="status"]')).trim() === '1 user',
    await page.textContent('#admin-panel [role="status"]'));
  t.check('manage: every control is labelled', (await unlabelledControls(page)).length === 0, await unlabelledControls(page));
  await t.shot(page, 'manage-c-test-user-added');
  for (const tab of ['devices', 'dids', 'trunks']) {
    await page.click(`[data-tab="${tab}"]`);
    await page.waitForSelector(`#admin-panel table[data-kind="${tab}"]`);
    await settled(page, '#admin-panel [role="status"]');
    const counted = (await page.textContent('#admin-panel [role="status"]')).trim();
    const noun = { devices: 'devices', dids: 'numbers', trunks: 'trunks' }[tab];
    t.check(`manage: ${tab} listed, counted in words`, counted === `0 ${noun}`, counted);
    const heading = (await page.textContent(`form[data-kind="${tab}"] h2`)).trim();
    t.check(`manage: ${tab} form says what it adds`, heading === `Add a ${noun.slice(0, -1)}`, heading);
  }
  // A trunk with five mistakes: all marked after one submit, each beside its field.
  const trunkForm = 'form[data-kind="trunks"]';
  await page.fill(`${trunkForm} input[name="peer_host"]`, 'not a host!');
  await page.fill(`${trunkForm} input[name="peer_port"]`, '0');
  await page.fill(`${trunkForm} input[name="username"]`, 'only-a-name');
  await page.fill(`${trunkForm} input[name="inbound_sources"]`, '10.0.0.0/8');
  await page.click(`${trunkForm} button[type="submit"]`);
  await page.waitForSelector(`${trunkForm} .errors:not([hidden])`);
  const marked = await page.$$eval(`${trunkForm} [aria-invalid="true"]`, (els) => els.map((e) => e.name));
  t.check('manage: one submit marks every wrong field of a trunk',
    ['name', 'peer_host', 'peer_port', 'username', 'inbound_sources'].every((n) => marked.includes(n)), marked);
  t.check('manage: an empty required field says so', (await page.textContent(`${trunkForm} [name="name"] ~ .field-error`)).trim() === 'Required');
  t.check('manage: the summary counts them', /5 fields/.test(await page.textContent(`${trunkForm} .errors`)), await page.textContent(`${trunkForm} .errors`));
  await t.shot(page, 'manage-trunk-errors');

  // ---- back to the platform: c.test counts its user; d.test created and deleted ----
  await page.click('#admin-tenant a[href="#/platform"]');
  await page.waitForSelector(tenantRow('c.test'));
  t.check('platform: c.test now has 1 user', await usersCount(page, 'c.test', '1') === '1');
  await page.fill('form[data-kind="tenants"] input[name="domain"]', 'd.test');
  await page.fill('form[data-kind="tenants"] input[name="name"]', 'Tenant D');
  await page.click('form[data-kind="tenants"] button[type="submit"]');
  await page.waitForSelector(tenantRow('d.test'));
  await page.click(`${tenantRow('d.test')} [data-action="delete"]`);
  const confirm = await page.textContent(`${tenantRow('d.test')} [data-action="confirm-delete"]`);
  t.check('delete asks first, naming what goes', /d\.test/.test(confirm) && /users/.test(confirm), confirm);
  await t.shot(page, 'platform-delete-confirmation');
  await page.click(`${tenantRow('d.test')} [data-action="confirm-delete"]`);
  await page.waitForSelector(tenantRow('d.test'), { state: 'detached' });
  // The list is loaded again: c.test comes back, d.test does not.
  await page.waitForSelector(tenantRow('c.test'));
  t.check('platform: d.test deleted', (await page.$$(tenantRow('d.test'))).length === 0);
  await t.shot(page, 'platform-after');

  // ---- a phone-sized screen ----
  await page.setViewportSize({ width: 390, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  t.check('platform fits a phone screen (the table scrolls in its box)', overflow <= 1, overflow);
  await t.shot(page, 'platform-phone');
  await page.setViewportSize({ width: 1280, height: 860 });

  // ---- logout ----
  await page.click('#logout');
  await page.waitForSelector('#login-title');
  const me = await page.request.get(`${BASE()}/api/v1/auth/me`);
  t.check('after logout the session is gone', me.status() === 401, me.status());
  t.check('the login remembers the operator', await page.isChecked('input[name="operator"]'));

  const expected = (r) => (r.status === 401 && /\/auth\/(me|login)$/.test(r.url))
    || (r.status === 409 && r.method === 'POST' && /\/tenants$/.test(r.url))
    || (r.status === 400 && r.method === 'POST' && /\/trunks$/.test(r.url));
  const unexpected = t.result.failed_requests.filter((r) => !expected(r));
  t.check('no unexpected failed requests', unexpected.length === 0, unexpected);
});
