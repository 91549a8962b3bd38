// Logging in and out: a wrong password is refused with an error a screen reader
// announces (role=alert) and focus back in the password field; the right one shows the
// home page; a reload keeps the session; logging out returns to the login screen and
// the session is gone; a session ended elsewhere (another tab logs out) closes the open
// page's event stream and the page shows the login.

import { scenario, BASE, credentials } from './lib.mjs';

await scenario('login', async (t) => {
  const creds = credentials();
  const page = await t.newPage({ label: 'login' });
  await page.goto(`${BASE()}/portal/`);
  await page.waitForSelector('#login-title');

  await page.fill('input[name="domain"]', creds.domain);
  await page.fill('input[name="login"]', creds.login);
  await page.fill('input[name="password"]', `${creds.password}-wrong`);
  await page.click('form.login button[type="submit"]');
  await page.waitForSelector('#login-error:not([hidden])');
  const error = await page.textContent('#login-error');
  t.check('wrong password shows an error', /wrong/i.test(error), error);
  t.check('the error is an alert', await page.getAttribute('#login-error', 'role') === 'alert');
  t.check('focus returns to the password', await page.evaluate(() => document.activeElement.name) === 'password');
  t.check('still on the login screen', await page.isVisible('#login-title') && !(await page.isVisible('#topbar')));
  await t.shot(page, 'login-wrong-password');

  await page.fill('input[name="password"]', creds.password);
  await page.press('input[name="password"]', 'Enter');
  await page.waitForSelector('main[data-page="home"] h1');
  t.check('home greets the user', /Hello/.test(await page.textContent('main h1')));
  t.check('focus on the page heading', await page.evaluate(() => document.activeElement.tagName) === 'H1');
  await t.shot(page, 'home-after-login');

  await page.reload();
  await page.waitForSelector('main[data-page="home"] h1');
  t.check('a reload keeps the session', true);

  await page.click('#logout');
  await page.waitForSelector('#login-title');
  const me = await page.request.get(`${BASE()}/api/v1/auth/me`);
  t.check('after logout the session is gone', me.status() === 401, me.status());
  await t.shot(page, 'logged-out');

  const unexpected = t.result.failed_requests.filter((r) => !(r.status === 401 && /\/auth\/(me|login)$/.test(r.url)));
  t.check('no unexpected failed requests', unexpected.length === 0, unexpected);
  // (After the check above: requests the page makes while its session ends elsewhere
  // may get 401, as they should.)
  // The session ends elsewhere (another tab logs out, an admin resets the password):
  // the open page learns it from its event stream (closed with 4401) and shows the
  // login without a request of its own.
  await page.fill('input[name="domain"]', creds.domain);
  await page.fill('input[name="login"]', creds.login);
  await page.fill('input[name="password"]', creds.password);
  await page.press('input[name="password"]', 'Enter');
  await page.waitForSelector('main[data-page="home"] h1');
  // The stream is open (the badge says Live) before the session is ended.
  await page.waitForFunction(() => (document.getElementById('connection') || {}).textContent === 'Live');
  const session = await (await page.request.get(`${BASE()}/api/v1/auth/me`)).json();
  const out = await page.request.post(`${BASE()}/api/v1/auth/logout`, {
    headers: { 'X-CSRF-Token': session.csrf_token },
    data: {},
  });
  t.check('the session is ended from elsewhere', out.status() === 204, out.status());
  const shown = await page.waitForSelector('#login-title', { timeout: 10000 }).then(() => true, () => false);
  t.check('the open page shows the login once its stream is closed', shown);
});
