// `./build.sh dist` makes a folder that a plain static server (Python's http.server,
// which sends none of the page's own headers) serves as a working page, and
// `--model-base` points the page at model files served elsewhere.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { launch, openPage } from './harness.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
const dist = (...args) => run('./build.sh', ['dist', ...args], { cwd: ROOT, maxBuffer: 1 << 24 });

let browser;
let folder;
let server;

before(async () => {
  browser = await launch();
  folder = await mkdtemp(join(tmpdir(), 'seedling-dist-'));
});

after(async () => {
  await browser?.close();
  server?.kill();
  if (folder) await rm(folder, { recursive: true, force: true });
});

// Serves `root` with Python's http.server on a free loopback port; resolves to its URL.
async function serveStatic(root) {
  server = spawn('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', root],
    { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines = createInterface({ input: server.stdout });
  const line = await new Promise((resolve) => lines.once('line', resolve));
  const port = line.match(/port (\d+)/)?.[1];
  assert.ok(port, line);
  return `http://127.0.0.1:${port}/`;
}

test('the static folder works from a plain static server', { timeout: 600_000 }, async () => {
  const site = join(folder, 'site');
  await dist('--out', site);
  for (const path of ['index.html', 'pkg/seedling_bg.wasm', 'models/manifest.json', 'data/manifest.json',
    'vendor/pyodide/pyodide.mjs', 'config.json']) {
    assert.ok(existsSync(join(site, path)), `${path} in the folder`);
  }
  const headers = await readFile(join(site, '_headers'), 'utf8');
  assert.match(headers, /Content-Security-Policy: default-src 'self'/);
  assert.match(headers, /Cross-Origin-Embedder-Policy: require-corp/);

  const url = await serveStatic(site);
  const { context, page, problems } = await openPage(browser, `${url}?lang=fr`);
  const report = await page.evaluate(() => window.seedling.run({ tasks: ['sentiment', 'embed'], limit: 1, maxNewTokens: 4 }));
  assert.equal(report.tasks[0].items.length, 1);
  assert.equal(report.embeddings.items.length, 1);
  const downloads = await page.evaluate(() => Object.values(window.seedling.state.downloads));
  for (const download of downloads) assert.ok(download.verified, `${download.file} verified`);
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.consoleErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});

test('--model-base leaves the models out and names their URL', { timeout: 300_000 }, async () => {
  const site = join(folder, 'elsewhere');
  await dist('--out', site, '--model-base', 'http://127.0.0.1:9/seedling');
  assert.equal(existsSync(join(site, 'models/files')), false);
  const config = JSON.parse(await readFile(join(site, 'config.json'), 'utf8'));
  assert.equal(config.modelBase, 'http://127.0.0.1:9/seedling/');

  await assert.rejects(dist('--out', site, '--model-base', 'ftp://x'), (error) => {
    assert.match(error.stderr, /invalid --model-base "ftp:\/\/x": give an http\(s\) URL/);
    return true;
  });
  // A folder that dist did not make is never emptied.
  await assert.rejects(dist('--out', ROOT), (error) => {
    assert.match(error.stderr, /exists and is not a folder \.\/build\.sh dist made/);
    return true;
  });
});
