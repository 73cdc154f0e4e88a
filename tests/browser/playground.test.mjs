// The routing playground in a real browser: Debian's chromium driven by playwright-core,
// against the page that `hookline dev` serves, found through the URL it prints (as the README
// tells users). Run by tests/playground_browser.rs (so `cargo test` and scripts/test run it);
// on its own: `node --test tests/browser/` after `cargo build`.
//
// Environment: HOOKLINE_BIN (default target/debug/hookline), CHROMIUM (default
// /usr/bin/chromium), HOOKLINE_SCREENSHOT (default docs/playground.png, refreshed each run).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.env.HOOKLINE_BIN || path.join(root, 'target/debug/hookline');
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = process.env.HOOKLINE_SCREENSHOT || path.join(root, 'docs/playground.png');
// Generous: CI machines are shared and slow; every wait below is for a condition.
const WAIT_MS = 60_000;

let dev;
let devOutput = '';
let url;
let browser;
let context;
let page;

// Starts `hookline dev` on a free admin port and resolves with the playground URL it prints.
function startDev() {
  dev = spawn(bin, ['dev', '--admin', '127.0.0.1:0'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HOOKLINE_LOG: 'warn' },
  });
  dev.stderr.on('data', (d) => { devOutput += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`hookline dev printed no playground URL in 120 s:\n${devOutput}`)),
      120_000,
    );
    dev.stdout.on('data', (d) => {
      devOutput += d;
      const m = devOutput.match(/playground\s+: (http:\/\/\S+\/playground\/)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    dev.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`hookline dev exited (${code}):\n${devOutput}`));
    });
  });
}

function stopDev() {
  if (!dev || dev.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => dev.kill('SIGKILL'), 20_000);
    dev.once('exit', () => { clearTimeout(kill); resolve(); });
    dev.kill('SIGINT');
  });
}

before(async () => {
  url = await startDev();
  browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    // What Chromium needs on these machines: no sandbox as root, and no background
    // connections (the network is closed; refused connections slow every start).
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(url).origin });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (e) => { devOutput += `\n[page error] ${e}`; });
});

after(async () => {
  await browser?.close();
  await stopDev();
});

const field = (name) => page.locator(`.event >> nth=0 >> [data-field="${name}"]`);
const route = (id) => page.locator(`.event >> nth=0 >> li[data-route="${id}"]`);
const body = (subscription) => page.locator(`.event >> nth=0 >> .delivery[data-subscription="${subscription}"] pre`);

async function pick(exampleLabel) {
  const option = page.locator('#example option', { hasText: exampleLabel }).first();
  await page.selectOption('#example', { value: await option.getAttribute('value') });
}

async function waitFor(what, check) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const last = await check();
    if (last === true) return;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function bodyJson(subscription) {
  return JSON.parse(await body(subscription).textContent());
}

test('the page loads and routes the Contrast sample to PagerDuty', async () => {
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  await pick('wazuh-sshd');
  await waitFor('wazuh routed', async () => (await field('source').textContent()) === 'wazuh' || await field('source').textContent());
  await pick('contrast — security.contrast');
  assert.equal(await page.inputValue('#topic'), 'security.contrast');
  await waitFor('contrast classified', async () => (await field('category').textContent()) === 'ATTACK_ALERT' || await field('category').textContent());
  assert.equal(await field('severity').textContent(), 'critical');
  assert.equal(await field('raw-severity').textContent(), 'CRITICAL');
  assert.equal(await field('event-id').textContent(), 'e9c2b740-a99d-11e5-b0ff-ebef27635854');
  assert.equal(await field('source').textContent(), 'contrast');
  assert.equal(await route('contrast-attacks').getAttribute('class'), 'matched');
  assert.equal(await route('soar-catch-all').getAttribute('class'), 'matched');
  assert.equal(
    await route('wallarm-unblocked-hits').locator('.reason').textContent(),
    'topic security.contrast is not one of its topics [security.wallarm]',
  );
  const pd = await bodyJson('pagerduty');
  assert.equal(pd.routing_key, 'dev-routing-key');
  assert.equal(pd.event_action, 'trigger');
  assert.equal(pd.payload.severity, 'critical');
  assert.equal(pd.payload.summary, 'Contrast Alert:New Attack');
  assert.equal(await page.locator('.delivery').count(), 3, 'pagerduty, slack, soar');
});

