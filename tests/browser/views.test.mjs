// The result views in headless Chromium. A real run in French checks the charts, the
// everyday equivalents, the feasibility view and the summary picture. Other tests cover
// the request guard, user models, and the keyboard reach, labels and contrast of controls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, openPage } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const close = (a, b) => Math.abs(a - b) <= 1e-9 + 1e-9 * Math.abs(b);

test('a French run draws its charts, equivalents and feasibility from the report', { timeout: 900_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?autorun=1&tasks=gsm8k,sentiment&limit=2&maxNewTokens=8&lang=fr');
  await page.waitForFunction(() => (window.seedling.state.teaching && window.seedling.state.feasibility)
    || window.seedling.state.errors.length, null, { timeout: 840_000 });
  const state = await page.evaluate(() => window.seedling.state);
  assert.deepEqual(state.errors, []);
  const report = state.report;

  // Score chart: one dataset per task whose first point is the small model's own figures,
  // then one dashed line per published figure.
  const score = await page.evaluate(() => {
    const chart = window.Chart.getChart('score-chart');
    return chart.data.datasets.map((dataset) => ({ label: dataset.label, data: dataset.data, radius: dataset.pointRadius }));
  });
  const lines = score.filter((dataset) => dataset.radius === 0);
  assert.equal(score.length - lines.length, report.tasks.length);
  assert.equal(lines.length, report.hosted_reference.length);
  for (const [index, task] of report.tasks.entries()) {
    assert.ok(close(score[index].data[0].x, task.energy.g_co2e_per_item.estimate), task.task);
    assert.equal(score[index].data[0].y, task.score);
  }
  const gemini = report.hosted_reference.find((contrast) => contrast.figure.g_co2e_per_prompt);
  assert.ok(lines.some((line) => line.data[0].x === gemini.figure.g_co2e_per_prompt));
  // A figure given in Wh only is converted with the run's grid.
  const whOnly = report.hosted_reference.find((contrast) => contrast.figure.g_co2e_per_prompt === null);
  const converted = whOnly.figure.wh_per_prompt * report.grid.g_co2e_per_kwh / 1000;
  assert.ok(lines.some((line) => close(line.data[0].x, converted)));
  assert.match(await page.locator('#score-caption').innerText(), /convertis avec le réseau/);

  const energy = await page.evaluate(() => {
    const chart = window.Chart.getChart('energy-chart');
    return { labels: chart.data.labels, first: chart.data.datasets[0].data, scale: chart.options.scales.x.type };
  });
  assert.equal(energy.scale, 'logarithmic');
  assert.equal(energy.labels.length, report.tasks.length);
  report.tasks.forEach((task, index) => assert.equal(energy.first[index], task.energy.attributional_wh_per_item.estimate));
  // Both canvases hold drawn pixels.
  const painted = await page.evaluate(() => ['score-chart', 'energy-chart'].map((id) => {
    const canvas = document.getElementById(id);
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let opaque = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) opaque += 1;
    return opaque;
  }));
  for (const count of painted) assert.ok(count > 1000, `${count} painted pixels`);

  // Equivalents: 1,000 queries at the mean gCO2e per query, over the data file's figures.
  const mean = report.tasks.reduce((sum, task) => sum + task.energy.g_co2e_per_item.estimate, 0) / report.tasks.length;
  const phone = state.teaching.smallEquivalents.find((item) => item.id === 'smartphone-charge');
  assert.ok(close(phone.count, mean * 1000 / 12.4), `${phone.count}`);
  const ids = state.teaching.smallEquivalents.map((item) => item.id);
  assert.ok(ids.includes('car-km-fr'), ids.join());
  assert.ok(!ids.includes('car-km-us'), ids.join());
  const teaching = await page.locator('#teaching').innerText();
  assert.match(teaching, /recharges de smartphone/);
  assert.match(teaching, /km en voiture/);
  assert.match(teaching, /Quelle confiance accorder/);
  // Without a hosted model, the published figure with a carbon value is the comparison.
  assert.equal(state.teaching.other.kind, 'published');
  assert.equal(await page.locator('#teaching a[href^="https://"]').count() >= 2, true);

  // Feasibility: the 95th percentile of 2 items is the slower one.
  const gsm8k = report.tasks.find((task) => task.task === 'gsm8k');
  const slowest = Math.max(...gsm8k.items.map((item) => item.latency_ms)) / 1000;
  const checked = state.feasibility.tasks.find((task) => task.task === 'gsm8k');
  assert.ok(close(checked.p95_seconds, slowest));
  assert.ok(state.feasibility.memory.measured, 'the wasm memory is measured');
  assert.ok(state.feasibility.memory.needed_bytes >= 98_362_432, 'the measured memory holds the GGUF');
  assert.ok(state.feasibility.load_seconds > 0);
  assert.equal(await page.locator('#feasibility-table tbody tr').count(), 2);
  // A budget below the fastest item fails and names the task.
  await page.fill('#latency-budget', '0.001');
  await page.locator('#latency-budget').dispatchEvent('change');
  await page.waitForFunction(() => window.seedling.state.feasibility?.feasible === false);
  assert.match(await page.locator('#feasibility').innerText(), /Pas faisable/);
  assert.match(await page.locator('#feasibility').innerText(), /GSM8K : 95 % des items/);

  // The summary picture is a 1200 × 675 PNG.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-png')]);
  assert.match(download.suggestedFilename(), /^seedling-.*\.png$/);
  const png = await readFile(await download.path());
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(png.readUInt32BE(16), 1200);
  assert.equal(png.readUInt32BE(20), 675);
  assert.ok(png.length > 20_000, `${png.length} bytes`);

  await page.screenshot({ path: 'test-results/page-fr.png', fullPage: true });

  // Opened again (without autorun), the page shows the run's memory, not its fresh engine's.
  const measured = state.feasibility.memory.needed_bytes;
  await page.goto(new URL('?lang=fr', page.url()).href);
  await page.waitForFunction(() => window.seedling?.state.feasibility);
  assert.equal(await page.evaluate(() => window.seedling.state.feasibility.memory.needed_bytes), measured);
  assert.deepEqual(problems.consoleErrors, []);
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('the request guard records and blocks a request to another host', { timeout: 120_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?lang=en');
  // An HTTPS URL passes the page's policy (the hosted API may be any HTTPS origin), so
  // only the guard stops it. The .invalid domain never resolves in any case.
  const outcome = await page.evaluate(() => fetch('https://guard-check.invalid/probe').then(() => 'answered', () => 'blocked'));
  assert.equal(outcome, 'blocked');
  assert.deepEqual(problems.foreignRequests, ['https://guard-check.invalid/probe']);
  await context.close();
});

// WCAG 2.x relative luminance and contrast ratio.
function contrast(foreground, background) {
  const luminance = ([r, g, b]) => {
    const linear = (c) => {
      const v = c / 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  };
  const [light, dark] = [luminance(foreground), luminance(background)].sort((a, b) => b - a);
  return (light + 0.05) / (dark + 0.05);
}

test('controls are labelled, reachable and legible', { timeout: 120_000 }, async () => {
  const { context, page } = await openPage(browser, '?lang=en');
  await page.waitForFunction(() => document.querySelector('#status').textContent === 'Ready.');

  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, button, textarea')]
    .filter((element) => {
      if (element.labels?.length && [...element.labels].some((label) => label.textContent.trim())) return false;
      if (element.getAttribute('aria-label') || element.getAttribute('aria-labelledby')) return false;
      return !(element.tagName === 'BUTTON' && element.textContent.trim());
    })
    .map((element) => element.id || element.outerHTML.slice(0, 60)));
  assert.deepEqual(unlabelled, []);

  // Tab through the page: every enabled, visible control is reached.
  const controls = await page.evaluate(() => [...document.querySelectorAll('input, select, button, textarea, a[href]')]
    .filter((element) => !element.disabled && element.getClientRects().length > 0)
    .map((element) => element.id || element.getAttribute('name') + ':' + element.value));
  const reached = new Set();
  await page.locator('body').focus();
  for (let i = 0; i < controls.length + 5; i += 1) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => {
      const element = document.activeElement;
      return element.id || element.getAttribute('name') + ':' + element.value;
    }));
  }
  assert.deepEqual(controls.filter((id) => !reached.has(id)), []);

  // Text against its nearest opaque background: at least 4.5:1, or 3:1 for large text.
  // Disabled controls are exempt, as in WCAG.
  const samples = await page.evaluate(() => {
    const rgb = (text) => text.match(/\d+(\.\d+)?/g).slice(0, 4).map(Number);
    const background = (element) => {
      for (let node = element; node; node = node.parentElement) {
        const [r, g, b, a = 1] = rgb(getComputedStyle(node).backgroundColor);
        if (a > 0.5) return [r, g, b];
      }
      return [255, 255, 255];
    };
    return [...document.querySelectorAll('body *')]
      .filter((element) => !element.disabled && element.getClientRects().length > 0
        && [...element.childNodes].some((node) => node.nodeType === Node.TEXT_NODE && node.textContent.trim()))
      .map((element) => {
        const style = getComputedStyle(element);
        const size = parseFloat(style.fontSize);
        const bold = Number(style.fontWeight) >= 700;
        return {
          what: element.id || element.tagName.toLowerCase() + ':' + element.textContent.trim().slice(0, 30),
          foreground: rgb(style.color).slice(0, 3),
          background: background(element),
          large: size >= 24 || (bold && size >= 18.66),
        };
      });
  });
  assert.ok(samples.length > 30, `${samples.length} text elements`);
  const poor = samples
    .map((sample) => ({ ...sample, ratio: contrast(sample.foreground, sample.background) }))
    .filter((sample) => sample.ratio < (sample.large ? 3 : 4.5))
    .map((sample) => `${sample.what}: ${sample.ratio.toFixed(2)}`);
  assert.deepEqual(poor, []);
  await context.close();
});

