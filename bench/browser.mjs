// One headless Chromium per engine, so each engine's renderer process and its memory
// peak are its own. Every request to a host other than 127.0.0.1 is rejected and recorded.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { browserMemory } from './processes.mjs';

// The flags of tests/browser/harness.mjs: no background traffic, WebGPU exposed
// (SwiftShader on a machine without a GPU).
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu',
];

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export class EngineSession {
  // `kind`: seedling, transformers, wllama3 or wllama2 (see bench/page/bench.js).
  static async open(baseUrl, kind, label) {
    const session = new EngineSession(kind, label);
    session.userDataDir = mkdtempSync(join(tmpdir(), 'seedling-bench-'));
    session.context = await chromium.launchPersistentContext(session.userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    await session.context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.hostname !== '127.0.0.1' && url.protocol !== 'data:' && url.protocol !== 'blob:') {
        session.problems.foreignRequests.push(url.href);
        return route.abort();
      }
      return route.continue();
    });
    session.page = await session.context.newPage();
    session.page.on('pageerror', (error) => session.problems.pageErrors.push(error.message));
    session.page.on('console', (message) => {
      if (message.type() === 'error') session.problems.consoleErrors.push(message.text().slice(0, 500));
    });
    await session.page.goto(baseUrl);
    await session.page.waitForFunction(() => window.bench !== undefined, null, { timeout: 60_000 });
    session.environment = await session.page.evaluate(() => ({
      crossOriginIsolated: window.bench.crossOriginIsolated,
      hardwareConcurrency: window.bench.hardwareConcurrency,
      userAgent: window.bench.userAgent,
    }));
    await session.page.evaluate((engineKind) => window.bench.open(engineKind), kind);
    return session;
  }

  constructor(kind, label) {
    this.kind = kind;
    this.label = label;
    this.problems = { foreignRequests: [], pageErrors: [], consoleErrors: [] };
  }

  call(method, params = {}) {
    return this.page.evaluate(([name, args]) => window.bench.call(name, args), [method, params]);
  }

  // Wasm heap of the engine's threads and the browser's peak resident set sizes.
  async memory() {
    const heap = await this.page.evaluate(() => window.bench.wasmHeapBytes());
    return { wasmHeapBytes: heap.bytes || null, ...browserMemory(this.userDataDir) };
  }

  async close() {
    await this.context?.close();
    rmSync(this.userDataDir, { recursive: true, force: true });
  }
}
