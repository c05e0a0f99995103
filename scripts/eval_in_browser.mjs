// Runs the main job in headless Chromium against the served page and writes the
// report: `./build.sh eval [--tasks sentiment,gsm8k,code-summary,humaneval,embed] [--limit N] [--max-new-tokens N] [--out FILE]`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const USAGE = 'usage: ./build.sh eval [--tasks sentiment,gsm8k,code-summary,humaneval,embed] [--limit N] [--max-new-tokens N] [--out FILE] [--lang en|fr]';
let parsed;
try {
  parsed = parseArgs({
  options: {
    tasks: { type: 'string', default: 'sentiment,gsm8k,code-summary,humaneval,embed' },
    limit: { type: 'string', default: '5' },
    'max-new-tokens': { type: 'string', default: '256' },
    out: { type: 'string', default: 'reports/browser-report.json' },
    lang: { type: 'string', default: 'en' },
  },
  });
} catch (error) {
  console.error(`error: ${error.message}\n${USAGE}`);
  process.exit(2);
}
const { values } = parsed;
for (const task of values.tasks.split(',')) {
  if (!['sentiment', 'gsm8k', 'code-summary', 'humaneval', 'embed'].includes(task)) {
    console.error(`error: unknown task ${JSON.stringify(task)}; available: sentiment, gsm8k, code-summary, humaneval, embed (story needs your own file: use the page or the CLI's --data)`);
    process.exit(2);
  }
}
for (const option of ['limit', 'max-new-tokens']) {
  if (!(Number.isInteger(Number(values[option])) && Number(values[option]) >= 1)) {
    console.error(`error: --${option} ${JSON.stringify(values[option])} is not a positive integer\n${USAGE}`);
    process.exit(2);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu'],
});
try {
  const page = await browser.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') console.error(`page: ${message.text()}`);
  });
  const query = new URLSearchParams({
    autorun: '1', tasks: values.tasks, limit: values.limit, maxNewTokens: values['max-new-tokens'], lang: values.lang,
  });
  await page.goto(`${process.env.SEEDLING_URL}?${query}`);
  let reported = 0;
  for (;;) {
    const state = await page.evaluate(() => ({
      done: Boolean(window.seedling?.state.report), errors: window.seedling?.state.errors ?? [],
      items: Object.values(window.seedling?.state.items ?? {}).flat().map((item) => item.id),
    }));
    for (const id of state.items.slice(reported)) console.error(`done: ${id}`);
    reported = state.items.length;
    if (state.errors.length) throw new Error(state.errors.join('\n'));
    if (state.done) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  const report = await page.evaluate(() => window.seedling.state.report);
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, JSON.stringify(report, null, 2));

  const rows = report.tasks.map((task) => ({
    task: task.task, model: task.model, items: task.items.length, score: task.score.toFixed(3),
    's/item': (task.seconds / task.items.length).toFixed(2),
    'Wh/item (low-high)': `${task.energy.attributional_wh_per_item.estimate.toPrecision(3)} (${task.energy.attributional_wh_per_item.low.toPrecision(3)}-${task.energy.attributional_wh_per_item.high.toPrecision(3)})`,
    'gCO2e/item': task.energy.g_co2e_per_item.estimate.toPrecision(3),
  }));
  if (report.embeddings) {
    const run = report.embeddings;
    rows.push({ task: 'embed', model: run.model, items: run.items.length, score: '-', 's/item': (run.seconds / run.items.length).toFixed(3),
      'Wh/item (low-high)': run.energy.attributional_wh_per_item.estimate.toPrecision(3), 'gCO2e/item': run.energy.g_co2e_per_item.estimate.toPrecision(3) });
  }
  console.table(rows);
  for (const contrast of report.hosted_reference) {
    console.log(`hosted reference: ${contrast.figure.label} ${contrast.figure.wh_per_prompt} Wh/prompt (${contrast.figure.published})`
      + (contrast.energy_ratio ? `, ${contrast.energy_ratio.toPrecision(3)}x the small model's Wh/item` : ''));
  }
  console.log(`report written to ${values.out}`);
} catch (error) {
  console.error(`error: ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