const MODELS = new URL('../../models/files/', import.meta.url);
const GGUF = 'SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf';
const GGUF_SHA256 = 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53';

// The run's error message, or 'no error'.
const runError = (page, tasks) => page.evaluate((list) => window.seedling.run({ tasks: list, limit: 1, maxNewTokens: 4 })
  .then(() => 'no error', (error) => error.message), tasks);

test('user models load by URL and file', { timeout: 600_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?lang=en');
  // The default GGUF, fetched by its URL path, serves as a user's model URL.
  await page.fill('#llm-url', `/models/files/${GGUF}`);
  await page.fill('#llm-sha256', GGUF_SHA256.toUpperCase());
  const encoderFiles = ['model.safetensors', 'tokenizer.json', 'config.json']
    .map((name) => new URL(`all-MiniLM-L6-v2/${name}`, MODELS).pathname);
  await page.setInputFiles('#encoder-files', encoderFiles);
  assert.match(await page.locator('#models-status').innerText(), /SmolLM2-135M-Instruct\.Q4_1\.gguf.*model\.safetensors, tokenizer\.json, config\.json/);

  const report = await page.evaluate(() => window.seedling.run({ tasks: ['gsm8k', 'embed'], limit: 1, maxNewTokens: 4 }));
  const llm = report.models.find((model) => model.name === 'SmolLM2-135M-Instruct.Q4_1');
  assert.ok(llm, report.models.map((model) => model.name).join());
  assert.equal(llm.files[0].sha256, GGUF_SHA256);
  const encoder = report.models.find((model) => model.name === 'user encoder');
  assert.ok(encoder);
  assert.equal(encoder.files.find((file) => file.name === 'model.safetensors').sha256.slice(0, 16), '53aa51172d142c89');
  assert.equal(report.embeddings.items.length, 1);
  assert.match(await page.locator('#downloads').innerText(), /your file, SHA-256 as expected/);

  // A wrong SHA-256 stops before loading and names the file and both hashes.
  await page.fill('#llm-sha256', '0'.repeat(64));
  const mismatch = await runError(page, ['gsm8k']);
  assert.match(mismatch, /SHA-256 mismatch for SmolLM2-135M-Instruct\.Q4_1\.gguf: expected 0{64}, got b179c952/);
  await page.fill('#llm-sha256', 'abc');
  assert.match(await runError(page, ['gsm8k']), /Invalid SHA-256 “abc”/);
  await page.fill('#llm-sha256', '');
  // A URL that returns 404 gives the status and the URL.
  await page.fill('#llm-url', '/models/files/missing.gguf');
  assert.match(await runError(page, ['gsm8k']), /missing\.gguf: HTTP 404 from http:\/\/127\.0\.0\.1:\d+\/models\/files\/missing\.gguf/);
  // An encoder folder without its weights names the files it needs.
  await page.click('#models-default');
  await page.setInputFiles('#encoder-files', [new URL('all-MiniLM-L6-v2/config.json', MODELS).pathname]);
  assert.match(await runError(page, ['embed']), /lacks model\.safetensors, tokenizer\.json/);
  assert.equal(await page.locator('#run').isEnabled(), true, 'the page stays usable');
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('the sentiment head refuses an encoder it was not trained on', { timeout: 600_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?lang=en');
  // A fixture made here: the MiniLM weights with their last byte changed, so another SHA-256.
  // Playwright takes files over 50 MB by path only, so the folder is written under /tmp.
  const folder = await mkdtemp(join(tmpdir(), 'seedling-encoder-'));
  const weights = await readFile(new URL('all-MiniLM-L6-v2/model.safetensors', MODELS));
  weights[weights.length - 1] ^= 0x01;
  await writeFile(join(folder, 'model.safetensors'), weights);
  for (const name of ['tokenizer.json', 'config.json']) {
    await copyFile(new URL(`all-MiniLM-L6-v2/${name}`, MODELS), join(folder, name));
  }
  await page.setInputFiles('#encoder-files', ['model.safetensors', 'tokenizer.json', 'config.json'].map((name) => join(folder, name)));
  const message = await runError(page, ['sentiment']);
  assert.match(message, /sentiment head was trained on the embeddings of all-MiniLM-L6-v2\/model\.safetensors \(SHA-256 53aa5117/);
  assert.match(message, /not on user encoder/);
  // The same encoder still embeds.
  const report = await page.evaluate(() => window.seedling.run({ tasks: ['embed'], limit: 1, maxNewTokens: 1 }));
  assert.equal(report.embeddings.items.length, 1);
  assert.deepEqual(problems.pageErrors, []);
  await context.close();
  await rm(folder, { recursive: true });
});
