// Shared set-up for the browser tests: Debian's Chromium, headless, with every
// request outside 127.0.0.1 refused and recorded, and console errors collected.
import { chromium } from 'playwright-core';

export const BASE_URL = process.env.SEEDLING_URL;
if (!BASE_URL) throw new Error('SEEDLING_URL is not set; run the browser tests through ./build.sh test');

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu',
];

// `withoutWebGpu` leaves out --enable-unsafe-webgpu, so the page finds no adapter.
export async function launch({ withoutWebGpu = false } = {}) {
  const args = withoutWebGpu ? CHROMIUM_ARGS.filter((arg) => arg !== '--enable-unsafe-webgpu') : CHROMIUM_ARGS;
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args });
}

// Opens a page in `context` (a fresh one by default); `problems` collects console
// errors, page errors and any request to a host other than 127.0.0.1.
export async function openPage(browser, path = '', context = undefined) {
  context ??= await browser.newContext();
  const problems = { consoleErrors: [], pageErrors: [], foreignRequests: [] };
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname !== '127.0.0.1' && url.protocol !== 'data:' && url.protocol !== 'blob:') {
      problems.foreignRequests.push(url.href);
      return route.abort();
    }
    return route.continue();
  });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') problems.consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => problems.pageErrors.push(error.message));
  await page.goto(new URL(path, BASE_URL).href);
  await page.waitForFunction(() => window.seedling !== undefined, null, { timeout: 60_000 });
  return { context, page, problems };
}
