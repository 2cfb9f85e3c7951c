// console.test.mjs -- the saga console in Debian's chromium (headless),
// driven by playwright-core, against the redis-server, `saga worker` and
// `saga serve` that test_console.c started. It submits its own sagas
// through the API, then looks at and acts on them only through the page.
//
// Environment (set by test_console.c): SAGA_CONSOLE_URL, SAGA_CONSOLE_TOKEN
// (full access), SAGA_CONSOLE_READ_TOKEN (read only), SAGA_CONSOLE_FLAG (the
// file whose existence lets the stuck saga's step succeed),
// SAGA_CONSOLE_SHOTS (where screenshots go), SAGA_CHROMIUM.
// Exits 0 when every check passed; prints "N passed, M failed".

import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run this through ctest (tests/console/test_console.c)`);
  return v;
};
const BASE = env('SAGA_CONSOLE_URL');
const TOKEN = env('SAGA_CONSOLE_TOKEN');
const READ_TOKEN = env('SAGA_CONSOLE_READ_TOKEN');
const FLAG = env('SAGA_CONSOLE_FLAG');
const SHOTS = env('SAGA_CONSOLE_SHOTS');
const XSS_NOTE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">';
const XSS_ERROR = '<img src=x onerror=alert(1)>';
const WAIT_MS = 45000;

let passed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } catch (err) {
    console.log(`not ok - ${name}\n${err.stack ?? err}`);
    console.log(`${passed} passed, 1 failed`);
    throw err;
  }
  passed++;
  console.log(`ok - ${name} (${Date.now() - t0} ms)`);
}

/* ---- the API, for submitting and for waiting on what the test set up ---- */

async function call(method, path, body) {
  const res = await fetch(BASE + path, {
    method, headers: {Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json'},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return {status: res.status, body: text ? JSON.parse(text) : null};
}

async function submit(saga, id, input) {
  const r = await call('POST', '/v1/sagas', {saga, id, input});
  assert.equal(r.status, 201, `submit ${id}: ${JSON.stringify(r.body)}`);
}

/** Polls `probe` until it returns a truthy value, at most WAIT_MS. */
async function until(what, probe, ms = WAIT_MS) {
  const end = Date.now() + ms;
  let last;
  for (let pause = 20; ; pause = Math.min(pause * 2, 250)) {
    try {
      last = await probe();
      if (last) return last;
    } catch (err) {
      last = err.message;
    }
    if (Date.now() > end) throw new Error(`${what}: not after ${ms} ms (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, pause));
  }
}

async function apiState(id) {
  const r = await call('GET', `/v1/sagas/${id}`);
  return r.status === 200 ? r.body : null;
}

const waitApiState = (id, state, step) => until(`saga ${id} ${state}`, async () => {
  const d = await apiState(id);
  if (!d || d.state !== state) return false;
  if (step && !d.steps.some((s) => s.name === step[0] && s.status === step[1])) return false;
  return d;
});

/* ---- the page ---- */

const browser = await chromium.launch({
  executablePath: process.env.SAGA_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'], /* CI runs as root */
});
console.log(`node ${process.version}, chromium ${browser.version()}`);
const problems = []; /* page errors, unexpected console errors, dialogs */
let context, page;

async function newPage(width, height) {
  const ctx = await browser.newContext({viewport: {width, height}});
  const p = await ctx.newPage();
  p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  p.on('dialog', async (d) => { problems.push(`dialog: ${d.type()} ${d.message()}`); await d.dismiss(); });
  p.on('console', (m) => {
    /* the API's 401, 403 and 404 answers are logged by the browser itself
     * (requests are checked below); anything else (a CSP violation, an
     * exception) is a problem */
    if (m.type() === 'error' && !/status of 40[134]/.test(m.text()))
      problems.push(`console: ${m.text()}`);
  });
  p.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin !== new URL(BASE).origin)
      problems.push(`request off the server: ${r.url()}`);
    else if (!/^\/(v1\/|assets\/|sagas|definitions|$)/.test(u.pathname) || /\/x$/.test(u.pathname))
      problems.push(`unexpected request: ${r.url()}`); /* e.g. an injected <img src=x> */
  });
  return [ctx, p];
}

