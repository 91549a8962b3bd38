// Click-to-dial from the directory: the user's chosen phone rings first, then the
// colleague's; the browser shows the outgoing line from dialing to connected; the
// user hangs up in the browser.

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineAction, WAIT_MS } from './lib.mjs';

await scenario('dial', async (t) => {
  const page = await t.newPage({ label: 'caller' });
  await login(page, credentials());
  await waitLive(page);
  const callee = process.env.PORTAL_CALLEE || '1002';
  // The phones register before this step: the picker lists them once the stream says so.
  emit({ event: 'ready' });
  await waitForCommand('phones_ready');
  await page.waitForFunction(() => !document.querySelector('#device-picker').disabled, null, { timeout: WAIT_MS });
  await t.shot(page, 'before-dial');

  await page.click(`#directory button[data-dial="${callee}"]`);
  const line = await page.waitForSelector('#lines li[data-direction="out"]', { timeout: WAIT_MS });
  const callId = await line.getAttribute('data-call-id');
  t.check('the outgoing call shows', Boolean(callId));
  t.check('it names the callee', (await line.textContent()).includes(callee), await line.textContent());
  emit({ event: 'dialing', call_id: callId });
  await page.waitForSelector(`#lines li[data-call-id="${callId}"][data-state="active"]`, { timeout: 20000 });
  t.check('connected', true);
  await t.shot(page, 'connected');
  emit({ event: 'connected' });
  await waitForCommand('release');
  await lineAction(page, callId, 'release');
  await page.waitForSelector(`#lines li[data-call-id="${callId}"]`, { state: 'detached' });
  t.check('hung up', true);

  // Wrong input gets a message a person understands, and nothing widens the page.
  const errorText = async () => (await page.textContent('#dial-error')).trim();
  const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  await page.fill('#dial-number', '1'.repeat(300));
  const typed = await page.inputValue('#dial-number');
  t.check('the number field takes at most 32 characters', typed.length === 32, typed.length);
  for (let i = 0; i < 3; i++) await page.click('#dial-form button[data-digit="5"]');
  t.check('the dial pad adds no digit beyond 32', (await page.inputValue('#dial-number')).length === 32);
  await page.fill('#dial-number', '');
  // Pasted past the field's limit (a script, an old browser): tsps says why.
  await page.evaluate(() => { document.querySelector('#dial-number').value = '7'.repeat(300); });
  await page.click('#call-button');
  await page.waitForFunction(() => document.querySelector('#dial-error').textContent.includes('at most'), null, { timeout: WAIT_MS });
  t.check('too long: says the limit', /at most 32 characters/.test(await errorText()), await errorText());
  // An outside number on a tenant without a trunk: says so, and who can help.
  await page.fill('#dial-number', '+41790000009');
  await page.click('#call-button');
  await page.waitForFunction(() => document.querySelector('#dial-error').textContent.includes('trunk'), null, { timeout: WAIT_MS });
  const noTrunk = await errorText();
  t.check('no trunk: says outside numbers cannot be called', /outside numbers cannot be called/.test(noTrunk), noTrunk);
  t.check('no trunk: says whom to ask', /administrator/.test(noTrunk), noTrunk);
  // A long word echoed in the error wraps on a phone-sized window.
  await page.setViewportSize({ width: 360, height: 720 });
  await page.fill('#dial-number', '*'.repeat(32));
  await page.click('#call-button');
  await page.waitForFunction(() => document.querySelector('#dial-error').textContent.includes('no such'), null, { timeout: WAIT_MS });
  t.check('the echoed input is in the message', (await errorText()).includes('*'.repeat(32)), await errorText());
  t.check('a phone-sized page does not scroll sideways', await fits(),
    await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]));
  // Whatever a message echoes (a caller ID from a carrier has no length limit), a word
  // longer than the screen wraps.
  await page.evaluate(() => { document.querySelector('#dial-error').textContent = `Call failed: ${'8'.repeat(300)}`; });
  t.check('a 300-character word wraps inside the page', await fits(),
    await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]));
  await t.shot(page, 'errors-narrow');
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.fill('#dial-number', '9'.repeat(32));
  await page.click('#call-button');
  await page.waitForFunction(() => document.querySelector('#dial-error').textContent.includes('trunk'), null, { timeout: WAIT_MS });
  t.check('a wide page does not scroll sideways', await fits());
  emit({ event: 'released' });
});
