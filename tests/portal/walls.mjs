// Tenants are walls in the portal too: a user of tenant B sees only B's directory, and
// with B's session every path of tenant A (its users, a user's profile and events)
// is refused; a plain user of A sees no administration and cannot use it.

import { scenario, credentials, login, BASE } from './lib.mjs';

await scenario('walls', async (t) => {
  const page = await t.newPage({ label: 'tenant-b' });
  await login(page, credentials());
  await page.waitForSelector('#directory li');
  const directory = await page.textContent('#directory');
  t.check("B's directory does not list A's users", !/Alice|Bob|Carol/.test(directory), directory);
  t.check('a plain user has no administration', !(await page.$('#nav a[data-page="admin"]')));
  await t.shot(page, 'tenant-b-home');

  const tenantA = process.env.PORTAL_OTHER_TENANT;
  const userA = process.env.PORTAL_OTHER_USER;
  for (const path of [`/tenants/${tenantA}/users`, `/tenants/${tenantA}/users/${userA}/profile`,
    `/tenants/${tenantA}/users/${userA}/contacts`, `/tenants/${tenantA}/users/${userA}/calls/history`]) {
    const r = await page.request.get(`${BASE()}/api/v1${path}`);
    t.check(`refused: GET ${path.replace(tenantA, 'A').replace(userA, 'a')}`, [401, 403, 404].includes(r.status()), r.status());
  }
  t.allowConsole(/WebSocket connection to .* failed/);
  const wsRefused = await page.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => { ws.close(); resolve(false); };
    ws.onerror = () => resolve(true);
    ws.onclose = () => resolve(true);
  }), `${BASE().replace('http', 'ws')}/api/v1/tenants/${tenantA}/users/${userA}/events/ws`);
  t.check("A's event stream refuses B's session", wsRefused);

  const csrf = await page.evaluate(() => window.tspsPortal.session.csrf_token);
  const write = await page.request.post(`${BASE()}/api/v1/tenants/${tenantA}/users`, {
    headers: { 'X-CSRF-Token': csrf },
    data: { extension: '1999', display_name: 'Mallory' },
  });
  t.check("refused: creating a user in A", [401, 403, 404].includes(write.status()), write.status());
  // These refusals are the point of this scenario, not faults of the page.
  t.result.failed_requests = t.result.failed_requests.filter((r) => !r.url.includes(tenantA));
});
