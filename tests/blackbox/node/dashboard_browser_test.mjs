// rtmd's dashboard in headless Chromium (Debian's chromium, driven by puppeteer-core): the
// page asks for Basic credentials (page.authenticate answers the prompt), shows the users,
// channels and member counts, the event logs' backlog, the rates and the node, and a presence
// event and a message appear in its live tail. Run by tests/blackbox/test_dashboard.py:
//   env RTMD_URL, RTMD_APP, RTMD_CUSTOMER, RTMD_SECRET, SHOT (the screenshot's path)
// It prints "READY" once the page shows what was there before it loaded, then waits for "GO"
// on stdin (the test logs carol in, joins and publishes), then prints "SHOT <path>" and "OK".
import assert from 'node:assert/strict';
import readline from 'node:readline';
import puppeteer from 'puppeteer-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const { RTMD_URL, RTMD_APP, RTMD_CUSTOMER, RTMD_SECRET, SHOT } = process.env;
const T = 15000;

const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((ok) => lines.once('line', ok));

const text = (p, sel) => p.$eval(sel, (e) => e.textContent.trim());
const texts = (p, sel) => p.$$eval(sel, (es) => es.map((e) => e.textContent.trim()));

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const errors = [];
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push('console: ' + m.text()));
  // The answer to the browser's prompt (rtmd's 401 with WWW-Authenticate: Basic).
  await page.authenticate({ username: RTMD_CUSTOMER, password: RTMD_SECRET });
  const res = await page.goto(`${RTMD_URL}/dashboard?app=${RTMD_APP}`, { waitUntil: 'load', timeout: T });
  assert.equal(res.status(), 200);
  assert.equal(new URL(page.url()).pathname, '/dashboard/');
  await page.waitForFunction(
    () => document.getElementById('users-count').textContent === '2',
    { timeout: T },
  );
  assert.equal(await text(page, '#customer'), RTMD_CUSTOMER);
  assert.equal(await page.$eval('#app-select', (s) => s.value), RTMD_APP);
  assert.deepEqual(await texts(page, '#users-list li'), ['alice', 'bob']);
  assert.equal(await text(page, '#channels-count'), '2');
  assert.equal(await text(page, '#channels-table tr[data-channel="lobby"] .members'), '2');
  assert.equal(await text(page, '#channels-table tr[data-channel="solo"] .members'), '1');
  // 2 Logins unread in each region, nothing dropped.
  assert.deepEqual(await texts(page, '#backlog-table .user-unread'), ['2', '2']);
  assert.deepEqual(await texts(page, '#backlog-table .user-dropped'), ['0', '0']);
  assert.equal(await page.$$eval('#nodes-table tr', (rs) => rs.length) >= 1, true);
  await page.waitForFunction(
    () => document.getElementById('live-status').textContent === 'live',
    { timeout: T },
  );
  console.log('READY');
  assert.equal(await nextLine(), 'GO');
  // carol logged in, joined lobby and published: it shows up live, then in the counts.
  await page.waitForFunction(
    () => [...document.querySelectorAll('#tail li.presence')].some((li) =>
      / Join carol lobby$/.test(li.textContent)),
    { timeout: T },
  );
  await page.waitForFunction(
    () => [...document.querySelectorAll('#tail li.message')].some((li) =>
      li.textContent.includes('carol → lobby: hello from carol')),
    { timeout: T },
  );
  await page.waitForFunction(
    () => document.getElementById('users-count').textContent === '3' &&
      document.querySelector('#channels-table tr[data-channel="lobby"] .members')?.textContent === '3',
    { timeout: T },
  );
  await page.waitForFunction(
    () => Number(document.querySelector('#rates-table tr[data-rate="logins"] .total')?.textContent) >= 3,
    { timeout: T },
  );
  await page.screenshot({ path: SHOT, fullPage: true });
  console.log('SHOT ' + SHOT);
  assert.deepEqual(errors, []);
  console.log('OK');
} catch (e) {
  console.log('page errors: ' + JSON.stringify(errors));
  throw e;
} finally {
  lines.close();
  await browser.close();
}
