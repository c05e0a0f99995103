// The page end to end in headless Chromium: downloads verified, real GSM8K and UCI
// items run through both models, results shown, no console errors, nothing off-host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openPage } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('page runs both models end to end', { timeout: 900_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?autorun=1&tasks=gsm8k,sentiment,embed&limit=2&maxNewTokens=16&lang=en');
  await page.waitForFunction(() => window.seedling.state.report || window.seedling.state.errors.length, null, { timeout: 840_000 });
  const state = await page.evaluate(() => window.seedling.state);
  assert.deepEqual(state.errors, []);

  const report = state.report;
  assert.equal(report.schema, 'seedling-report/1');
  assert.equal(report.runtime.target, 'wasm32');
  const gsm8k = report.tasks.find((task) => task.task === 'gsm8k');
  assert.equal(gsm8k.items.length, 2);
  assert.ok(gsm8k.items[0].tokens_out > 0);
  assert.ok(gsm8k.items[0].tokens_out <= 16);
  assert.ok(gsm8k.energy.attributional_wh.estimate > 0);
  const sentiment = report.tasks.find((task) => task.task === 'sentiment');
  assert.equal(sentiment.items.length, 2);
  assert.equal(sentiment.items[0].reference === 'positive' || sentiment.items[0].reference === 'negative', true);
  assert.equal(report.embeddings.items.length, 2);
  // One-off costs name the model files and the runtime the page fetched.
  assert.ok(report.one_off.items.some((item) => item.description.startsWith('download of model files')));
  assert.ok(report.one_off.items.some((item) => item.description.startsWith('download of the runtime')));
  // The profile detected from this browser's hints is the one the run used.
  assert.ok(state.detection.profile_id);
  assert.equal(report.profile.id, state.detection.profile_id);
  assert.ok(state.detection.reason.length > 0);
  assert.match(await page.locator('#profile-detected').innerText(), /Detected/);
  // Playwright's default locale is en-US, so the grid is guessed and labelled so.
  assert.equal(report.grid.code, 'USA');
  assert.equal(report.grid_choice.guessed, true);
  assert.match(await page.locator('#energy').innerText(), /guess/);

  for (const download of Object.values(state.downloads)) assert.ok(download.verified, `${download.file} verified`);
  assert.equal(await page.locator('#gsm8k-table tbody tr').count(), 2);
  assert.equal(await page.locator('#sentiment-table tbody tr').count(), 2);
  assert.equal(await page.locator('#embed-table tbody tr').count(), 2);
  assert.match(await page.locator('#energy').innerText(), /Wh/);
  // The worked calculation uses the report's own figures, and they agree with each other.
  const energy = sentiment.energy;
  const perQuery = energy.power_w.estimate * (energy.seconds / energy.items) / 3600;
  assert.ok(Math.abs(perQuery - energy.attributional_wh_per_item.estimate) <= 1e-9 + 1e-6 * perQuery, `${perQuery}`);
  const formula = new Intl.NumberFormat('en', { maximumSignificantDigits: 3 }).format(energy.power_w.estimate);
  assert.match(await page.locator('#energy').innerText(), new RegExp(`How it is computed: ${formula.replace('.', '\\.')} W`));
  await page.screenshot({ path: 'test-results/page-en.png', fullPage: true });

  assert.deepEqual(problems.consoleErrors, []);
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('cancel keeps finished items and the page recovers', { timeout: 600_000 }, async () => {
  const { context, page, problems } = await openPage(browser);
  await page.fill('#limit', '3');
  await page.fill('#max-new-tokens', '8');
  await page.click('#run');
  await page.waitForFunction(() => window.seedling.state.items.gsm8k.length >= 1, null, { timeout: 300_000 });
  await page.click('#cancel');
  await page.waitForFunction(() => !window.seedling.state.running, null, { timeout: 30_000 });
  const kept = await page.evaluate(() => window.seedling.state.items.gsm8k.length);
  assert.ok(kept >= 1, 'finished items are kept');
  assert.equal(await page.locator('#error').isVisible(), false, 'cancelling is not an error');
  assert.match(await page.locator('#status').innerText(), /Cancelled/);

  const report = await page.evaluate(() => window.seedling.run({ tasks: ['embed'], limit: 1, maxNewTokens: 1 }));
  assert.equal(report.embeddings.items.length, 1);
  assert.deepEqual(problems.pageErrors, []);
  await context.close();
});

test('page switches to French', { timeout: 120_000 }, async () => {
  const { context, page } = await openPage(browser, '?lang=fr');
  assert.equal(await page.locator('html').getAttribute('lang'), 'fr');
  assert.equal(await page.locator('#run').innerText(), 'Lancer');
  await page.selectOption('#language', 'en');
  assert.equal(await page.locator('#run').innerText(), 'Run');
  await context.close();
});

test('reload reads models from the cache', { timeout: 600_000 }, async () => {
  const { context, page } = await openPage(browser);
  await page.evaluate(() => window.seedling.load(['encoder']));
  await page.reload();
  await page.waitForFunction(() => window.seedling !== undefined);
  await page.evaluate(() => window.seedling.load(['encoder']));
  const downloads = await page.evaluate(() => Object.values(window.seedling.state.downloads));
  assert.ok(downloads.length >= 4);
  for (const download of downloads) assert.ok(download.cached, `${download.file} served from the Cache API`);
  await context.close();
});

