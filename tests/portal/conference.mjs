// A three-way conference from the browser: the user dials two colleagues from the dial
// pad (their own phone rings first, then the colleague), holds the first call, and the
// active second line offers "Conference"; after the merge one line shows "Conference
// with Bob, Carol" (hosted by the user) and the other line is gone; "End conference"
// ends it for everyone. The Rust side checks what the phones got (the bridge's
// re-INVITEs, the BYEs).

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineIn, lineAction, WAIT_MS } from './lib.mjs';

/** Dials `number` with the dial pad's digit buttons; resolves to the new line's call id once active. */
async function dialFromPad(page, number, known) {
  await page.fill('#dial-number', '');
  for (const digit of number) await page.click(`#dial-form button[data-digit="${digit}"]`);
  await page.click('#call-button');
  const handle = await page.waitForFunction((seen) => {
    const li = [...document.querySelectorAll('#lines li[data-call-id]')]
      .find((x) => !seen.includes(x.dataset.callId) && x.dataset.state === 'active');
    return li ? li.dataset.callId : null;
  }, known, { timeout: 20000 });
  return handle.jsonValue();
}

const lineSel = (call) => `#lines li[data-call-id="${call}"]`;

await scenario('conference', async (t) => {
  const page = await t.newPage({ label: 'host' });
  await login(page, credentials());
  await waitLive(page);
  // The merge is asked of the line that already is a conference, whichever was clicked
  // (tsps refuses to merge a conference into a two-party call).
  const pairs = await page.evaluate(async () => {
    const { conferencePair } = await import('/portal/assets/calls.js');
    const conf = { call_id: 'conf', conference: { host: true, parties: [] } };
    const plain = { call_id: 'plain' };
    return [
      conferencePair(plain, { call_id: 'other' }),
      conferencePair(plain, conf),
      conferencePair(conf, plain),
    ];
  });
  t.check('the clicked line stays unless the other is the conference', JSON.stringify(pairs) === JSON.stringify([
    { call: 'plain', with: 'other' }, { call: 'conf', with: 'plain' }, { call: 'conf', with: 'plain' },
  ]), pairs);
  emit({ event: 'ready' });
  await waitForCommand('phones_ready');

  const first = await dialFromPad(page, '1002', []);
  t.check('the call to Bob is active', true);
  await lineAction(page, first, 'hold');
  await lineIn(page, first, 'held', 20000);
  t.check('the call to Bob is held', true);

  const second = await dialFromPad(page, '1003', [first]);
  t.check('the call to Carol is active', true);
  const button = `${lineSel(second)} button[data-action="conference"]`;
  await page.waitForSelector(button, { state: 'visible' });
  const described = await page.$eval(button, (b) => ({
    text: b.textContent.trim(),
    label: b.getAttribute('aria-label'),
    reachable: b.tabIndex >= 0 && !b.disabled,
  }));
  t.check('the active line offers Conference', described.text === 'Conference', described);
  t.check('Conference is labelled for screen readers',
    /^Conference: .*1003/.test(described.label || ''), described);
  t.check('Conference is keyboard reachable', described.reachable, described);
  t.check('the held line offers Conference too',
    Boolean(await page.$(`${lineSel(first)} button[data-action="conference"]`)));
  await t.shot(page, 'two-calls');

  await page.click(button);
  await page.waitForSelector(`${lineSel(first)}`, { state: 'detached', timeout: 20000 });
  t.check('the merged line left the screen', true);
  const conf = await page.waitForSelector(`${lineSel(second)}[data-conference="host"]`, { timeout: 20000 });
  const heading = (await conf.$eval('.peer', (el) => el.textContent)).trim();
  t.check('the line says Conference with both names',
    /^Conference with/.test(heading) && heading.includes('Bob') && heading.includes('Carol'), heading);
  t.check('the line marks the host', heading.includes('you host'), heading);
  const release = await conf.$eval('button[data-action="release"]', (b) => ({
    text: b.textContent.trim(), label: b.getAttribute('aria-label'),
  }));
  t.check('release reads End conference', release.text === 'End conference', release);
  t.check('End conference names the parties for screen readers',
    /^End conference: Conference with .*Bob/.test(release.label || ''), release);
  t.check('one line is left', (await page.$$('#lines li[data-call-id]')).length === 1);
  t.data.conference = { call_id: second, merged: first, heading };
  await t.shot(page, 'conference');

  // Phone-sized: the card and its buttons fit without sideways scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  const fits = await page.evaluate((sel) => {
    const li = document.querySelector(sel);
    const r = li.getBoundingClientRect();
    const buttons = [...li.querySelectorAll('button')].every((b) => b.getBoundingClientRect().right <= r.right + 1);
    return { page: document.documentElement.scrollWidth <= window.innerWidth, buttons };
  }, lineSel(second));
  t.check('the conference fits a phone screen', fits.page && fits.buttons, fits);
  await t.shot(page, 'conference-phone');
  await page.setViewportSize({ width: 1280, height: 860 });

  emit({ event: 'conferenced', call_id: second, merged: first });
  await waitForCommand('end');
  await lineAction(page, second, 'release');
  await page.waitForSelector(lineSel(second), { state: 'detached', timeout: WAIT_MS });
  t.check('End conference: the line is gone', (await page.$$('#lines li[data-call-id]')).length === 0);
  // Recent calls follow without a reload: both calls (the merged one and the
  // conference) are in the list once their records are written.
  const recent = await page.waitForFunction(
    () => document.querySelectorAll('#recent li:not(.muted)').length >= 2,
    null, { timeout: WAIT_MS }).then(() => true, () => false);
  t.check('recent calls show the two calls after the end', recent,
    await page.$eval('#recent', (el) => el.textContent));
  await t.shot(page, 'ended');
  emit({ event: 'ended' });
});
