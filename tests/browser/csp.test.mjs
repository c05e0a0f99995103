// The page runs under its Content Security Policy (sent by scripts/serve.py) without a
// single violation, and the policy is in force: inline scripts and connections to
// origins it does not list are blocked before they leave the browser.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openPage } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// Records every violation the document reports, from before the page's own scripts run.
const recordViolations = () => {
  window.cspViolations = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    window.cspViolations.push({ directive: event.effectiveDirective, blocked: event.blockedURI });
  });
};

test('a run under the page policy has no violation', { timeout: 600_000 }, async () => {
  const context = await browser.newContext();
  await context.addInitScript(recordViolations);
  const { page, problems } = await openPage(browser, '?lang=en', context);
  const response = await page.request.get(page.url());
  const policy = response.headers()['content-security-policy'] ?? '';
  assert.match(policy, /script-src 'self' 'wasm-unsafe-eval'/);
  assert.match(policy, /object-src 'none'/);

  const report = await page.evaluate(() =>
    window.seedling.run({ tasks: ['sentiment', 'gsm8k'], limit: 1, maxNewTokens: 4 }));
  assert.equal(report.tasks.length, 2);
  assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
  assert.deepEqual(problems.consoleErrors, []);

  // The policy is in force: an inline script and a loopback address it does not list.
  await page.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'window.inlineRan = true;';
    document.body.append(script);
  });
  const fetched = await page.evaluate(() =>
    fetch('http://127.0.0.2:9/').then(() => 'connected', (error) => error.name));
  assert.equal(fetched, 'TypeError');
  assert.equal(await page.evaluate(() => window.inlineRan ?? false), false);
  const violations = await page.evaluate(() => window.cspViolations);
  assert.ok(violations.some((v) => v.directive === 'script-src-elem'), JSON.stringify(violations));
  assert.ok(violations.some((v) => v.directive === 'connect-src' && v.blocked.includes('127.0.0.2')), JSON.stringify(violations));

  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.foreignRequests, []);
  await context.close();
});
