// The portal before anyone logs in: `/` redirects to the app, the page and its files
// carry the security headers and validators, the login screen renders with labelled
// fields, an empty submit marks the fields, and nothing logs an error.

import { scenario, BASE } from './lib.mjs';

const SECURITY = {
  'content-security-policy': (v) => /default-src 'self'/.test(v) && /script-src 'self'/.test(v) && !/unsafe-(inline|eval)/.test(v),
  'x-content-type-options': (v) => v === 'nosniff',
  'referrer-policy': (v) => v === 'same-origin',
  'x-frame-options': (v) => v === 'DENY',
};

await scenario('screen', async (t) => {
  const page = await t.newPage({ label: 'login' });
  const response = await page.goto(`${BASE()}/`);
  t.check('/ redirects to /portal/', page.url() === `${BASE()}/portal/`, page.url());
  const headers = response.headers();
  for (const [name, ok] of Object.entries(SECURITY)) {
    t.check(`page header ${name}`, headers[name] && ok(headers[name]), headers[name] || null);
  }
  t.check('page is html', (headers['content-type'] || '').startsWith('text/html'), headers['content-type']);

  const asset = await page.request.get(`${BASE()}/portal/assets/app.js`);
  const ah = asset.headers();
  t.check('module served as javascript', asset.status() === 200 && ah['content-type'].startsWith('text/javascript'), ah['content-type']);
  for (const [name, ok] of Object.entries(SECURITY)) {
    t.check(`asset header ${name}`, ah[name] && ok(ah[name]), ah[name] || null);
  }
  t.check('asset has an etag and cache-control', Boolean(ah.etag) && Boolean(ah['cache-control']), { etag: ah.etag, cache: ah['cache-control'] });
  const again = await page.request.get(`${BASE()}/portal/assets/app.js`, { headers: { 'If-None-Match': ah.etag } });
  t.check('unchanged asset revalidates with 304', again.status() === 304, again.status());
  const missing = await page.request.get(`${BASE()}/portal/assets/nothing.js`);
  t.check('unknown asset is 404', missing.status() === 404, missing.status());

  await page.waitForSelector('#login-title');
  t.check('login screen shows', await page.isVisible('form.login'));
  const labels = await page.$$eval('form.login input', (els) => els.map((e) => (e.labels[0] ? e.labels[0].textContent : null)));
  t.check('every login field has a label', labels.every(Boolean), labels);
  t.check('top bar hidden before login', !(await page.isVisible('#topbar')));
  await t.shot(page, 'login');

  // Keyboard only: focus starts in the form, Enter submits; empty fields are marked.
  await page.focus('input[name="domain"]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('input[name="domain"][aria-invalid="true"]');
  const invalid = await page.$$eval('form.login [aria-invalid="true"]', (els) => els.map((e) => e.name));
  t.check('empty submit marks every field', invalid.length === 3, invalid);
  t.check('focus moves to the first missing field', await page.evaluate(() => document.activeElement.name) === 'domain');
  await t.shot(page, 'login-empty');

  // A phone-sized screen: the login form fits without sideways scrolling.
  await page.setViewportSize({ width: 375, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  t.check('login fits a phone screen', overflow <= 0, overflow);
  await t.shot(page, 'login-phone');

  // Only the session probe may fail here (401: nobody is logged in).
  const unexpected = t.result.failed_requests.filter((r) => !(r.url === '/api/v1/auth/me' && r.status === 401)
    && !(r.url.endsWith('nothing.js') && r.status === 404));
  t.check('no unexpected failed requests', unexpected.length === 0, unexpected);
});