test('a list of categories: every one is shown, and any of them routes', async () => {
  await pick('wazuh-sshd');
  await waitFor('wazuh classified', async () => (await field('source').textContent()) === 'wazuh' || await field('source').textContent());
  const chips = await page.locator('.event >> nth=0 >> [data-field="categories"] .chip').allTextContents();
  assert.deepEqual(chips, ['syslog', 'sshd', 'authentication_failures']);
  assert.equal(await page.locator('.event >> nth=0 >> .chip.primary').textContent(), 'authentication_failures');
  assert.equal(await route('auth-failures').getAttribute('class'), 'matched');
  assert.match(await route('intrusions').locator('.reason').textContent(), /none of the categories \[syslog, sshd, authentication_failures\] matches \[intrusion_detection\]/);
});

test('dedup suppressions are shown per event', async () => {
  await pick('netography-lifecycle');
  await waitFor('four events', async () => (await page.locator('.event').count()) === 4 || await page.locator('.event').count());
  assert.equal(await page.locator('.event >> nth=2 >> .suppressed').textContent(),
    'Suppressed by a dedup window (already delivered): netography-siem');
  assert.equal(await page.locator('.event >> nth=0 >> .suppressed').textContent(), 'Nothing suppressed.');
});

test('a JMESPath error in a template is reported at its position; a fix renders, the rules in force stay', async () => {
  await pick('contrast — security.contrast');
  await waitFor('contrast routed', async () => (await body('pagerduty').count()) === 1 || 'no pagerduty body');
  await page.locator('.delivery[data-subscription="pagerduty"] button', { hasText: 'edit' }).click();
  assert.equal(await page.inputValue('#edit-target'), 'template:pagerduty-oncall');
  assert.match(await page.inputValue('#edit-text'), /routing_key: vars.routing_key/);

  const broken = '{\n  summary: upper(event.subject},\n  key: vars.routing_key\n}';
  await page.fill('#edit-text', broken);
  const problem = page.locator('#edit-problems .problem');
  await problem.waitFor();
  const line = broken.split('\n')[1];
  const col = line.indexOf('}') + 1;
  assert.equal(await problem.getAttribute('data-line'), '2');
  assert.equal(await problem.getAttribute('data-col'), String(col));
  assert.match(await problem.textContent(), new RegExp(`template pagerduty-oncall, line 2, column ${col}: invalid JMESPath: Parse error`));
  assert.equal(await problem.locator('pre').textContent(), `${line}\n${' '.repeat(col - 1)}^`);
  assert.equal(await page.locator('#edit-text.has-error').count(), 1);
  assert.equal(await page.locator('.event').count(), 0, 'no result from a broken draft');

  await page.fill('#edit-text', '{summary: upper(event.subject), key: vars.routing_key}');
  await waitFor('the draft renders', async () => (await body('pagerduty').count()) === 1 || 'no body yet');
  assert.deepEqual(await bodyJson('pagerduty'), { summary: 'CONTRAST ALERT:NEW ATTACK', key: 'dev-routing-key' });
  assert.equal(await page.locator('#draft-badge').isVisible(), true);
  assert.equal(await page.locator('#case-draft').isVisible(), true, 'the case describes the edits');
  assert.equal(await page.locator('#edit-problems .problem').count(), 0);

  // The rules in force are untouched: the admin API's dry run still renders the built-in.
  const contrast = readFileSync(path.join(root, 'rules/examples/events/contrast.json'), 'utf8');
  const res = await fetch(new URL('../api/v1/rules/test', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topic: 'security.contrast', event: JSON.parse(contrast) }),
  });
  const inForce = await res.json();
  const pd = inForce.events[0].deliveries.find((d) => d.subscription === 'pagerduty');
  assert.equal(pd.body.payload.severity, 'critical');

  await page.click('#edit-reset');
  await waitFor('back to the rules in force', async () => (await body('pagerduty').textContent()).includes('"event_action"') || 'still the draft');
  assert.equal(await page.locator('#draft-badge').isVisible(), false);
  assert.equal(await page.locator('#case-draft').isVisible(), false);
});