const text = (sel) => page.locator(sel).first().innerText();
const shot = (name, p = page) => p.screenshot({path: join(SHOTS, name), fullPage: true});
const go = (path) => page.goto(BASE + path);
const stateText = () => text('#saga-state');
const waitText = (sel, re, ms = WAIT_MS) =>
  until(`${sel} matching ${re}`, async () => re.test(await page.locator(sel).first().innerText()), ms);
const noProblems = () => assert.deepEqual(problems, [], 'the page raised errors or dialogs');

try {
  await check('submit the sagas (a slow one first, so that it still runs when looked at)', async () => {
    await submit('slow', 'slow-1', {});
    await submit('trip', 'trip-1', {trip: 'T-1'});
    await submit('trip', 'trip-3', {trip: 'T-3'});
    await submit('order', 'order-xss', {sku: 'A-1', note: XSS_NOTE});
    await submit('restock', 'restock-1', {});
    await waitApiState('trip-1', 'completed');
    await waitApiState('trip-3', 'completed');
    await waitApiState('order-xss', 'compensated');
    await waitApiState('restock-1', 'stuck');
    await waitApiState('slow-1', 'running', ['long_wait', 'running']);
  });

  [context, page] = await newPage(1280, 900);

  await check('the served page sends a CSP without inline scripts, and nosniff', async () => {
    const res = await go('/');
    const h = res.headers();
    assert.match(h['content-security-policy'], /script-src 'self'/);
    assert.doesNotMatch(h['content-security-policy'], /unsafe-inline|unsafe-eval/);
    assert.equal(h['x-content-type-options'], 'nosniff');
  });

  await check('without a token the console asks for one, with the 401 message', async () => {
    await page.locator('#token').waitFor();
    assert.match(await text('#token-message'), /401/);
    assert.match(await text('#token-message'), /asks for a bearer token/);
  });

  await check('a wrong token is refused with a clear 401 message, then asked again', async () => {
    await page.fill('#token', 'not-the-right-token-0000');
    await page.press('#token', 'Enter');
    await waitText('#token-message', /refused this token.*401/s);
    assert.equal(await page.locator('#token').inputValue(), '');
  });

  await check('the right token opens the overview and is kept in the tab (sessionStorage)', async () => {
    await page.fill('#token', TOKEN);
    await page.click('form.token-form button[type=submit]');
    await page.locator('h1', {hasText: 'Overview'}).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('saga.console.token')), TOKEN);
    await page.reload();
    await page.locator('h1', {hasText: 'Overview'}).waitFor();
    assert.equal(await page.locator('#token').count(), 0, 'asked again after a reload');
  });

  await check('overview: counts by state with stuck first and highlighted, workers, backlog, newest sagas', async () => {
    await page.locator('table tr[data-id="slow-1"]').waitFor();
    const cards = page.locator('ul.cards').first().locator('li.card');
    assert.equal(await cards.first().getAttribute('data-card'), 'stuck');
    assert.match(await cards.first().getAttribute('class'), /\balert\b/);
    assert.match(await cards.first().innerText(), /^1\s+stuck/i);
    assert.match(await page.locator('li[data-card="running"]').innerText(), /^1\s/);
    assert.match(await page.locator('li[data-card="live workers"]').innerText(), /^1\s/);
    assert.match(await page.locator('li[data-card="intake backlog"]').innerText(), /^0\s/);
    for (const id of ['slow-1', 'trip-1', 'order-xss', 'restock-1'])
      assert.equal(await page.locator(`tr[data-id="${id}"]`).count(), 1, id);
    assert.match(await page.locator('tr[data-id="restock-1"]').innerText(), /stuck/);
    assert.equal(await page.locator('tr[data-id="order-xss"] td.reason').innerText(),
                 `step 'ship' failed: business: ${XSS_ERROR}`);
    assert.match(await page.locator('tr[data-id="trip-1"]').innerText(), /completed/);
    await shot('overview.png');
  });

  await check('overview refreshes by itself, without reloading the page', async () => {
    await page.evaluate(() => { window.__same_page = true; });
    await submit('trip', 'trip-2', {trip: 'T-2'});
    await page.locator('tr[data-id="trip-2"]').waitFor({timeout: WAIT_MS});
    assert.equal(await page.evaluate(() => window.__same_page), true, 'the page was reloaded');
  });

  await check('keyboard: the skip link, then the main navigation, reach the sagas list', async () => {
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
    const names = [];
    for (let i = 0; i < 4; i++) {
      await page.keyboard.press('Tab');
      names.push(await page.evaluate(() => document.activeElement.textContent));
    }
    assert.deepEqual(names, ['saga console', 'Overview', 'Sagas', 'Definitions']);
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Enter');
    await page.locator('h1', {hasText: 'Sagas'}).waitFor();
    assert.equal(new URL(page.url()).pathname, '/sagas');
  });

  await check('running saga: its slow step shows as running; Cancel asks first, then takes effect', async () => {
    await go('/sagas/slow-1');
    await waitText('#saga-state', /running/);
    assert.match(await page.locator('svg.graph g[data-step="long_wait"]').innerHTML(), /running/);
    assert.ok(await page.locator('button[data-key="retry"]').isDisabled(), 'Retry on a running saga');
    assert.ok(await page.locator('button[data-key="cancel"]').isEnabled());
    await shot('saga-running.png');
    /* the confirmation: keeping it changes nothing */
    await page.click('button[data-key="cancel"]');
    await page.locator('dialog[open]').waitFor();
    await page.click('dialog [data-answer="no"]');
    assert.equal((await apiState('slow-1')).state, 'running');
    /* confirmed: the saga compensates, and the page shows it by itself */
    await page.click('button[data-key="cancel"]');
    await page.click('dialog [data-answer="yes"]');
    await waitText('#action-result', /Cancel requested/);
    await waitText('#saga-state', /compensating|compensated/);
    assert.match(await text('#saga-reason'), /cancelled by operator/);
    const d = await apiState('slow-1');
    assert.ok(['compensating', 'compensated'].includes(d.state), d.state);
  });

  await check('sagas: filter by state and by name, find by id, page with the cursor', async () => {
    await go('/sagas?state=stuck');
    await page.locator('h1', {hasText: 'Sagas'}).waitFor();
    assert.deepEqual(await page.locator('tr[data-id]').evaluateAll((r) => r.map((x) => x.dataset.id)),
                     ['restock-1']);
    assert.equal(await page.locator('#f-state').inputValue(), 'stuck');
    /* the filter form */
    await page.selectOption('#f-state', '');
    await page.fill('#f-saga', 'trip');
    await page.click('form[aria-label="Filter sagas"] button');
    await until('trip filter', async () => new URL(page.url()).search === '?saga=trip');
    await page.locator('tr[data-id="trip-1"]').waitFor();
    assert.deepEqual((await page.locator('tr[data-id]').evaluateAll((r) => r.map((x) => x.dataset.id))).sort(),
                     ['trip-1', 'trip-2', 'trip-3']);
    /* paging: one saga a page, the next page through the API's cursor, over
     * the whole list (across its unfinished and finished parts). The cursor
     * names the last saga listed, so every saga that stays where it is in
     * the list comes exactly once; only slow-1, which may finish its
     * compensation meanwhile (and so move from the unfinished part to the
     * finished one), may come twice or not at all. */
    await waitApiState('trip-2', 'completed');
    const pageThrough = async (path) => {
      await go(path);
      await page.locator('tr[data-id]').first().waitFor();
      const seen = [];
      for (let i = 0; i < 20; i++) {
        seen.push(...await page.locator('tr[data-id]').evaluateAll((r) => r.map((x) => x.dataset.id)));
        const next = page.locator('a[rel="next"]');
        if (await next.count() === 0) return seen;
        const before = page.url();
        const href = await next.getAttribute('href');
        await next.click();
        await until('next page', async () => page.url() !== before && /cursor=/.test(page.url()));
        await page.locator('h1', {hasText: 'Sagas'}).waitFor();
        /* the URL changes before the next page is fetched and drawn: wait
         * for the new page (its own next link, or none on the last) */
        await until('next page drawn', async () => {
          const n = page.locator('a[rel="next"]');
          return await n.count() === 0 || await n.getAttribute('href') !== href;
        });
      }
      assert.fail(`more than 20 pages: ${seen}`);
    };
    const all = await pageThrough('/sagas?limit=1');
    for (const id of ['order-xss', 'restock-1', 'trip-1', 'trip-2', 'trip-3'])
      assert.equal(all.filter((x) => x === id).length, 1, `${id} once in ${all}`);
    assert.ok(all.every((x) => ['order-xss', 'restock-1', 'slow-1', 'trip-1', 'trip-2', 'trip-3'].includes(x)), `${all}`);
    const trips = await pageThrough('/sagas?saga=trip&limit=1');
    assert.deepEqual([...trips].sort(), ['trip-1', 'trip-2', 'trip-3']);
    assert.match(page.url(), /saga=trip/, 'the filter is kept across pages');
    /* by id */
    await go('/sagas');
    await page.fill('#f-id', 'order-xss');
    await page.press('#f-id', 'Enter');
    await page.locator('#saga-state').waitFor();
    assert.equal(new URL(page.url()).pathname, '/sagas/order-xss');
    await go('/sagas/no-such-saga');
    await page.locator('h1', {hasText: 'Saga not found'}).waitFor();
    assert.match(await text('main p.error'), /404/);
  });

  await check('compensated saga: state, steps, the error as text, compensations newest first', async () => {
    await go('/sagas/order-xss');
    await waitText('#saga-state', /compensated/);
    assert.equal(await text('#saga-reason'), `step 'ship' failed: business: ${XSS_ERROR}`);
    const steps = await page.locator('tr[data-step]').evaluateAll((r) => r.map((x) => x.dataset.step));
    assert.deepEqual(steps, ['reserve_stock', 'charge_card', 'ship']);
    assert.equal(await page.locator('svg.graph g.node').count(), 3);
    assert.match(await page.locator('tr[data-step="ship"] .error').innerText(), /^<img src=x onerror=alert\(1\)>$/);
    assert.match(await page.locator('tr[data-step="ship"]').innerText(), /compensated/);
    /* the timeline: compensations in reverse order, each written by w1 */
    const comps = await page.locator('tr[data-type="step.succeeded"]').evaluateAll((rows) =>
      rows.filter((r) => r.children[4].textContent === 'compensation').map((r) => [r.children[3].textContent, r.children[7].textContent]));
    assert.deepEqual(comps, [['ship', 'w1'], ['charge_card', 'w1'], ['reserve_stock', 'w1']]);
    /* inputs and outputs are collapsed until asked for */
    const out = page.locator('tr[data-step="reserve_stock"] details[data-key="out:reserve_stock"]');
    assert.equal(await out.getAttribute('open'), null);
    await out.locator('summary').click();
    assert.match(await out.locator('pre').innerText(), /window\.__xss = 1/);
    await shot('saga-compensated.png');
  });

  await check('XSS: the HTML in the error, input and output shows as text and runs nothing', async () => {
    await page.locator('details[data-key="input"] summary').click();
    await page.locator('tr[data-step="reserve_stock"] details[data-key="in:reserve_stock"] summary').click();
    await page.waitForTimeout(300); /* would-be handlers of an <img> fire on load */
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.locator('main img, main script').count(), 0);
    assert.match(await page.locator('details[data-key="input"] pre').innerText(), /<script>/);
    noProblems();
  });

  await check('stuck saga: why it is stuck, its retry with the delay, which worker; a read token may not retry', async () => {
    await go('/sagas/restock-1');
    await waitText('#saga-state', /stuck/);
    assert.match(await text('#saga-reason'), /call_supplier.*supplier offline/);
    const retrying = page.locator('tr[data-type="step.retrying"]');
    assert.equal(await retrying.count(), 1);
    assert.match(await retrying.innerText(), /retried after \d+ ms \(attempt 2\)/);
    /* the delay shown is the one the engine recorded in the entry */
    const recorded = /; retry in (\d+) ms \(attempt 2 of 2\)/.exec(await retrying.innerText());
    assert.ok(recorded, 'the retry records its delay');
    assert.match(await retrying.innerText(), new RegExp(`retried after ${recorded[1]} ms`));
    assert.match(await retrying.innerText(), /w1/);
    assert.match(await page.locator('tr[data-step="call_supplier"]').innerText(), /failed/);
    assert.ok(await page.locator('button[data-key="retry"]').isEnabled());
    await shot('saga-stuck.png');
    /* a read-only token: the API answers 403, and the page says so */
    await page.click('#forget-token');
    await page.locator('#token').waitFor();
    await page.fill('#token', READ_TOKEN);
    await page.press('#token', 'Enter');
    await waitText('#saga-state', /stuck/);
    await page.click('button[data-key="retry"]');
    await page.click('dialog [data-answer="yes"]');
    await waitText('#action-result', /Retry failed: Forbidden \(403\)/);
    assert.equal((await apiState('restock-1')).state, 'stuck');
    await page.click('#forget-token');
    await page.fill('#token', TOKEN);
    await page.press('#token', 'Enter');
    await waitText('#saga-state', /stuck/);
  });

  await check('Retry on the stuck saga takes effect (keyboard only) and the page follows it', async () => {
    writeFileSync(FLAG, 'up\n'); /* the supplier is back */
    await page.locator('button[data-key="retry"]').focus();
    await page.keyboard.press('Enter');
    await page.locator('dialog[open]').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.dataset.answer), 'no');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Enter');
    await waitText('#action-result', /Retry requested/);
    await waitText('#saga-state', /completed/);
    assert.match(await page.locator('tr[data-step="call_supplier"]').innerText(), /succeeded/);
    assert.equal(await page.locator('tr[data-type="saga.retry_requested"], tr[data-type="saga.retried"]').count() > 0, true);
  });

  await check('completed saga: every step succeeded, parallel branches side by side in the graph', async () => {
    await go('/sagas/trip-1');
    await waitText('#saga-state', /completed/);
    for (const s of ['book_flight', 'book_hotel', 'charge', 'send_receipt'])
      assert.match(await page.locator(`tr[data-step="${s}"]`).innerText(), /succeeded/, s);
    const box = async (s) => page.locator(`svg.graph g[data-step="${s}"] rect`).boundingBox();
    const [f, h, c, r] = [await box('book_flight'), await box('book_hotel'), await box('charge'), await box('send_receipt')];
    assert.equal(Math.round(f.y), Math.round(h.y), 'the two branches on one row');
    assert.notEqual(Math.round(f.x), Math.round(h.x));
    assert.ok(c.y > f.y + f.height && r.y > c.y + c.height, 'charge below both, send_receipt below it');
    assert.ok(await page.locator('button[data-key="cancel"]').isDisabled());
    assert.ok(await page.locator('button[data-key="retry"]').isDisabled());
  });

  await check('definitions: the list with live workers, one with its YAML and graph (deep link)', async () => {
    await go('/definitions');
    await page.locator('h1', {hasText: 'Definitions'}).waitFor();
    const body = await text('main table');
    for (const n of ['order', 'restock', 'slow', 'trip']) assert.match(body, new RegExp(n));
    assert.match(body, /1: w1/);
    await page.click('a[href="/definitions/trip"]');
    await page.locator('pre.yaml').waitFor();
    assert.match(await text('pre.yaml'), /^saga: trip/);
    assert.equal(await page.locator('svg.graph g.node').count(), 4);
    await page.reload(); /* a deep link works on reload */
    await page.locator('pre.yaml').waitFor();
    await shot('definition.png');
  });

  await check('the cancelled saga ends compensated, compensations newest first', async () => {
    await go('/sagas/slow-1');
    await waitText('#saga-state', /compensated/, 60000);
    const comps = await page.locator('tr[data-type="step.succeeded"]').evaluateAll((rows) =>
      rows.filter((r) => r.children[4].textContent === 'compensation').map((r) => r.children[3].textContent));
    assert.deepEqual(comps, ['long_wait', 'prepare']);
    assert.match(await page.locator('tr[data-step="finish"]').innerText(), /pending/);
  });

  await check('a phone (390 px): nothing wider than the screen; overview and a saga readable', async () => {
    const [pctx, phone] = await newPage(390, 844);
    await phone.goto(BASE + '/');
    await phone.evaluate((t) => sessionStorage.setItem('saga.console.token', t), TOKEN);
    for (const [path, name] of [['/', 'phone-overview.png'], ['/sagas/order-xss', 'phone-saga.png']]) {
      await phone.goto(BASE + path);
      await phone.locator(path === '/' ? 'tr[data-id]' : '#saga-state').first().waitFor();
      const [sw, cw] = await phone.evaluate(() => [document.documentElement.scrollWidth,
                                                     document.documentElement.clientWidth]);
      assert.ok(sw <= cw, `${path}: the page is ${sw} px wide on a ${cw} px screen`);
      await shot(name, phone);
    }
    await pctx.close();
    noProblems();
  });
} finally {
  await browser.close();
}
console.log(`${passed} passed, 0 failed`);