test('corrupt model file gives a clear error', { timeout: 300_000 }, async () => {
  const { context, page, problems } = await openPage(browser);
  await context.route('**/all-MiniLM-L6-v2/tokenizer.json', async (route) => {
    // A download cut short: the file minus its last 4 KiB.
    const response = await route.fetch();
    const body = await response.body();
    await route.fulfill({ status: 200, contentType: 'application/octet-stream', body: body.subarray(0, body.length - 4096) });
  });
  await page.evaluate(() => caches.delete('seedling-files-v1'));
  const message = await page.evaluate(() => window.seedling.run({ tasks: ['embed'], limit: 1, maxNewTokens: 1 }).then(() => 'no error', (error) => error.message));
  assert.match(message, /SHA-256 mismatch for all-MiniLM-L6-v2\/tokenizer\.json/);
  assert.match(message, /expected be50c362/);
  assert.equal(await page.locator('#error').isVisible(), true);
  assert.equal(await page.locator('#run').isEnabled(), true, 'the page stays usable');
  assert.deepEqual(problems.pageErrors, []);
  await context.close();
});

test('code tasks run end to end, HumanEval tests executed in the sandbox', { timeout: 900_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?lang=en');
  const report = await page.evaluate(() => window.seedling.run({ tasks: ['code-summary', 'humaneval'], limit: 1, maxNewTokens: 16 }));
  const summary = report.tasks.find((task) => task.task === 'code-summary');
  assert.equal(summary.metric, 'rouge_l_f1');
  assert.equal(summary.items.length, 1);
  assert.ok(summary.items[0].reference.length > 0);
  assert.ok('bleu' in summary.extra_metrics);
  const humaneval = report.tasks.find((task) => task.task === 'humaneval');
  assert.equal(humaneval.metric, 'pass@1');
  // 16 tokens cannot finish a function: the program runs and fails, which proves execution happened.
  assert.match(humaneval.items[0].detail, /^(passed|failed|timed out)/);
  assert.ok(humaneval.items[0].truncated || humaneval.items[0].tokens_out < 16);
  assert.ok(report.datasets.some((file) => file.name === 'humaneval/HumanEval.jsonl.gz'));
  assert.equal(await page.locator('#humaneval-table tbody tr').count(), 1);
  assert.equal(await page.locator('#code-summary-table tbody tr').count(), 1);
  assert.match(await page.locator('#energy').innerText(), /pass@1/);
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('user data file replaces defaults', { timeout: 600_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?lang=en');
  // A fixture made here: two sentences with labels written as words and as digits.
  const good = '{"text": "The soup was wonderful.", "label": "positive"}\n{"id": "b", "text": "Cold fries, rude staff.", "label": 0}\n';
  await page.selectOption('#data-task', 'sentiment');
  await page.setInputFiles('#data-file', { name: 'mine.jsonl', mimeType: 'application/json', buffer: Buffer.from(good) });
  await page.waitForFunction(() => document.querySelector('#data-status').textContent.includes('mine.jsonl'));
  const report = await page.evaluate(() => window.seedling.run({ tasks: ['sentiment'], limit: 10, maxNewTokens: 1 }));
  const sentiment = report.tasks[0];
  assert.equal(sentiment.user_data, true);
  assert.deepEqual(sentiment.items.map((item) => item.reference).sort(), ['negative', 'positive']);
  assert.ok(report.datasets.some((file) => file.name === 'mine.jsonl' && file.sha256.length === 64));

  const bad = '{"text": "Fine.", "label": 1}\n{"text": "Meh.", "label": "neutral"}\n';
  await page.setInputFiles('#data-file', { name: 'bad.jsonl', mimeType: 'application/json', buffer: Buffer.from(bad) });
  await page.waitForFunction(() => document.querySelector('#data-status').textContent.includes('bad.jsonl'));
  const message = await page.evaluate(() => window.seedling.run({ tasks: ['sentiment'], limit: 10, maxNewTokens: 1 }).then(() => 'no error', (error) => error.message));
  assert.match(message, /bad\.jsonl at line 2/);
  assert.match(message, /"label"/);

  // A story fixture made here; the story task has no default data in this build.
  const story = '{"background": "Two farms share a river. The upstream farm builds a dam.", "story": "The downstream farm ran dry, and its corn failed."}\n';
  await page.selectOption('#data-task', 'story');
  await page.setInputFiles('#data-file', { name: 'stories.jsonl', mimeType: 'application/json', buffer: Buffer.from(story) });
  await page.waitForFunction(() => document.querySelector('#data-status').textContent.includes('stories.jsonl'));
  const storyReport = await page.evaluate(() => window.seedling.run({ tasks: ['story'], limit: 1, maxNewTokens: 16 }));
  const storyTask = storyReport.tasks[0];
  assert.equal(storyTask.metric, 'bertscore_f1');
  assert.ok(storyTask.items[0].metrics.reference_perplexity > 1);
  assert.equal(await page.locator('#story-table tbody tr').count(), 1);

  await page.selectOption('#data-task', 'sentiment');
  await page.click('#data-default');
  await page.waitForFunction(() => document.querySelector('#data-status').textContent.includes('default'));
  const back = await page.evaluate(() => window.seedling.run({ tasks: ['sentiment'], limit: 1, maxNewTokens: 1 }));
  assert.equal(back.tasks[0].user_data, false);
  assert.deepEqual(problems.pageErrors, []);
  await context.close();
});
