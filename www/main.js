// The page: settings, progress and results. Inference runs in worker.js so the
// interface never freezes; this file only talks to the worker and draws.
import { pickLanguage, translate } from './i18n.js';
import { clearLatest, loadLatest, saveLatest } from './store.js';
import { clearCharts, drawEnergyChart, drawScoreChart, referenceLines, summaryPicture } from './charts.js';

const params = new URLSearchParams(location.search);
const TASKS = ['sentiment', 'story', 'gsm8k', 'code-summary', 'humaneval', 'embed'];
// Tasks whose default data set this build cannot fetch: they run on the user's file only.
const NEEDS_USER_DATA = ['story'];
const emptyItems = () => Object.fromEntries(TASKS.map((task) => [task, []]));
const state = {
  language: pickLanguage(params.get('lang')),
  report: null,
  items: emptyItems(),
  hostedItems: [],
  hostedFailures: [],
  userData: {},
  errors: [],
  warnings: [],
  downloads: {},
  running: false,
  // Seconds each model took to load in the latest run, and what the worker derived from
  // the report: the feasibility checks and the everyday equivalents.
  loadSeconds: [],
  wasmMemoryBytes: null,
  feasibility: null,
  teaching: null,
};

const $ = (id) => document.getElementById(id);
const t = (key, values) => translate(state.language, key, values);
const number = (value, digits = 2) =>
  new Intl.NumberFormat(state.language, { maximumSignificantDigits: digits }).format(value);
const fixed = (value, digits = 1) =>
  new Intl.NumberFormat(state.language, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);

// Formats seconds as "42 s", "3 min" or "2.5 h".
function duration(seconds) {
  if (seconds < 90) return `${fixed(seconds, 0)} s`;
  if (seconds < 5400) return `${fixed(seconds / 60, 0)} min`;
  return `${fixed(seconds / 3600, 1)} h`;
}

// ---- Worker requests -------------------------------------------------------

const CANCELLED = 'cancelled';
let worker = null;
let nextId = 1;
const pending = new Map();

// Settles when the current worker has loaded the wasm module. Every other request waits
// for it, so a request sent right after a restart never reaches a loading engine.
let workerReady = Promise.resolve();

function startWorker() {
  worker = new Worker('worker.js', { type: 'module' });
  worker.onmessage = ({ data }) => onWorkerMessage(data);
  worker.onerror = (event) => showError(event.message || 'worker failed to start');
  workerReady = send('init', { backend: $('backend').value }).then((ready) => {
    state.backend = ready.backend;
    renderBackend();
    return ready;
  });
  return workerReady;
}

// Says where the models compute, and why when the automatic choice took the processor.
function renderBackend() {
  const chosen = state.backend;
  if (!chosen) return;
  const adapter = chosen.adapter ? ` (${chosen.adapter})` : '';
  let text = t('backendUsing', { backend: chosen.backend === 'webgpu' ? 'WebGPU' : 'CPU', adapter });
  if (chosen.failed) text = `${t('backendFailed', { reason: chosen.failed })} ${text}`;
  else if (chosen.reason) text = t('backendAutoCpu', { reason: chosen.reason });
  $('backend-status').textContent = text;
}

// Replaces the worker, failing the requests it held, and hands the new one the user's files.
async function restartWorker() {
  worker.terminate();
  for (const waiter of pending.values()) waiter.reject(new Error(CANCELLED));
  pending.clear();
  await startWorker();
  for (const [task, { name, bytes }] of Object.entries(state.userData)) {
    await request('useData', { task, name, bytes });
  }
}

function request(type, payload = {}) {
  return workerReady.then(() => send(type, payload));
}

function send(type, payload = {}) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, type, ...payload });
  });
}

function onWorkerMessage(message) {
  switch (message.type) {
    case 'result': {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (!waiter) return;
      if (message.error) waiter.reject(new Error(message.error));
      else waiter.resolve(message.result);
      break;
    }
    case 'download':
      // The final message of a file keeps the rate its last progress message gave.
      state.downloads[message.file] = { rate: state.downloads[message.file]?.rate, ...message };
      renderDownloads();
      break;
    case 'status':
      setStatus(message.key, message.values);
      break;
    case 'warning':
      state.warnings.push(message);
      setStatus(message.key);
      break;
    case 'progress':
      if (message.event.kind === 'hosted_item') onHostedItem(message.event);
      else onItem(message.event);
      break;
    case 'token':
      break;
    default:
      console.warn('unknown worker message', message.type);
  }
}

// ---- Rendering -------------------------------------------------------------

let statusKey = 'statusIdle';
let statusValues = {};

function setStatus(key, values = {}) {
  statusKey = key;
  statusValues = values;
  $('status').textContent = t(key, values);
}

function showError(message) {
  state.errors.push(message);
  $('error').hidden = false;
  $('error').textContent = t('errorPrefix') + message;
}

function applyLanguage() {
  document.documentElement.lang = state.language;
  $('language').value = state.language;
  for (const element of document.querySelectorAll('[data-i18n]')) {
    element.textContent = t(element.dataset.i18n);
  }
  setStatus(statusKey, statusValues);
  renderDownloads();
  renderTables();
  renderHosted();
  renderEnergy();
  renderDataStatus();
  renderModelsStatus();
  renderDetection();
  renderSaved();
}

// Returns the bytes of the page's own scripts fetched so far, from the Resource Timing
// entries. Model and data files are left out because the engine counts them from their records.
function runtimeBytes() {
  let bytes = 0;
  for (const entry of performance.getEntriesByType('resource')) {
    const path = new URL(entry.name).pathname;
    if (path.startsWith('/models/') || path.startsWith('/data/')) continue;
    bytes += entry.encodedBodySize || entry.transferSize || 0;
  }
  return bytes;
}

// Collects what the browser reports about the device; the engine matches it to a profile.
async function deviceHints() {
  const hints = {
    platform: navigator.platform, userAgent: navigator.userAgent,
    hardwareConcurrency: navigator.hardwareConcurrency, deviceMemoryGb: navigator.deviceMemory,
  };
  try {
    const adapter = await navigator.gpu?.requestAdapter();
    if (adapter?.info) {
      hints.webgpuVendor = adapter.info.vendor;
      hints.webgpuArchitecture = adapter.info.architecture;
    }
  } catch (error) {
    console.warn('WebGPU adapter info unavailable:', error.message);
  }
  try {
    const gl = document.createElement('canvas').getContext('webgl');
    const debug = gl?.getExtension('WEBGL_debug_renderer_info');
    if (gl) {
      const parameter = debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER;
      hints.webglRenderer = gl.getParameter(parameter);
    }
  } catch (error) {
    console.warn('WebGL renderer unavailable:', error.message);
  }
  return hints;
}

