// "Answer on" a chosen phone from the incoming-call window: the user picks one of two
// ringing phones; the other stops ringing (the test checks its CANCEL). These phones
// cannot pick up when told to (no remote answer): the button says so, and after the
// click the window says why nothing more happens and what can be done (pick up, or
// forward). The chosen phone is picked up, the line turns active; the caller hangs up.

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineIn, WAIT_MS } from './lib.mjs';

await scenario('answer', async (t) => {
  const page = await t.newPage({ label: 'callee' });
  await login(page, credentials());
  await waitLive(page);
  emit({ event: 'ready' });
  await waitForCommand('call_started');

  const card = await page.waitForSelector('#incoming [data-call-id]', { timeout: WAIT_MS });
  const callId = await card.getAttribute('data-call-id');
  const device = env('PORTAL_ANSWER_DEVICE');
  const picker = `#incoming [data-call-id="${callId}"] select[data-answer-device]`;
  // Both phones registered: wait until the picker offers the chosen one.
  await page.waitForFunction(([sel, name]) => {
    const s = document.querySelector(sel);
    return s && [...s.options].some((o) => o.textContent === name);
  }, [picker, device], { timeout: WAIT_MS });
  const value = await page.$eval(picker, (s, name) => [...s.options].find((o) => o.textContent === name).value, device);
  await page.selectOption(picker, value);
  await t.shot(page, 'choose-device');
  const button = `#incoming [data-call-id="${callId}"] [data-action="answer"]`;
  t.check('the button says what it can do on this phone', (await page.textContent(button)) === 'Ring only this phone');
  await page.click(button);
  emit({ event: 'answer_clicked' });
  const note = await page.waitForSelector(`#incoming [data-call-id="${callId}"] [data-answer-note]`, { timeout: WAIT_MS });
  const said = await note.textContent();
  t.check('the window says why and what to do', said.includes(`Only ${device} rings now`) && said.includes('pick it up') && said.includes('forward'), said);
  t.check('the forward field has focus', await page.evaluate(() => document.activeElement.dataset.targetFor === 'forward'));
  await t.shot(page, 'pick-up-note');

  await lineIn(page, callId, 'active', 20000);
  await page.waitForSelector(`#incoming [data-call-id="${callId}"]`, { state: 'detached' });
  const line = await page.$eval(`#lines li[data-call-id="${callId}"]`, (li) => li.textContent);
  t.check(`the line says it is on ${device}`, line.includes(`on ${device}`), line);
  await t.shot(page, 'answered');
  await page.waitForSelector(`#lines li[data-call-id="${callId}"]`, { state: 'detached', timeout: 20000 });
  t.check('the caller hung up: the line is gone', true);
  emit({ event: 'ended' });
});

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}
