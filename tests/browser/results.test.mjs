// Results outlive the tab and travel between devices: a reload keeps finished items and
// the report (IndexedDB), the report exports as JSON and CSV, and an exported report
// imports beside this device's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { launch, openPage } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const reloaded = async (page) => {
  await page.reload();
  await page.waitForFunction(() => window.seedling !== undefined, null, { timeout: 60_000 });
};

test('a reload keeps the report, and export then import round-trips it', { timeout: 600_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?lang=en');
  assert.match(await page.locator('#saved-status').innerText(), /No results are kept/);
  assert.equal(await page.locator('#export-json').isDisabled(), true);
  const report = await page.evaluate(async () => {
    const finished = await window.seedling.run({ tasks: ['sentiment'], limit: 2, maxNewTokens: 8 });
    await window.seedling.saved();
    return finished;
  });
  assert.equal(report.tasks[0].items.length, 2);

  await reloaded(page);
  const restored = await page.evaluate(() => window.seedling.state);
  assert.equal(restored.report.created_unix_ms, report.created_unix_ms);
  assert.deepEqual(restored.report.tasks[0].items.map((i) => i.id), report.tasks[0].items.map((i) => i.id));
  assert.equal(await page.locator('#sentiment-table tbody tr').count(), 2);
  assert.match(await page.locator('#saved-status').innerText(), /are kept in this browser/);
  assert.match(await page.locator('#energy').innerText(), /Wh/);

  const [json] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
  assert.match(json.suggestedFilename(), /^seedling-.*\.json$/);
  const jsonPath = `test-results/${json.suggestedFilename()}`;
  await json.saveAs(jsonPath);
  const exported = JSON.parse(await readFile(jsonPath, 'utf8'));
  assert.equal(exported.schema, 'seedling-report/1');
  assert.equal(exported.created_unix_ms, report.created_unix_ms);

  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const lines = (await readFile(await csv.path(), 'utf8')).trim().split('\n');
  assert.match(lines[0], /^timestamp,project_name,run_id,experiment_id,duration,emissions,emissions_rate,cpu_power/);
  assert.equal(lines.length, 2, 'a header and one row for the one task');
  assert.match(lines[1], /,seedling,seedling-\d+,sentiment,/);

  // The exported file imported back: both sides show the same figures.
  await page.setInputFiles('#import-file', jsonPath);
  await page.waitForFunction(() => !document.getElementById('side-by-side').hidden);
  const cells = await page.locator('#side-by-side tbody tr').first().locator('td').allInnerTexts();
  assert.equal(cells[1], cells[2], `scores ${cells}`);
  assert.equal(cells[5], cells[6], `carbon ${cells}`);
  // No hosted model ran, so neither side has a verdict.
  assert.deepEqual(cells.slice(7), ['—', '—']);
  assert.match(await page.locator('#side-by-side-devices').innerText(), /This device: .* The other \(seedling-/);

  // A JSON file that is not a report is refused with its name and the fix.
  await page.setInputFiles('#import-file', {
    name: 'notes.json', mimeType: 'application/json', buffer: Buffer.from('{"tasks": 3}'),
  });
  await page.waitForFunction(() => !document.getElementById('error').hidden);
  assert.match(await page.locator('#error').innerText(), /notes\.json is not a Seedling report .*Choose a JSON file that Seedling exported/);

  await page.click('#clear-results');
  await page.waitForFunction(() => /No results are kept/.test(document.getElementById('saved-status').textContent));
  await reloaded(page);
  assert.equal(await page.evaluate(() => window.seedling.state.report), null);
  await page.screenshot({ path: 'test-results/results-en.png', fullPage: true });

  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('a tab reloaded mid-run keeps the items that finished, in French', { timeout: 600_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?lang=fr');
  await page.fill('#limit', '20');
  await page.evaluate(() => { window.seedling.run({ tasks: ['sentiment'], limit: 20, maxNewTokens: 8 }).catch(() => {}); });
  await page.waitForFunction(() => window.seedling.state.items.sentiment.length >= 2, null, { timeout: 300_000 });
  // The ids are read before the save, so the saved record holds at least these.
  const finished = await page.evaluate(async () => {
    const ids = window.seedling.state.items.sentiment.map((item) => item.id);
    await window.seedling.saved();
    return ids;
  });

  await reloaded(page);
  const kept = await page.evaluate(() => window.seedling.state.items.sentiment.map((item) => item.id));
  assert.ok(kept.length >= finished.length, `kept ${kept.length} of ${finished.length}`);
  assert.deepEqual(kept.slice(0, finished.length), finished);
  assert.equal(await page.evaluate(() => window.seedling.state.report), null);
  assert.equal(await page.locator('#sentiment-table tbody tr').count(), kept.length);
  assert.match(await page.locator('#saved-status').innerText(), new RegExp(`s’est arrêtée avant la fin .* ses ${kept.length} éléments terminés`));
  assert.equal(await page.locator('#export-json').isDisabled(), true);

  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('the page gives the download size first and clears cached models', { timeout: 300_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?lang=en');
  const warning = page.locator('#download-warning');
  const megabytes = async () => Number((await warning.innerText()).match(/downloads ([\d.,]+) MB/)?.[1].replace(/,/g, ''));
  const everything = await megabytes();
  assert.ok(everything > 100, `${await warning.innerText()}`);

  // Only the embedding task: the encoder alone, about 91 MB.
  for (const task of ['sentiment', 'gsm8k', 'code-summary', 'humaneval']) {
    await page.uncheck(`input[name=task][value="${task}"]`);
  }
  await page.waitForFunction((before) => {
    const size = document.getElementById('download-warning').textContent.match(/downloads ([\d.,]+) MB/)?.[1];
    return size && Number(size.replace(/,/g, '')) < before;
  }, everything);
  const encoder = await megabytes();
  assert.ok(encoder > 80, `encoder ${encoder} MB`);
  assert.ok(encoder < 100, `encoder ${encoder} MB`);

  await page.evaluate(() => window.seedling.load(['encoder']));
  await page.check('input[name=task][value="sentiment"]');
  await page.uncheck('input[name=task][value="sentiment"]');
  await page.waitForFunction(() => document.getElementById('download-warning').textContent === '');
  assert.match(await page.locator('#cache-status').innerText(), /holds (9\d|8\d)[.\d]* MB of model files/);
  assert.equal(await page.locator('#clear-cache').isDisabled(), false);

  await page.click('#clear-cache');
  await page.waitForFunction(() => /deleted/.test(document.getElementById('cache-status').textContent));
  assert.match(await page.locator('#cache-status').innerText(), /holds 0 MB of model files\. Cached model and data files deleted\./);
  assert.ok(await megabytes() > 80);
  assert.equal(await page.locator('#clear-cache').isDisabled(), true);

  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.consoleErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});