async function detectDevice() {
  const options = await request('profileOptions');
  const select = $('profile');
  select.replaceChildren(select.options[0], ...options.map(({ id, label }) => {
    const option = document.createElement('option');
    option.value = id;
    option.textContent = label;
    return option;
  }));
  state.detection = await request('detectProfile', { hints: await deviceHints() });
  renderDetection();
}

function renderDetection() {
  const detection = state.detection;
  if (!detection) return;
  const label = $('profile').querySelector(`option[value="${detection.profile_id}"]`)?.textContent ?? detection.profile_id;
  $('profile-detected').textContent = t('profileDetection', { label, confidence: detection.confidence, reason: detection.reason });
}

// Fills the country picker in the page's language, keeping the current choice.
async function renderGridOptions() {
  const select = $('grid');
  const chosen = select.value;
  const options = await request('gridOptions', { language: state.language });
  const guess = select.options[0];
  select.replaceChildren(guess, ...options.map(({ code, name, gCo2ePerKwh }) => {
    const option = document.createElement('option');
    option.value = code;
    option.textContent = `${name} (${number(gCo2ePerKwh, 3)} g/kWh)`;
    return option;
  }));
  select.value = chosen;
}

function renderDownloads() {
  const container = $('downloads');
  container.replaceChildren();
  for (const [file, progress] of Object.entries(state.downloads)) {
    const row = document.createElement('div');
    row.className = 'download';
    const label = document.createElement('label');
    const bar = document.createElement('progress');
    bar.max = progress.total || 1;
    bar.value = progress.loaded;
    bar.setAttribute('aria-label', file);
    let detail;
    if (progress.cached) detail = t('fromCache');
    else if (progress.user) detail = t(progress.verified ? 'userFileVerified' : 'userFileUnchecked', { size: fixed(progress.loaded / 1e6) });
    else {
      detail = t('downloaded', {
        loaded: fixed(progress.loaded / 1e6), total: fixed(progress.total / 1e6), rate: fixed((progress.rate || 0) / 1e6),
      });
      if (progress.verified) detail += ` — ${t('verified')}`;
    }
    label.textContent = t('downloadLine', { file, detail });
    row.append(label, document.createElement('br'), bar);
    container.append(row);
  }
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderTables() {
  const gsm8k = $('gsm8k-table').tBodies[0];
  gsm8k.replaceChildren(...state.items.gsm8k.map((item) => {
    const row = document.createElement('tr');
    row.append(
      cell(item.id), cell(item.input, 'output'), cell(item.output, 'output'), cell(item.prediction ?? '—'),
      cell(item.reference), cell(item.score > 0 ? t('yes') : t('no')), cell(`${fixed(item.latency_ms / 1000)} s`),
      cell(item.decode_tokens_per_second ? fixed(item.decode_tokens_per_second) : '—'),
    );
    return row;
  }));
  const sentiment = $('sentiment-table').tBodies[0];
  sentiment.replaceChildren(...state.items.sentiment.map((item) => {
    const row = document.createElement('tr');
    row.append(
      cell(item.id), cell(item.input), cell(t(`label_${item.prediction}`)), cell(t(`label_${item.reference}`)),
      cell(item.score > 0 ? t('yes') : t('no')), cell(`${fixed(item.latency_ms, 0)} ms`),
    );
    return row;
  }));
  const story = $('story-table').tBodies[0];
  story.replaceChildren(...state.items.story.map((item) => {
    const row = document.createElement('tr');
    row.append(
      cell(item.id), cell(item.input, 'output'), cell(item.prediction ?? '—', 'output'), cell(item.reference, 'output'),
      cell(fixed(item.score, 2)), cell(fixed(item.metrics?.sentence_cosine ?? 0, 2)),
      cell(number(item.metrics?.reference_perplexity ?? 0, 3)), cell(`${fixed(item.latency_ms / 1000)} s`),
    );
    return row;
  }));
  const summary = $('code-summary-table').tBodies[0];
  summary.replaceChildren(...state.items['code-summary'].map((item) => {
    const row = document.createElement('tr');
    row.append(
      cell(item.id), cell(item.input, 'output'), cell(item.prediction ?? '—'), cell(item.reference),
      cell(fixed(item.score, 2)), cell(`${fixed(item.latency_ms / 1000)} s`),
    );
    return row;
  }));
  const humaneval = $('humaneval-table').tBodies[0];
  humaneval.replaceChildren(...state.items.humaneval.map((item) => {
    const row = document.createElement('tr');
    row.append(
      cell(item.id), cell(item.prediction ?? item.output, 'output'), cell(item.detail ?? '—'),
      cell(`${fixed(item.latency_ms / 1000)} s`),
      cell(item.decode_tokens_per_second ? fixed(item.decode_tokens_per_second) : '—'),
    );
    return row;
  }));
  const embed = $('embed-table').tBodies[0];
  embed.replaceChildren(...state.items.embed.map((item) => {
    const row = document.createElement('tr');
    row.append(
      cell(item.id), cell(item.text), cell(String(item.tokens) + (item.truncated ? ' ✂' : '')),
      cell(`${fixed(item.latency_ms, 0)} ms`), cell(item.head.map((v) => fixed(v, 3)).join(' ')),
    );
    return row;
  }));
}

// Formats a ratio as "3.20×" below 10, "42×" above and with two significant digits
// below 0.1, so that a small ratio does not read as 0.
function times(ratio) {
  if (ratio === null || ratio === undefined) return '—';
  if (ratio < 0.1) return `${number(ratio, 2)}×`;
  return `${ratio < 10 ? fixed(ratio, 2) : fixed(ratio, 0)}×`;
}

function renderHosted() {
  const body = $('hosted-table').tBodies[0];
  body.replaceChildren(...state.hostedItems.map(({ task, record: item }) => {
    const row = document.createElement('tr');
    const hosted = item.hosted ?? {};
    row.append(
      cell(t(`task_${task}`)), cell(item.id), cell(item.output, 'output'), cell(item.prediction ?? '—'),
      cell(fixed(item.score, 2)), cell(`${fixed(item.latency_ms / 1000)} s`),
      cell(hosted.ttft_ms ? `${fixed(hosted.ttft_ms, 0)} ms` : '—'),
      cell(`${item.tokens_out} (${t(`usage_${hosted.usage}`)})`),
      cell(hosted.energy_wh ? number(hosted.energy_wh.estimate, 2) : '—'),
    );
    return row;
  }));

  $('hosted-failures').replaceChildren(...state.hostedFailures.map(({ task, failure }) => {
    const li = document.createElement('li');
    li.textContent = t('hostedFailure', { task: t(`task_${task}`), id: failure.id, message: failure.message });
    return li;
  }));

  const report = state.report;
  const comparisons = report?.comparisons ?? [];
  // A score's 95 % interval is shown where the side's task covers exactly the compared items.
  const withInterval = (score, task, items) => {
    if (!task?.interval || task.items.length !== items) return fixed(score, 3);
    return `${fixed(score, 3)} [${fixed(task.interval[0], 2)}–${fixed(task.interval[1], 2)}]`;
  };
  const band = (value) => `${number(value.estimate)} (${number(value.low)}–${number(value.high)})`;
  $('comparison-table').tBodies[0].replaceChildren(...comparisons.map((c) => {
    const row = document.createElement('tr');
    const small = report.tasks.find((task) => task.task === c.task);
    const hosted = report.hosted?.tasks.find((task) => task.task === c.task);
    row.append(
      cell(t(`task_${c.task}`)), cell(withInterval(c.small_score, small, c.items_compared)),
      cell(withInterval(c.hosted_score, hosted, c.items_compared)),
      cell(band(c.small_wh_per_item)), cell(band(c.hosted_wh_per_item)),
      cell(`${times(c.energy_ratio)} (${times(c.energy_ratio_with_one_off)})`),
      cell(`${times(c.carbon_ratio)} (${times(c.carbon_ratio_with_one_off)})`),
      cell(t(`verdict_${c.judgement.verdict}`), `verdict verdict-${c.judgement.verdict}`),
      cell(ruleText(c.judgement)),
    );
    return row;
  }));
  renderHeadline(report?.headline);

  const summary = [];
  const configured = state.hostedSettings ?? report?.hosted;
  if (!configured && !report?.hosted) {
    summary.push(t('hostedNone'));
  } else {
    const model = report?.hosted?.model ?? state.hostedSettings?.model;
    const url = report?.hosted?.base_url ?? state.hostedSettings?.baseUrl;
    summary.push(t('hostedRunning', { model, url, done: state.hostedItems.length, failed: state.hostedFailures.length }));
  }
  if (report?.hosted?.stopped) summary.push(t('hostedStopped', { reason: report.hosted.stopped }));
  if (report?.cancelled) summary.push(t('hostedCancelled'));
  $('hosted-summary').textContent = summary.join(' ');
}

// The verdict's rule in the page's language, with the report's figures in points.
function ruleText(judgement) {
  const points = (value) => `${value >= 0 ? '+' : ''}${fixed(value * 100, 1)}`;
  const [low, high] = judgement.interval;
  return t(`rule_${judgement.rule}`, {
    low: points(low), high: points(high), width: fixed((high - low) * 100, 1),
    difference: points(judgement.difference), margin: fixed(judgement.margin * 100, 1),
    items: judgement.items, minimum: judgement.minimum_items,
  });
}

function renderHeadline(headline) {
  $('headline').textContent = headline
    ? t(headline.carbon_ratio ? 'headline' : 'headlineNoRatio', {
      good: headline.good_enough, of: headline.of, ratio: times(headline.carbon_ratio),
    })
    : '';
  $('headline-detail').textContent = headline
    ? t('headlineDetail', { judged: headline.judged, inconclusive: headline.inconclusive })
    : '';
}

// Judges the finished run again when the user moves the margin.
async function onMarginChange() {
  const margin = readMargin();
  if (margin === null || !state.report?.comparisons?.length) return;
  state.report = await request('rejudge', { report: state.report, margin });
  renderHosted();
}

function readMargin() {
  const points = Number($('margin').value);
  if (!Number.isFinite(points) || points < 0 || points > 100) {
    showError(t('marginInvalid', { value: $('margin').value }));
    return null;
  }
  return points / 100;
}

function renderEnergy() {
  renderCharts();
  renderTeaching();
  renderFeasibility();
  const container = $('energy');
  container.replaceChildren();
  const report = state.report;
  if (!report) return;
  const paragraph = (text) => {
    const p = document.createElement('p');
    p.textContent = text;
    container.append(p);
  };
  const runtime = report.runtime;
  paragraph(t('backendUsed', {
    backend: runtime.backend === 'webgpu' ? 'WebGPU' : 'CPU',
    adapter: runtime.adapter ? ` (${runtime.adapter})` : '',
  }));
  if (runtime.fell_back) {
    paragraph(t('backendFellBack', { reason: runtime.fell_back }));
    for (const task of report.tasks) paragraph(t('backendTask', { task: t(`task_${task.task}`), backend: task.backend }));
  }
  for (const task of report.tasks) {
    const correct = task.items.filter((item) => item.score > 0).length;
    const [low, high] = task.interval ?? [0, 1];
    paragraph(t(`score_${task.task}`, {
      correct, total: task.items.length, percent: fixed(task.score * 100, 0),
      low: fixed(low * 100, 0), high: fixed(high * 100, 0), bleu: fixed(task.extra_metrics.bleu ?? 0, 1),
      cosine: fixed(task.extra_metrics.sentence_cosine ?? 0, 2),
      perplexity: number(task.extra_metrics.reference_perplexity_geometric_mean ?? 0, 3),
    }) + (task.user_data ? t('userDataNote') : ''));
    const wh = task.energy.attributional_wh_per_item;
    paragraph(t('energyPerItem', {
      wh: number(wh.estimate), low: number(wh.low), high: number(wh.high),
      g: number(task.energy.g_co2e_per_item.estimate), grid: number(report.grid.g_co2e_per_kwh, 4),
      gridName: state.language === 'fr' ? report.grid.name_fr : report.grid.name, gridSource: report.grid.source,
    }));
    paragraph(t('energyMarginal', { wh: number(task.energy.marginal_wh.estimate / Math.max(1, task.items.length)) }));
    // The same figures as a worked calculation, so a reader can redo it by hand.
    const energy = task.energy;
    paragraph(t('energyFormula', {
      power: number(energy.power_w.estimate, 3), share: number(energy.share, 3),
      seconds: number(energy.seconds / Math.max(1, energy.items), 3),
      wh: number(energy.attributional_wh_per_item.estimate, 3), grid: number(report.grid.g_co2e_per_kwh, 4),
      g: number(energy.g_co2e_per_item.estimate, 3),
    }));
  }
  const gridName = state.language === 'fr' ? report.grid.name_fr : report.grid.name;
  paragraph(t('gridChoice', {
    name: gridName, g: number(report.grid.g_co2e_per_kwh, 4), reason: report.grid_choice.reason,
    source: report.grid.source, licence: report.grid.licence,
  }));
  if (report.grid_choice.guessed) paragraph(t('gridGuessed'));
  const oneOff = report.one_off;
  paragraph(t('oneOff', {
    wh: number(oneOff.total_wh.estimate, 3), low: number(oneOff.total_wh.low, 2), high: number(oneOff.total_wh.high, 3),
    items: oneOff.items.map((item) => item.description).join(', '), queries: oneOff.amortised_queries,
    perQuery: number(oneOff.wh_per_query.estimate), g: number(oneOff.g_co2e_per_query.estimate),
  }));
  // NOTE: the one-off items are named in English by the engine.
  if (!report.measurement.available) paragraph(t('notMeasured'));
  // NOTE: the derivation comes from the data file, which is written in English only.
  paragraph(t('energyProfile', { profile: report.profile.id, derivation: report.profile.derivation }));
  if (report.hosted) {
    const estimate = report.hosted.estimate;
    const method = report.hosted.tasks[0]?.energy.method ?? 'EcoLogits';
    paragraph(t('hostedEstimate', {
      method, provider: estimate.provider, guessed: t(estimate.provider_guessed ? 'hostedGuessed' : 'hostedGiven'),
      zone: estimate.zone, size: estimate.size_from,
    }));
    for (const c of report.comparisons) {
      paragraph(t('hostedComparison', {
        task: t(`task_${c.task}`), items: c.items_compared, small: fixed(c.small_score, 3), hosted: fixed(c.hosted_score, 3),
        energy: times(c.energy_ratio), carbon: times(c.carbon_ratio),
        energyOneOff: times(c.energy_ratio_with_one_off), carbonOneOff: times(c.carbon_ratio_with_one_off),
      }));
    }
    paragraph(t('hostedPublishedBeside'));
  } else {
    paragraph(t('hostedNote'));
  }
  for (const contrast of report.hosted_reference) {
    paragraph(t('hostedReference', {
      label: contrast.figure.label, provider: contrast.figure.provider, published: contrast.figure.published,
      wh: number(contrast.figure.wh_per_prompt), ratio: contrast.energy_ratio ? number(contrast.energy_ratio) : '—',
    }));
  }
}

// ---- Charts, teaching view and feasibility --------------------------------------

function renderCharts() {
  const report = state.report;
  const show = Boolean(report?.tasks?.length);
  $('charts-empty').hidden = show;
  $('score-figure').hidden = !show;
  $('energy-figure').hidden = !show;
  if (!show || !window.Chart) {
    clearCharts();
    return;
  }
  const options = { t, locale: state.language };
  drawScoreChart($('score-chart'), report, options);
  drawEnergyChart($('energy-chart'), report, options);
  const converted = referenceLines(report).some((line) => line.converted);
  $('score-chart').setAttribute('aria-label', t('chartScoreLabel'));
  $('energy-chart').setAttribute('aria-label', t('chartEnergyLabel'));
  $('score-caption').textContent = t('chartScoreCaption') + (converted
    ? ' ' + t('chartConverted', { grid: number(report.grid.g_co2e_per_kwh, 4) })
    : '');
  $('energy-caption').textContent = t('chartEnergyCaption');
}

// Mean and band of one figure per query over the report's tasks.
function meanBand(bands) {
  const mean = (key) => bands.reduce((sum, band) => sum + band[key], 0) / bands.length;
  return { estimate: mean('estimate'), low: mean('low'), high: mean('high') };
}

const QUERIES = 1000;

// Asks the worker for what it derives from the report: the feasibility checks and the
// everyday equivalents of 1,000 queries on each side.
async function refreshDerived() {
  const report = state.report;
  if (!report?.tasks?.length) {
    state.feasibility = null;
    state.teaching = null;
    renderTeaching();
    renderFeasibility();
    return;
  }
  const budget = Number($('latency-budget').value);
  state.feasibility = await request('feasibility', {
    report,
    limits: {
      deviceMemoryGib: navigator.deviceMemory ?? null, wasmMemoryBytes: state.wasmMemoryBytes,
      loadSeconds: state.loadSeconds, budgetSeconds: budget,
    },
  }).catch((error) => ({ error: error.message }));

  const small = meanBand(report.tasks.map((task) => task.energy.g_co2e_per_item));
  let other = null;
  if (report.comparisons?.length) {
    other = { kind: 'hosted', model: report.hosted?.model, g: meanBand(report.comparisons.map((c) => c.hosted_g_co2e_per_item)).estimate };
  } else {
    const line = referenceLines(report).find((candidate) => candidate.g > 0);
    if (line) other = { kind: 'published', ...line };
  }
  const language = state.language;
  const teaching = {
    small,
    smallEquivalents: await request('equivalents', { grams: small.estimate * QUERIES, language }),
    other,
    otherEquivalents: other ? await request('equivalents', { grams: other.g * QUERIES, language }) : [],
  };
  state.teaching = teaching;
  renderTeaching();
  renderFeasibility();
}

// Counts below 1 keep two significant digits, so 0.004 phone charges does not read as 0.
const count = (value) => new Intl.NumberFormat(state.language, {
  maximumSignificantDigits: value < 1 ? 2 : 3, maximumFractionDigits: value < 1 ? 4 : 1,
}).format(value);

// Appends a paragraph of `text` to `container` and returns it.
function appendParagraph(container, text, className) {
  const p = document.createElement('p');
  p.textContent = text;
  if (className) p.className = className;
  container.append(p);
  return p;
}

function renderTeaching() {
  const container = $('teaching');
  container.replaceChildren();
  const report = state.report;
  const teaching = state.teaching;
  if (!report || !teaching) {
    const p = document.createElement('p');
    p.textContent = t('teachingEmpty');
    container.append(p);
    return;
  }
  const paragraph = (text, className) => appendParagraph(container, text, className);
  const list = (equivalents) => {
    const ul = document.createElement('ul');
    for (const item of equivalents) {
      const li = document.createElement('li');
      li.append(`${count(item.count)} ${item.unit} `);
      const source = document.createElement('a');
      source.href = item.source_url;
      source.rel = 'noreferrer';
      source.textContent = t(item.published ? 'teachingSource' : 'teachingSourceRead', {
        source: item.source.split(',')[0], date: item.published || item.retrieved,
      });
      li.append('(', source, ')');
      ul.append(li);
    }
    container.append(ul);
  };
  const small = teaching.small;
  paragraph(t('teachingSmall', {
    tasks: report.tasks.length, g: number(small.estimate), low: number(small.low), high: number(small.high),
    queries: count(QUERIES), total: number(small.estimate * QUERIES),
  }));
  list(teaching.smallEquivalents);
  const other = teaching.other;
  if (other?.kind === 'hosted') {
    paragraph(t('teachingHosted', {
      model: other.model, queries: count(QUERIES), total: number(other.g * QUERIES), ratio: times(other.g / small.estimate),
    }));
    list(teaching.otherEquivalents);
  } else if (other) {
    paragraph(t('teachingPublished', {
      label: other.label, provider: other.provider, published: other.published, queries: count(QUERIES),
      total: number(other.g * QUERIES), ratio: times(other.g / small.estimate),
    }));
    list(teaching.otherEquivalents);
  }

  const heading = document.createElement('h3');
  heading.textContent = t('uncertaintyHeading');
  container.append(heading);
  const profile = report.profile;
  paragraph(t('uncertaintyEnergy', {
    profile: profile.label, low: number(profile.active_w_low, 3), high: number(profile.active_w_high, 3),
  }));
  const example = report.tasks.find((task) => task.interval);
  if (example) {
    const [low, high] = example.interval;
    paragraph(t('uncertaintyScore', {
      task: t(`task_${example.task}`), items: example.items.length, percent: fixed(example.score * 100, 0),
      low: fixed(low * 100, 0), high: fixed(high * 100, 0),
    }));
  }
  paragraph(t('uncertaintyVerdict', { margin: fixed((readMargin() ?? 0.05) * 100, 1) }));
  paragraph(t('uncertaintyEquivalents'));
}

const gib = (bytes) => `${number(bytes / 2 ** 30, 3)} ${state.language === 'fr' ? 'Gio' : 'GiB'}`;
const mib = (bytes) => `${number(bytes / 2 ** 20, 3)} ${state.language === 'fr' ? 'Mio' : 'MiB'}`;

function reasonText(reason) {
  switch (reason.code) {
    case 'over_wasm_limit':
      return t('reasonWasm', { needed: mib(reason.needed_bytes), limit: gib(reason.limit_bytes) });
    case 'over_device_share':
      return t('reasonDevice', { needed: mib(reason.needed_bytes), share: mib(reason.share_bytes), device: gib(reason.device_bytes) });
    case 'over_budget':
      return t('reasonBudget', { task: t(`task_${reason.task}`), p95: fixed(reason.p95_seconds, 2), budget: fixed(reason.budget_seconds, 1) });
    case 'device_memory_unknown':
      return t('reasonMemoryUnknown');
    case 'no_items':
      return t('reasonNoItems');
    default:
      return reason.code;
  }
}

function renderFeasibility() {
  const container = $('feasibility');
  container.replaceChildren();
  const result = state.feasibility;
  const paragraph = (text, className) => appendParagraph(container, text, className);
  if (!state.report || !result) {
    paragraph(t('feasibilityEmpty'));
    return;
  }
  if (result.error) {
    paragraph(result.error, 'not-feasible');
    return;
  }
  const failures = result.reasons.filter((reason) => reason.code !== 'device_memory_unknown');
  const verdict = paragraph(result.feasible ? t('feasibleYes') : t('feasibleNo'), result.feasible ? 'feasible' : 'not-feasible');
  verdict.id = 'feasibility-verdict';
  if (failures.length) {
    const ul = document.createElement('ul');
    for (const reason of failures) {
      const li = document.createElement('li');
      li.textContent = reasonText(reason);
      ul.append(li);
    }
    container.append(ul);
  }
  const memory = result.memory;
  paragraph(t(memory.measured ? 'memoryMeasured' : 'memoryFromFiles', {
    needed: mib(memory.needed_bytes), limit: gib(memory.wasm_limit_bytes),
  }) + ' ' + (memory.device_bytes
    ? t('memoryDevice', { device: gib(memory.device_bytes), share: mib(memory.device_share_bytes) })
    : t('reasonMemoryUnknown')));
  if (result.load_seconds != null) paragraph(t('loadTime', { seconds: fixed(result.load_seconds, 2) }));

  const table = document.createElement('table');
  table.id = 'feasibility-table';
  const head = table.createTHead().insertRow();
  for (const key of ['colTask', 'colMedian', 'colP95', 'colWithinBudget', 'colTokensPerSecond', 'colBattery']) {
    const th = document.createElement('th');
    th.textContent = t(key);
    head.append(th);
  }
  const body = table.createTBody();
  for (const task of result.tasks) {
    const row = body.insertRow();
    const battery = task.battery_pct_per_1000;
    row.append(
      cell(t(`task_${task.task}`)), cell(`${fixed(task.median_seconds, 2)} s`), cell(`${fixed(task.p95_seconds, 2)} s`),
      cell(task.within_budget ? t('yes') : t('no'), task.within_budget ? 'feasible' : 'not-feasible'),
      cell(task.tokens_per_second == null ? '—' : fixed(task.tokens_per_second, 1)),
      cell(battery ? `${number(battery.estimate)} % (${number(battery.low)}–${number(battery.high)})` : t('batteryNone')),
    );
  }
  const scroll = document.createElement('div');
  scroll.className = 'scroll';
  scroll.append(table);
  container.append(scroll);
}

// A picture of the headline, each task's figures and the score chart, to share.
async function exportPicture() {
  const report = state.report;
  if (!report) return;
  const lines = report.tasks.map((task) => {
    const comparison = report.comparisons?.find((c) => c.task === task.task);
    return t(comparison ? 'pictureTaskHosted' : 'pictureTask', {
      task: t(`task_${task.task}`), score: fixed(task.score, 2), g: number(task.energy.g_co2e_per_item.estimate),
      hostedScore: comparison ? fixed(comparison.hosted_score, 2) : '',
      hostedG: comparison ? number(comparison.hosted_g_co2e_per_item.estimate) : '',
      verdict: comparison ? t(`verdict_${comparison.judgement.verdict}`) : '',
    });
  });
  const date = new Intl.DateTimeFormat(state.language, { dateStyle: 'medium' }).format(report.created_unix_ms);
  const blob = await summaryPicture({
    title: 'Seedling',
    headline: $('headline').textContent || t('pictureNoHosted'),
    lines,
    footer: t('pictureFooter', {
      date, profile: report.profile.label, backend: report.runtime.backend,
      grid: state.language === 'fr' ? report.grid.name_fr : report.grid.name,
    }),
    chartCanvas: $('score-chart'),
  });
  download(`seedling-${stamp()}.png`, 'image/png', blob);
}

function onHostedItem(event) {
  if (event.failure) state.hostedFailures.push({ task: event.task, failure: event.failure });
  if (event.record) state.hostedItems.push({ task: event.task, record: event.record });
  setStatus('statusHosted', { task: t(`task_${event.task}`), done: event.done, total: event.total });
  renderHosted();
  persistSoon();
}

let runStarted = 0;
function onItem(event) {
  state.items[event.task].push(event.record);
  const progress = $(`${event.task}-progress`);
  progress.max = event.total;
  progress.value = event.done;
  const elapsed = (performance.now() - runStarted) / 1000;
  const left = (elapsed / event.done) * (event.total - event.done);
  setStatus('statusRunning', { task: t(`task_${event.task}`), done: event.done, total: event.total, left: duration(left) });
  renderTables();
  persistSoon();
}

// ---- Keeping, exporting and comparing results ----------------------------------

let saving = Promise.resolve();
let queuedSave = null;

// Saves the running run at most once a second: each save writes every item so far.
function persistSoon() {
  if (queuedSave !== null) return;
  queuedSave = setTimeout(() => {
    queuedSave = null;
    persist('running');
  }, 1000);
}

// Writes a queued save now; resolves once every save has finished.
function flushSaves() {
  if (queuedSave !== null) {
    clearTimeout(queuedSave);
    queuedSave = null;
    persist('running');
  }
  return saving;
}

// Saves the run so far: its finished items while it runs, then its report. Saves are
// chained so the newest is written last; a failure warns and the run goes on.
function persist(status) {
  // A queued save of the running state must not overwrite the finished one.
  if (status !== 'running' && queuedSave !== null) {
    clearTimeout(queuedSave);
    queuedSave = null;
  }
  const record = {
    status, startedAt: state.runStartedAt, savedAt: Date.now(), items: state.items,
    hostedItems: state.hostedItems, hostedFailures: state.hostedFailures,
    report: state.report, emissionsCsv: state.emissionsCsv ?? null, loadSeconds: state.loadSeconds,
    wasmMemoryBytes: state.wasmMemoryBytes,
  };
  saving = saving
    .then(() => saveLatest(record))
    .then(() => { state.saved = { status, startedAt: record.startedAt }; state.storageProblem = null; })
    .catch((error) => {
      state.storageProblem = error?.name === 'QuotaExceededError'
        ? { key: 'storageFull' }
        : { key: 'storageFailed', detail: error?.message ?? String(error) };
    })
    .finally(renderSaved);
  return saving;
}

async function restore() {
  let record;
  try {
    record = await loadLatest();
  } catch (error) {
    state.storageProblem = { key: 'storageFailed', detail: error?.message ?? String(error) };
  }
  if (record) {
    state.items = { ...emptyItems(), ...record.items };
    state.hostedItems = record.hostedItems ?? [];
    state.hostedFailures = record.hostedFailures ?? [];
    state.report = record.report ?? null;
    state.emissionsCsv = record.emissionsCsv ?? null;
    state.loadSeconds = record.loadSeconds ?? [];
    state.wasmMemoryBytes = record.wasmMemoryBytes ?? null;
    state.runStartedAt = record.startedAt;
    state.saved = { status: record.status, startedAt: record.startedAt };
    renderTables();
    renderHosted();
    renderEnergy();
  }
  renderSaved();
}

function renderSaved() {
  const saved = state.saved;
  const when = saved?.startedAt
    ? new Intl.DateTimeFormat(state.language, { dateStyle: 'medium', timeStyle: 'short' }).format(saved.startedAt)
    : '';
  const finished = Object.values(state.items).reduce((sum, items) => sum + items.length, 0);
  let text = t('savedNone');
  if (state.storageProblem) text = t(state.storageProblem.key, state.storageProblem);
  else if (saved?.status === 'done') text = t('savedDone', { time: when });
  else if (saved?.status === 'running' && !state.running) text = t('savedPartial', { time: when, items: finished });
  else if (saved?.status === 'running') text = '';
  $('saved-status').textContent = text;
  $('export-json').disabled = !state.report;
  $('export-csv').disabled = !state.emissionsCsv;
  $('export-png').disabled = !state.report;
  renderSideBySide();
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

const stamp = () => new Date(state.report?.created_unix_ms ?? Date.now()).toISOString().slice(0, 19).replace(/:/g, '-');

// Reads a report another device exported and shows it beside this one's.
async function importReport(file) {
  let other;
  try {
    other = JSON.parse(await file.text());
  } catch (error) {
    throw new Error(t('importInvalid', { file: file.name, reason: error.message }));
  }
  if (typeof other?.schema !== 'string' || !other.schema.startsWith('seedling-report/') || !Array.isArray(other.tasks)) {
    throw new Error(t('importInvalid', { file: file.name, reason: `schema ${JSON.stringify(other?.schema ?? null)}` }));
  }
  state.other = { file: file.name, report: other };
  renderSideBySide();
}

function renderSideBySide() {
  const table = $('side-by-side');
  const other = state.other;
  if (!other || !state.report) {
    table.hidden = true;
    $('side-by-side-devices').textContent = other ? t('importNeedsRun', { file: other.file }) : '';
    return;
  }

  const device = (report) => t('deviceLine', {
    profile: report.profile?.label ?? report.profile?.id ?? '—',
    backend: report.runtime?.backend ?? '—',
    date: new Intl.DateTimeFormat(state.language, { dateStyle: 'medium', timeStyle: 'short' }).format(report.created_unix_ms ?? 0),
  });
  $('side-by-side-devices').textContent = t('sideBySide', {
    this: device(state.report), other: device(other.report), file: other.file,
  });

  const names = [...new Set([...state.report.tasks, ...other.report.tasks].map((task) => task.task))];
  const find = (report, name) => report.tasks.find((task) => task.task === name);
  const score = (task) => (task ? fixed(task.score, 3) : '—');
  const seconds = (task) => (task && task.items.length ? fixed(task.seconds / task.items.length, 2) : '—');
  const carbon = (task) => (task ? number(task.energy.g_co2e_per_item.estimate) : '—');
  const verdict = (report, name) => {
    const judgement = report.comparisons?.find((c) => c.task === name)?.judgement;
    return judgement ? t(`verdict_${judgement.verdict}`) : '—';
  };
  table.tBodies[0].replaceChildren(...names.map((name) => {
    const local = find(state.report, name);
    const imported = find(other.report, name);
    const row = document.createElement('tr');
    row.append(cell(t(`task_${name}`)), cell(score(local)), cell(score(imported)), cell(seconds(local)),
      cell(seconds(imported)), cell(carbon(local)), cell(carbon(imported)),
      cell(verdict(state.report, name)), cell(verdict(other.report, name)));
    return row;
  }));
  table.hidden = false;
}

// ---- Running -----------------------------------------------------------------

// The models a run of `tasks` loads. With a hosted model, SmolLM2's tokenizer counts
// the tokens of replies that come without usage.
function modelsFor(tasks, hosted) {
  const models = [];
  const chat = ['story', 'gsm8k', 'code-summary', 'humaneval'];
  if (tasks.some((task) => chat.includes(task)) || hosted) models.push('llm');
  if (tasks.some((task) => ['story', 'sentiment', 'embed'].includes(task))) models.push('encoder');
  if (tasks.includes('sentiment')) models.push('head');
  return models;
}

const megabytes = (bytes) => `${number(bytes / 1e6, 3)} ${state.language === 'fr' ? 'Mo' : 'MB'}`;

// Says, before the run, how much the selected tasks would download, and how much the
// browser's cache holds.
async function renderCacheStatus() {
  const { tasks } = readSettings();
  const hosted = Boolean($('hosted-url').value.trim());
  try {
    const status = await request('cacheStatus', { models: modelsFor(tasks, hosted) });
    state.cache = status;
  } catch (error) {
    state.cache = { failed: error.message };
  }
  const cache = state.cache;
  $('download-warning').textContent = cache.pending > 0 ? t('downloadWarning', { size: megabytes(cache.pending) }) : '';
  $('cache-status').textContent = cache.failed
    ? t('cacheUnavailable', { reason: cache.failed })
    : t('cacheHolds', { size: megabytes(cache.cached ?? 0) });
  $('clear-cache').disabled = !(cache.cached > 0);
}

async function clearCache() {
  await request('clearCache');
  await renderCacheStatus();
  $('cache-status').textContent += ` ${t('cacheCleared')}`;
}

const defaultTasks = () => TASKS.filter((task) => !NEEDS_USER_DATA.includes(task) || state.userData[task]);

// Reads the hosted-LLM settings; `undefined` when no base URL is given.
function readHosted(maxNewTokens) {
  const baseUrl = $('hosted-url').value.trim();
  if (!baseUrl) return undefined;
  const model = $('hosted-model').value.trim();
  if (!model) throw new Error(t('hostedModelMissing'));
  const settings = {
    baseUrl, model, apiKey: $('hosted-key').value.trim(),
    stream: $('hosted-stream').checked,
    maxTokens: Number($('hosted-max-tokens').value) || maxNewTokens,
    concurrency: Math.max(1, Number($('hosted-concurrency').value) || 2),
    timeoutMs: Math.round(Math.max(0.1, Number($('hosted-timeout').value) || 60) * 1000),
  };
  if ($('hosted-provider').value) settings.provider = $('hosted-provider').value;
  if ($('hosted-zone').value.trim()) settings.zone = $('hosted-zone').value.trim().toUpperCase();
  const size = $('hosted-size').value.trim();
  if (size) settings.size = parseSize(size);
  return settings;
}

// Reads "8", "47:13" or "provider/model" into the engine's size hint.
function parseSize(text) {
  if (text.includes('/')) {
    const [provider, ...rest] = text.split('/');
    return { kind: 'like', provider, model: rest.join('/') };
  }
  const [total, active] = text.split(':').map(Number);
  if (!Number.isFinite(total) || (active !== undefined && !Number.isFinite(active))) {
    throw new Error(t('hostedSizeInvalid', { value: text }));
  }
  return active === undefined ? { kind: 'parameters', total } : { kind: 'parameters', total, active };
}

// Keeps the API key in session storage only when the user ticks the box.
const KEY_STORAGE = 'seedling.hostedKey';
function rememberKey() {
  try {
    if ($('hosted-remember').checked && $('hosted-key').value) sessionStorage.setItem(KEY_STORAGE, $('hosted-key').value);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage can be unavailable (private mode, sandboxed frames); the key then stays in memory.
  }
}

let currentRun = null;

function run(options = {}) {
  currentRun = runOnce(options);
  return currentRun;
}

async function runOnce({ tasks = defaultTasks(), limit, maxNewTokens, seed = 2026, hosted } = {}) {
  if (state.running) throw new Error('a run is already in progress');
  state.running = true;
  $('run').disabled = true;
  $('cancel').disabled = false;
  $('error').hidden = true;
  state.items = emptyItems();
  state.hostedItems = [];
  state.hostedFailures = [];
  state.report = null;
  state.emissionsCsv = null;
  state.feasibility = null;
  state.teaching = null;
  state.wasmMemoryBytes = null;
  state.runStartedAt = Date.now();
  renderTables();
  renderHosted();
  renderEnergy();
  renderSaved();
  try {
    state.hostedSettings = hosted === undefined ? readHosted(maxNewTokens) : hosted ?? undefined;
    renderHosted();
    setStatus('statusDownloading');
    const custom = await readUserModels();
    const loaded = await request('load', { models: modelsFor(tasks, Boolean(state.hostedSettings)), custom });
    state.loadSeconds = loaded.loadSeconds ?? [];
    renderCacheStatus();
    runStarted = performance.now();
    const threads = navigator.hardwareConcurrency || 1;
    const amortised = Math.max(1, Number($('amortise').value) || 1000);
    const settings = {
      limit, seed, max_new_tokens: maxNewTokens, threads_used: 1, device_threads: threads,
      amortised_queries: amortised, runtime_download_bytes: runtimeBytes(),
      verdict_margin: readMargin() ?? 0.05,
    };
    const grid = {
      code: $('grid').value || undefined,
      locale: navigator.language,
      timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    };
    const profile = $('profile').value || state.detection?.profile_id;
    // Fault injection for tests: ?loseGpuAfterItems=N destroys the GPU device after N items.
    const loseGpuAfterItems = Number(new URLSearchParams(location.search).get('loseGpuAfterItems')) || undefined;
    const outcome = await request('run', {
      tasks, settings, userAgent: navigator.userAgent, grid, profile, hosted: state.hostedSettings,
      loseGpuAfterItems,
    });
    state.report = outcome.report;
    state.emissionsCsv = outcome.emissionsCsv;
    state.wasmMemoryBytes = await request('memory');
    await persist('done');
    await refreshDerived();
    if (state.report.cancelled) setStatus('statusCancelled');
    else setStatus('statusDone', { seconds: fixed((performance.now() - runStarted) / 1000) });
    renderHosted();
    renderEnergy();
    return state.report;
  } catch (error) {
    if (error.message === CANCELLED) return null;
    setStatus('statusFailed');
    showError(error.message);
    throw error;
  } finally {
    state.running = false;
    $('run').disabled = false;
    $('cancel').disabled = true;
  }
}

// ---- The user's own models ------------------------------------------------------

// A wasm32 memory addresses at most 4 GiB; the model's bytes are copied once into the engine
// and expanded into tensors there, so a file above about 1.5 GB cannot load.
const MODEL_LIMIT_BYTES = 1.5e9;

function sizeGuard(name, bytes) {
  if (bytes > MODEL_LIMIT_BYTES) {
    throw new Error(t('modelTooLarge', { file: name, size: fixed(bytes / 1e6, 0), limit: fixed(MODEL_LIMIT_BYTES / 1e6, 0) }));
  }
}

// Reads what the user chose in "Models": a local file wins over a URL; nothing means the default.
async function readUserModels() {
  const custom = {};
  const sha256 = $('llm-sha256').value.trim();
  if (sha256 && !/^[0-9a-fA-F]{64}$/.test(sha256)) throw new Error(t('llmShaInvalid', { value: sha256 }));
  const [llmFile] = $('llm-file').files;
  if (llmFile) {
    sizeGuard(llmFile.name, llmFile.size);
    custom.llm = { name: llmFile.name, bytes: new Uint8Array(await llmFile.arrayBuffer()), sha256: sha256 || undefined };
  } else if ($('llm-url').value.trim()) {
    custom.llm = { url: new URL($('llm-url').value.trim(), location.href).href, sha256: sha256 || undefined };
  }
  const encoderFiles = [...$('encoder-files').files];
  if (encoderFiles.length) {
    for (const file of encoderFiles) sizeGuard(file.name, file.size);
    custom.encoder = {
      name: encoderFiles.find((file) => file.webkitRelativePath)?.webkitRelativePath.split('/')[0] ?? 'user encoder',
      files: await Promise.all(encoderFiles.map(async (file) => ({ name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) }))),
    };
  } else if ($('encoder-url').value.trim()) {
    custom.encoder = { url: new URL($('encoder-url').value.trim(), location.href).href };
  }
  return custom;
}

function renderModelsStatus() {
  const [llmFile] = $('llm-file').files;
  const llm = llmFile?.name ?? ($('llm-url').value.trim() || t('modelsDefaultName'));
  const encoderFiles = $('encoder-files').files;
  const encoder = encoderFiles.length
    ? [...encoderFiles].map((file) => file.name).join(', ')
    : ($('encoder-url').value.trim() || t('modelsDefaultName'));
  $('models-status').textContent = t('modelsUsing', { llm, encoder });
}

function useDefaultModels() {
  for (const id of ['llm-url', 'llm-file', 'llm-sha256', 'encoder-url', 'encoder-files']) $(id).value = '';
  renderModelsStatus();
}

// Hands a user's JSONL file to the worker; it replaces the task's default data.
async function useData(task, name, bytes) {
  await request('useData', { task, name, bytes });
  state.userData[task] = { name, bytes };
  const box = document.querySelector(`input[name=task][value="${task}"]`);
  if (box) box.checked = true;
  renderDataStatus();
}

async function useDefaultData(task) {
  await request('useDefaultData', { task });
  delete state.userData[task];
  renderDataStatus();
}

function renderDataStatus() {
  const task = $('data-task').value;
  const file = state.userData[task];
  $('data-status').textContent = file
    ? t('userDataInUse', { task: t(`task_${task}`), file: file.name })
    : t('userDataDefaultInUse', { task: t(`task_${task}`) });
}

// Asks the engine to stop at its next item or streamed chunk, so that its report keeps
// what finished. A worker busy in a long computation cannot read that message. After a
// short wait it is terminated and replaced, and the items already shown stay on screen.
async function cancel() {
  if (state.running && currentRun) {
    request('cancel').catch(() => {});
    const stopped = await Promise.race([
      currentRun.then(() => true, () => true),
      new Promise((resolve) => setTimeout(() => resolve(false), 1500)),
    ]);
    if (stopped) return;
  }
  setStatus('statusCancelled');
  await restartWorker();
}

function readSettings() {
  const tasks = [...document.querySelectorAll('input[name=task]:checked')].map((box) => box.value);
  return {
    tasks,
    limit: Math.max(1, Number($('limit').value) || 1),
    maxNewTokens: Math.max(1, Number($('max-new-tokens').value) || 1),
  };
}

async function main() {
  applyLanguage();
  $('language').addEventListener('change', (event) => {
    state.language = event.target.value;
    applyLanguage();
    refreshDerived().catch((error) => showError(error.message));
    renderBackend();
    renderCacheStatus();
    renderGridOptions().catch((error) => showError(error.message));
  });
  $('run').addEventListener('click', () => run(readSettings()).catch(() => {}));
  $('cancel').addEventListener('click', () => cancel());
  $('export-json').addEventListener('click', () =>
    download(`seedling-${stamp()}.json`, 'application/json', JSON.stringify(state.report, null, 2)));
  $('export-csv').addEventListener('click', () =>
    download(`seedling-emissions-${stamp()}.csv`, 'text/csv', state.emissionsCsv));
  $('clear-results').addEventListener('click', () => clearLatest()
    .then(() => { state.saved = null; state.storageProblem = null; renderSaved(); })
    .catch((error) => showError(error.message)));
  $('import-file').addEventListener('change', (event) => {
    const [file] = event.target.files;
    if (file) importReport(file).catch((error) => showError(error.message));
  });
  $('clear-cache').addEventListener('click', () => clearCache().catch((error) => showError(error.message)));
  for (const box of document.querySelectorAll('input[name=task]')) {
    box.addEventListener('change', () => renderCacheStatus());
  }
  $('hosted-url').addEventListener('change', () => renderCacheStatus());
  $('margin').addEventListener('change', () => onMarginChange().catch((error) => showError(error.message)));
  $('latency-budget').addEventListener('change', () => refreshDerived().catch((error) => showError(error.message)));
  $('export-png').addEventListener('click', () => exportPicture().catch((error) => showError(error.message)));
  try {
    const savedKey = sessionStorage.getItem(KEY_STORAGE);
    if (savedKey) {
      $('hosted-key').value = savedKey;
      $('hosted-remember').checked = true;
    }
  } catch {
    // No session storage here: the key field starts empty.
  }
  $('hosted-key').addEventListener('input', rememberKey);
  $('hosted-remember').addEventListener('change', rememberKey);
  $('data-task').addEventListener('change', renderDataStatus);
  $('backend').addEventListener('change', () => restartWorker().catch((error) => showError(error.message)));
  $('data-file').addEventListener('change', async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      await useData($('data-task').value, file.name, new Uint8Array(await file.arrayBuffer()));
    } catch (error) {
      showError(error.message);
    }
    event.target.value = '';
  });
  $('data-default').addEventListener('click', () => useDefaultData($('data-task').value).catch((error) => showError(error.message)));
  for (const id of ['llm-url', 'llm-file', 'encoder-url', 'encoder-files']) $(id).addEventListener('change', renderModelsStatus);
  $('models-default').addEventListener('click', useDefaultModels);

  if (['auto', 'webgpu', 'cpu'].includes(params.get('backend'))) $('backend').value = params.get('backend');
  await restore();
  setStatus('statusLoadingEngine');
  await startWorker();
  await refreshDerived().catch((error) => showError(error.message));
  await renderGridOptions();
  await detectDevice();
  await renderCacheStatus();
  setStatus('statusIdle');

  // The automation surface used by the browser tests and `./build.sh eval`.
  window.seedling = {
    state,
    run,
    cancel,
    load: (models) => request('load', { models }),
    embed: (texts) => request('embed', { texts }),
    generate: (req) => request('generate', { request: req }),
    tokenize: (prompt) => request('tokenize', { prompt }),
    teacherForced: (ids) => request('teacherForced', { ids }),
    checkGpuKernels: (iterations) => request('checkGpuKernels', { iterations }),
    useData,
    useDefaultData,
    // Resolves once the latest save to IndexedDB has finished.
    saved: flushSaves,
  };

  if (params.get('autorun')) {
    const tasks = params.get('tasks') ? params.get('tasks').split(',') : defaultTasks();
    $('limit').value = params.get('limit') || $('limit').value;
    $('max-new-tokens').value = params.get('maxNewTokens') || $('max-new-tokens').value;
    run({ ...readSettings(), tasks }).catch(() => {});
  }
}

window.seedlingReady = main().catch((error) => showError(error.message));
