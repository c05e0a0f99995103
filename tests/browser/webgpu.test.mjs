// The WebGPU path in headless Chromium, on its SwiftShader adapter (software): every
// kernel against the CPU path, both models against their CPU results, a run recorded
// as WebGPU, a device lost mid-run, and the choices made without a usable adapter.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { launch, openPage } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function backendOf(page) {
  await page.waitForFunction(() => window.seedling.state.backend, null, { timeout: 60_000 });
  return page.evaluate(() => window.seedling.state.backend);
}

function cosine(a, b) {
  let dot = 0; let na = 0; let nb = 0;
  for (let i = 0; i < a.length; i += 1) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return dot / Math.sqrt(na * nb);
}

test('every GPU kernel matches the CPU path on SwiftShader', { timeout: 600_000 }, async () => {
  const { context, page, problems } = await openPage(browser, '?backend=webgpu&lang=en');
  const backend = await backendOf(page);
  assert.equal(backend.backend, 'webgpu');
  assert.equal(backend.software, true);
  const { adapter, checks } = await page.evaluate(() => window.seedling.checkGpuKernels(0));
  await mkdir('test-results', { recursive: true });
  await writeFile('test-results/gpu-kernels-swiftshader.json', JSON.stringify({ adapter, checks }, null, 2));
  const failed = checks.filter((check) => !check.passed);
  assert.deepEqual(failed, []);
  assert.ok(checks.length >= 40, `${checks.length} cases`);
  assert.match(await page.locator('#backend-status').innerText(), /WebGPU \(software adapter/);
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('both models on WebGPU agree with the CPU in the browser', { timeout: 900_000 }, async () => {
  const texts = ['The battery lasted all day.', 'Le modèle tourne sur l’ordinateur de la classe.'];
  const prompt = 'List three ways to save energy at home.';
  const results = {};
  for (const backend of ['webgpu', 'cpu']) {
    const { context, page } = await openPage(browser, `?backend=${backend}&lang=en`);
    assert.equal((await backendOf(page)).backend, backend);
    await page.evaluate(() => window.seedling.load(['encoder', 'llm']));
    const embeddings = await page.evaluate((t) => window.seedling.embed(t), texts);
    // The prompt, then SmolLM2's greedy reply on this back end, cut to 128 tokens.
    const ids = await page.evaluate((p) => window.seedling.tokenize(p), prompt);
    results[backend] = { embeddings, ids, context, page };
  }
  for (let i = 0; i < texts.length; i += 1) {
    const similarity = cosine(results.webgpu.embeddings[i].vector, results.cpu.embeddings[i].vector);
    assert.ok(similarity >= 0.9999, `cosine ${similarity} for ${texts[i]}`);
  }
  const { page: cpuPage } = results.cpu;
  const generation = await cpuPage.evaluate((ids) => window.seedling.generate({
    promptIds: ids, options: { max_new_tokens: 64 - ids.length, sampling: { kind: 'greedy' }, stop_at_eos: false },
  }), results.cpu.ids);
  // 64 tokens keep SwiftShader's share of the run short; the native test covers 5 x 128.
  const ids = results.cpu.ids.concat(generation.token_ids).slice(0, 64);
  const onCpu = await cpuPage.evaluate((x) => window.seedling.teacherForced(x), ids);
  const onGpu = await results.webgpu.page.evaluate((x) => window.seedling.teacherForced(x), ids);
  assert.equal(onGpu.length, ids.length);
  const agreeing = onGpu.filter((token, i) => token === onCpu[i]).length;
  // Both back ends round activations to 8 bits, so last-bit differences can flip a
  // near-tie; the native test states the measured agreement.
  assert.ok(agreeing / ids.length >= 0.95, `top-1 agreement ${agreeing}/${ids.length}`);
  for (const { context } of Object.values(results)) await context.close();
});

test('a run on WebGPU is recorded, and a lost device finishes on the CPU', { timeout: 900_000 }, async () => {
  const { context, page, problems } = await openPage(browser,
    '?backend=webgpu&autorun=1&tasks=sentiment&limit=4&loseGpuAfterItems=2&lang=fr');
  await page.waitForFunction(() => window.seedling.state.report || window.seedling.state.errors.length, null, { timeout: 840_000 });
  const state = await page.evaluate(() => window.seedling.state);
  assert.deepEqual(state.errors, []);
  const { runtime, tasks } = state.report;
  assert.equal(runtime.backend, 'webgpu');
  assert.match(runtime.adapter, /software/);
  assert.match(runtime.fell_back, /destroyed/);
  const sentiment = tasks.find((task) => task.task === 'sentiment');
  assert.equal(sentiment.items.length, 4);
  assert.equal(sentiment.backend, 'webgpu, then cpu from item 3');
  assert.deepEqual(sentiment.items.map((item) => item.backend), ['webgpu', 'webgpu', 'cpu', 'cpu']);
  const energy = await page.locator('#energy').innerText();
  assert.match(energy, /La carte graphique s’est arrêtée/);
  assert.match(energy, /WebGPU/);
  await page.screenshot({ path: 'test-results/webgpu-fallback-fr.png', fullPage: true });
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('the automatic choice leaves a software adapter for the CPU and says why', { timeout: 120_000 }, async () => {
  const { context, page } = await openPage(browser, '?lang=en');
  const backend = await backendOf(page);
  assert.equal(backend.backend, 'cpu');
  assert.match(backend.reason, /software renderer/);
  assert.match(await page.locator('#backend-status').innerText(), /processor: no usable GPU/);
  await context.close();
});

test('without an adapter, WebGPU is refused with the reason and the CPU is used', { timeout: 120_000 }, async () => {
  const plain = await launch({ withoutWebGpu: true });
  try {
    const { context, page } = await openPage(plain, '?backend=webgpu&lang=en');
    const backend = await backendOf(page);
    assert.equal(backend.backend, 'cpu');
    assert.match(backend.failed, /no GPU adapter/);
    assert.match(await page.locator('#backend-status').innerText(), /WebGPU cannot be used here/);
    await context.close();
  } finally {
    await plain.close();
  }
});
