// The hosted-LLM baseline in the page: llama.cpp's OpenAI-compatible server (started by
// ./build.sh test) answers the same items, and the project's fault server on 127.0.0.1
// checks each failure: the small model's results stay and the message names the cause.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { launch, openPage } from './harness.mjs';

const LLAMA_URL = process.env.SEEDLING_LLAMA_SERVER_URL;
if (!LLAMA_URL) throw new Error('SEEDLING_LLAMA_SERVER_URL is not set; ./build.sh test starts llama.cpp’s server');

let browser;
let faultServer;
let faultUrl;

before(async () => {
  browser = await launch();
  const script = fileURLToPath(new URL('../../scripts/fault_server.py', import.meta.url));
  // The server exits when its standard input closes, so it cannot outlive this process.
  faultServer = spawn('python3', [script, '--exit-with-stdin'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: faultServer.stdout });
  faultUrl = (await new Promise((resolve) => lines.once('line', resolve))).trim().replace(/\/$/, '');
  assert.match(faultUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
});

after(async () => {
  await browser?.close();
  faultServer?.stdin.end();
  faultServer?.kill();
});

const faultSettings = (scenario, tag, extra = {}) => ({
  baseUrl: `${faultUrl}/${scenario}/${tag}/v1`, model: 'fault-model', apiKey: 'sk-test-not-a-real-key',
  size: { kind: 'parameters', total: 8 }, maxTokens: 8, stream: true, timeoutMs: 10_000, concurrency: 1,
  ...extra,
});

test('page compares the small model with llama.cpp on the same items', { timeout: 600_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?lang=fr');
  await page.fill('#hosted-url', `${LLAMA_URL}/`);
  await page.fill('#hosted-model', 'SmolLM2-135M-Instruct');
  await page.fill('#hosted-size', '0.135');
  await page.fill('#hosted-max-tokens', '8');
  // Ten items: the fewest that get a verdict other than inconclusive.
  const report = await page.evaluate(() => window.seedling.run({ tasks: ['sentiment'], limit: 10, maxNewTokens: 8 }));
  const state = await page.evaluate(() => window.seedling.state);
  assert.deepEqual(state.errors, []);

  const hosted = report.hosted.tasks[0];
  assert.equal(hosted.task, 'sentiment');
  assert.deepEqual(hosted.items.map((i) => i.id), report.tasks[0].items.map((i) => i.id));
  for (const item of hosted.items) {
    assert.ok(item.tokens_out > 0, JSON.stringify(item));
    assert.ok(item.hosted.ttft_ms > 0);
    assert.ok(item.hosted.energy_wh.estimate > 0);
  }
  assert.equal(report.comparisons.length, 1);
  assert.equal(report.hosted_note, null);
  assert.equal(await page.locator('#hosted-table tbody tr').count(), 10);
  assert.equal(await page.locator('#comparison-table tbody tr').count(), 1);
  assert.match(await page.locator('#energy').innerText(), /Le modèle hébergé consomme/);

  // The verdict and the headline, then judged again with a 100-point margin: no interval
  // on a 0..1 metric is wider than 200 points, so the task cannot stay inconclusive.
  const judgement = report.comparisons[0].judgement;
  assert.ok(['better', 'comparable', 'worse', 'inconclusive'].includes(judgement.verdict));
  assert.equal(judgement.margin, 0.05);
  assert.equal(judgement.items, 10);
  assert.equal(report.headline.of, 6);
  assert.equal(report.headline.judged, 1);
  const verdictCell = page.locator('#comparison-table tbody tr td.verdict');
  assert.match(await verdictCell.innerText(), /^(meilleur|comparable|moins bon|non concluant)$/);
  assert.match(await page.locator('#headline').innerText(), /^Comparable ou meilleur sur \d des 6 tâches/);
  await page.fill('#margin', '100');
  await page.dispatchEvent('#margin', 'change');
  await page.waitForFunction(() => window.seedling.state.report.comparisons[0].judgement.margin === 1);
  const again = await page.evaluate(() => window.seedling.state.report);
  assert.ok(['better', 'comparable'].includes(again.comparisons[0].judgement.verdict));
  assert.equal(again.headline.good_enough, 1);
  assert.match(await verdictCell.innerText(), /^(meilleur|comparable)$/);
  assert.match(await page.locator('#headline').innerText(), /^Comparable ou meilleur sur 1 des 6 tâches/);
  await page.fill('#margin', '-3');
  await page.dispatchEvent('#margin', 'change');
  assert.match(await page.locator('#error').innerText(), /La marge -3 n’est pas un nombre de points/);
  await page.screenshot({ path: 'test-results/hosted-fr.png', fullPage: true });

  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('page without a hosted model shows the published figures and says so', { timeout: 300_000 }, async () => {
  const { context, page } = await openPage(browser, '?lang=en');
  const report = await page.evaluate(() => window.seedling.run({ tasks: ['sentiment'], limit: 1, maxNewTokens: 4 }));
  assert.equal(report.hosted, null);
  assert.match(report.hosted_note, /published per-prompt figures/);
  assert.match(await page.locator('#hosted-summary').innerText(), /No hosted LLM configured/);
  assert.match(await page.locator('#energy').innerText(), /No hosted LLM is configured/);
  await context.close();
});

test('hosted failures keep the small model results and name the cause', { timeout: 600_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?lang=en');
  const cases = [
    ['no-cors', {}, 'network', /CORS/],
    ['cut-stream', {}, 'cut-short', /without \[DONE\]/],
    ['malformed', { stream: false }, 'malformed', /not an OpenAI chat completion/],
    ['unauthorized', {}, 'unauthorized', /API key/],
    ['slow', { timeoutMs: 500 }, 'timeout', /0\.5 s/],
  ];
  for (const [scenario, extra, kind, message] of cases) {
    const hosted = faultSettings(scenario, 'page', extra);
    const report = await page.evaluate((h) => window.seedling.run({ tasks: ['sentiment'], limit: 1, maxNewTokens: 4, hosted: h }), hosted);
    assert.equal(report.tasks[0].items.length, 1, `${scenario}: the small model's result was lost`);
    const failure = report.hosted.tasks[0].failures[0];
    assert.equal(failure.kind, kind, `${scenario}: ${failure.message}`);
    assert.match(failure.message, message);
    assert.doesNotMatch(failure.message, /sk-test-not-a-real-key/);
    assert.match(await page.locator('#hosted-failures').innerText(), message);
  }
  // A 429 with Retry-After: 1 is waited out and asked again.
  const report = await page.evaluate((h) => window.seedling.run({ tasks: ['sentiment'], limit: 1, maxNewTokens: 4, hosted: h }),
    faultSettings('rate-limit-once', 'page'));
  assert.equal(report.hosted.tasks[0].items[0].hosted.attempts, 2);
  assert.equal(report.hosted.tasks[0].items[0].prediction, null);
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('cancel during the hosted run keeps every finished item', { timeout: 300_000 }, async () => {
  const { context, page } = await openPage(browser, '?lang=en');
  await page.evaluate((h) => { window.pendingRun = window.seedling.run({ tasks: ['sentiment'], limit: 3, maxNewTokens: 4, hosted: h }); },
    faultSettings('slow', 'cancel', { stream: false }));
  await page.waitForFunction(() => window.seedling.state.items.sentiment.length === 3, null, { timeout: 200_000 });
  await page.click('#cancel');
  const report = await page.evaluate(() => window.pendingRun);
  assert.equal(report.cancelled, true);
  assert.equal(report.tasks[0].items.length, 3);
  assert.ok(report.hosted.tasks[0].items.length < 3);
  assert.match(await page.locator('#status').innerText(), /Cancelled/);
  await context.close();
});
