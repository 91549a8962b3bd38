// The chat beside a call: Alice (1001) calls Bob (1002) from her phone and Bob
// answers. In Bob's browser the line card offers a Chat; he writes to Alice, and her
// browser shows the message on the same call's card (its chat opens by itself). When
// Bob hangs up, the conversation stays in Alice's Messages panel, with a button that
// turns the chat into a call. Two browsers, one per user; everything arrives pushed.
// Last, Bob sets "reject calls with a message" in his settings.

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineIn, lineAction, unlabelledControls, WAIT_MS } from './lib.mjs';

const TEXT = 'Can you join the Smith call after this one?';

await scenario('chat', async (t) => {
  const alice = await t.newPage({ label: 'alice' });
  const bob = await t.newPage({ label: 'bob' });
  await login(alice, credentials());
  await login(bob, credentials('PEER'));
  await waitLive(alice);
  await waitLive(bob);
  emit({ event: 'ready' });
  await waitForCommand('call_started');

  const line = await bob.waitForSelector('#lines li[data-direction="in"][data-state="active"]', { timeout: 20000 });
  const callId = await line.getAttribute('data-call-id');
  await lineIn(alice, callId, 'active');
  t.check('both browsers show the call as active', true);

  // Bob opens the chat on the line card and sends a message.
  const card = (page) => `#lines li[data-call-id="${callId}"]`;
  await bob.waitForSelector(`${card(bob)} button[data-action="chat"]`);
  await lineAction(bob, callId, 'chat');
  const input = await bob.waitForSelector(`${card(bob)} input[data-chat-input="1001"]`);
  t.check('the chat input has focus', await input.evaluate((el) => el === document.activeElement));
  t.check('the chat names Alice', (await input.getAttribute('aria-label')).includes('Alice'));
  t.check('no Call button beside a call that is up', !(await bob.$(`${card(bob)} [data-chat-call]`)));
  await input.fill(TEXT);
  await bob.click(`${card(bob)} button[data-chat-send="1001"]`);
  const sent = await bob.waitForSelector(`${card(bob)} .chat-log li[data-direction="out"]`);
  t.check("Bob's chat shows what he sent", (await sent.textContent()).includes(TEXT));
  t.check('the input is cleared after sending', (await input.inputValue()) === '');
  await t.shot(bob, 'bob-sent');

  // Alice's browser shows it beside the same call, without a click.
  const got = await alice.waitForSelector(`${card(alice)} .chat-log li[data-direction="in"]`, { timeout: WAIT_MS });
  const text = await got.textContent();
  t.check("Alice's line card shows Bob's message", text.includes(TEXT), text);
  t.check('it says who wrote it', text.includes('Bob'), text);
  t.check('the chat toggle says it is open',
    (await alice.getAttribute(`${card(alice)} button[data-action="chat"]`, 'aria-expanded')) === 'true');
  t.check('every control is labelled', (await unlabelledControls(alice)).length === 0, await unlabelledControls(alice));
  await t.shot(alice, 'alice-received');

  // Bob hangs up; the conversation stays with Alice, and can become a call.
  await lineAction(bob, callId, 'release');
  await alice.waitForSelector(card(alice), { state: 'detached', timeout: WAIT_MS });
  const talk = await alice.waitForSelector('#messages:not([hidden]) [data-conversation="1002"]', { timeout: WAIT_MS });
  t.check('the conversation moves to the Messages panel', (await talk.textContent()).includes(TEXT));
  t.check('the chat offers to call Bob', Boolean(await alice.$('#messages [data-chat-call="1002"]')));
  await t.shot(alice, 'alice-messages');

  // Bob's settings: reject calls with a message (what a caller then gets as a chat).
  await bob.goto(`${process.env.TSPS_URL}/portal/#/settings`);
  const tick = await bob.waitForSelector('#profile-default_handling-method');
  await bob.waitForFunction(() => (document.querySelector('#profile-json')?.value || '').trim() !== '');
  await tick.check();
  await bob.click('#profile-save');
  await bob.waitForSelector('#profile-default_handling-text[aria-invalid="true"]');
  t.check('an empty message is refused beside its field',
    (await bob.textContent('#profile-default_handling-text-error')).includes('1 to 500'));
  await bob.fill('#profile-default_handling-text', 'In a meeting until 3, I will call back');
  const answers = await bob.$$eval('#profile-default_handling-code option', (os) => os.map((o) => o.textContent));
  t.check('the answers read as words, without SIP codes', answers.join() === 'Unavailable,Busy,Declined', answers);
  await bob.selectOption('#profile-default_handling-code', '486');
  await bob.click('#profile-save');
  await bob.waitForSelector('#profile-saved:has-text("Settings saved.")');
  await bob.reload();
  await bob.waitForFunction(() => (document.querySelector('#profile-json')?.value || '').trim() !== '');
  t.check('the rejection with a message is saved',
    await bob.isChecked('#profile-default_handling-method')
      && (await bob.inputValue('#profile-default_handling-text')) === 'In a meeting until 3, I will call back'
      && (await bob.inputValue('#profile-default_handling-code')) === '486');
  await t.shot(bob, 'bob-settings');
  emit({ event: 'released' });
});