test('a route edit: YAML and JMESPath errors at their position, then a category that no longer matches', async () => {
  await route('contrast-attacks').locator('button', { hasText: 'edit' }).click();
  assert.equal(await page.inputValue('#edit-target'), 'route:contrast-attacks');
  const problem = page.locator('#edit-problems .problem').first();

  await page.fill('#edit-text', 'id: contrast-attacks\nmatch: {category: [ATTACK_*}\nto: [pagerduty]\n');
  await problem.waitFor();
  assert.match(await problem.textContent(), /route contrast-attacks, line 2, column \d+: YAML syntax error/);

  await page.fill('#edit-text', "id: contrast-attacks\nmatch:\n  expr: \"event.level == \"\nto: [pagerduty]\n");
  await waitFor('a JMESPath problem', async () => /invalid JMESPath/.test(await problem.textContent()) || await problem.textContent());
  assert.equal(await problem.getAttribute('data-line'), '3');
  assert.match(await problem.textContent(), /route contrast-attacks, line 3, column \d+: invalid JMESPath in route "contrast-attacks" match.expr/);

  await page.fill('#edit-text', 'id: contrast-attacks\nmatch: {category: NOPE}\nto: [pagerduty]\n');
  await waitFor('the draft routes', async () => (await route('contrast-attacks').getAttribute('class')) === 'not-matched' || 'still matched');
  assert.equal(await route('contrast-attacks').locator('.reason').textContent(), 'category ATTACK_ALERT does not match [NOPE]');
  assert.equal(await page.locator('.delivery[data-subscription="pagerduty"]').count(), 0);
  await page.click('#edit-reset');
  await waitFor('reset', async () => (await route('contrast-attacks').getAttribute('class')) === 'matched' || 'not yet');
});

test('the copied routing case passes `hookline test --cases`', async () => {
  await pick('wazuh-sshd');
  await waitFor('wazuh case', async () => (await page.locator('#case').textContent()).includes('security.wazuh') || 'no case yet');
  await page.click('#copy-case');
  await page.locator('#copied').waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, await page.locator('#case').textContent());
  assert.match(copied, /^ {2}- name: "security.wazuh: authentication_failures"\n/);
  assert.match(copied, /categories: \["syslog","sshd","authentication_failures"\]/);

  const dir = mkdtempSync(path.join(tmpdir(), 'hookline-case-'));
  try {
    const file = path.join(dir, 'cases.yaml');
    writeFileSync(file, `cases:\n${copied}`);
    const run = spawnSync(bin, ['test', '--rules', 'rules/examples', '--cases', file], {
      cwd: root,
      env: { ...process.env, HOOKLINE_DEV_RECEIVER: 'http://127.0.0.1:9' },
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}\n${copied}`);
    assert.match(run.stdout, /1 passed, 0 failed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an event that is not JSON is reported at its position', async () => {
  await page.fill('#event', '{\n  "category": "ATTACK_ALERT",\n  "level": HIGH\n}');
  const problem = page.locator('#event-problems .problem');
  await problem.waitFor();
  assert.equal(await problem.getAttribute('data-line'), '3');
  assert.match(await problem.textContent(), /event, line 3, column \d+: invalid JSON: expected value/);
});

test('screenshot for docs/playground.png', async () => {
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await waitFor('contrast routed', async () => (await body('pagerduty').count()) === 1 || 'no body yet');
  await page.locator('.delivery[data-subscription="pagerduty"] button', { hasText: 'edit' }).click();
  await page.screenshot({ path: screenshot });
});
