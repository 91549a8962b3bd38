// Colleagues' status lights and the attendant's view: Bob covers for Alice (he is her
// attendant). His directory shows Alice without a phone (grey, hollow), then available
// once her phone registers, do not disturb while her profile says so, then ringing, on
// the phone and available again; his "calls for people you cover" panel shows her
// ringing call. Everything arrives pushed: no reload, no polling.

import { scenario, credentials, login, waitLive, waitForCommand, emit, WAIT_MS } from './lib.mjs';

const light = (ext) => `#directory li[data-extension="${ext}"]`;

await scenario('presence', async (t) => {
  const page = await t.newPage({ label: 'attendant' });
  await login(page, credentials());
  await waitLive(page);
  const label = (ext) => page.getAttribute(`${light(ext)} .dot`, 'aria-label');
  // Nobody has registered a phone yet: nobody can be called.
  await page.waitForSelector(`${light('1001')}[data-presence="offline"]`, { timeout: WAIT_MS });
  await page.waitForSelector(`${light('1003')}[data-presence="offline"]`, { timeout: WAIT_MS });
  t.check('colleagues without a phone are not shown as available', (await label('1001')) === 'no phone registered');
  await t.shot(page, 'no-phones');
  emit({ event: 'offline_seen' });

  await page.waitForSelector(`${light('1001')}[data-presence="available"]`, { timeout: WAIT_MS });
  t.check('Alice is available once her phone registered', (await label('1001')) === 'available');
  t.check('Carol still has no phone', Boolean(await page.$(`${light('1003')}[data-presence="offline"]`)));
  await t.shot(page, 'available');
  emit({ event: 'available_seen' });

  await waitForCommand('dnd_on');
  await page.waitForSelector(`${light('1001')}[data-presence="dnd"]`, { timeout: WAIT_MS });
  t.check('do not disturb in her profile turns her light', (await label('1001')) === 'do not disturb');
  await t.shot(page, 'dnd');
  emit({ event: 'dnd_seen' });
  await waitForCommand('dnd_off');
  await page.waitForSelector(`${light('1001')}[data-presence="available"]`, { timeout: WAIT_MS });
  t.check('and back when it is off', true);
  emit({ event: 'ready' });

  await page.waitForSelector(`${light('1001')}[data-presence="ringing"]`, { timeout: WAIT_MS });
  const covered = await page.waitForSelector('#covered:not([hidden]) [data-watched-call-id][data-state="ringing"]', { timeout: WAIT_MS });
  const text = await covered.textContent();
  t.check('the covered call names Alice and the caller', text.includes('Alice') && text.includes('1003'), text);
  await t.shot(page, 'alice-ringing');

  await page.waitForSelector(`${light('1001')}[data-presence="busy"]`, { timeout: 15000 });
  t.check('Alice shows on the phone once she answers', true);
  await page.waitForSelector('#covered', { state: 'hidden', timeout: WAIT_MS });
  t.check('the answered call leaves the covered panel', true);
  await t.shot(page, 'alice-busy');

  await page.waitForSelector(`${light('1001')}[data-presence="available"]`, { timeout: 15000 });
  t.check('Alice is available again after the call', true);
  emit({ event: 'ended' });
});
