// Summary statistics of the benchmark runs and the Markdown tables of BENCHMARKS.md.
import { readFileSync, writeFileSync } from 'node:fs';

// Returns the median, minimum and maximum of `values`. The median of an even count is
// the mean of the two middle values.
export function summarize(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length, values };
}

const MIB = 1024 * 1024;

function formatNumber(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return 'n/a';
  if (unit === 'ms') return value >= 100 ? value.toFixed(0) : value.toFixed(1);
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function formatStats(stats, unit) {
  if (!stats) return 'n/a';
  return `${formatNumber(stats.median, unit)} (${formatNumber(stats.min, unit)}–${formatNumber(stats.max, unit)})`;
}

function formatRatio(ratio) {
  return ratio === null || ratio === undefined ? 'n/a' : `${ratio.toFixed(2)}×`;
}

function formatMib(bytes) {
  return bytes ? (bytes / MIB).toFixed(0) : 'n/a';
}

function comparisonTable(rows) {
  const lines = [
    '| workload | unit | Seedling | median (min–max) | peer | median (min–max) | Seedling / peer |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    lines.push(`| ${row.workload} | ${row.unit} | ${row.seedling.name} | ${formatStats(row.seedling.stats, row.unit)} | ${row.peer.name} | ${formatStats(row.peer.stats, row.unit)} | ${formatRatio(row.ratio)} |`);
  }
  return lines.join('\n');
}

function memoryTable(rows) {
  const lines = [
    '| engine | workload | wasm heap (MiB) | renderer peak RSS (MiB) | GPU process peak RSS (MiB) | browser, sum of process peaks (MiB) | native process peak RSS (MiB) |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    lines.push(`| ${row.engine} | ${row.workload} | ${formatMib(row.wasmHeapBytes)} | ${formatMib(row.rendererPeakRssBytes)} | ${formatMib(row.gpuProcessPeakRssBytes)} | ${formatMib(row.sumOfPeakRssBytes)} | ${formatMib(row.processPeakRssBytes)} |`);
  }
  return lines.join('\n');
}

function wasmNativeTable(rows) {
  const lines = ['| workload | wasm | native | wasm / native |', '|---|---|---|---|'];
  for (const row of rows) {
    lines.push(`| ${row.workload} (${row.unit}) | ${formatNumber(row.wasm, row.unit)} | ${formatNumber(row.native, row.unit)} | ${formatRatio(row.ratio)} |`);
  }
  return lines.join('\n');
}

function checkTable(checks) {
  const lines = ['| check | workload | value |', '|---|---|---|'];
  for (const check of checks) {
    const value = check.of === undefined ? check.value.toFixed(5) : `${check.value} of ${check.of}`;
    lines.push(`| ${check.check} | ${check.workload} | ${value} |`);
  }
  return lines.join('\n');
}

function targetTable(targets) {
  const lines = ['| target | measured | goal | met |', '|---|---|---|---|'];
  for (const target of targets) {
    let met = 'n/a';
    if (target.met !== null) met = target.met ? 'yes' : 'no';
    lines.push(`| ${target.name} | ${target.value === null ? 'n/a' : target.value.toFixed(2)} | ${target.goal} | ${met} |`);
  }
  return lines.join('\n');
}

// Formats a version entry: a string as is, an ONNX build record in words.
function formatVersion(version) {
  if (version === null || typeof version !== 'object') return String(version);
  const file = `${version.dtype} ONNX \`${version.file}\` (SHA-256 ${version.sha256})`;
  if (version.package) return `${file} from PyPI \`${version.package}\``;
  return `${file}, built by ${version.builder} with onnx ${version.onnx_version} from \`${version.built_from.file}\`; lowest cosine to sentence-transformers' embeddings on the fixture sentences: ${version.fixture_min_cosine}`;
}

// Renders the generated part of BENCHMARKS.md: machine, versions and tables of one run.
export function renderMarkdown(results) {
  const { machine, versions } = results;
  const groups = [
    ['MiniLM embeddings in the browser (latency per batch, lower is better)', 'minilm'],
    ['SmolLM2 in the browser (tokens per second, higher is better)', 'smollm2'],
    ['Native CPU (tokens per second or latency)', 'native'],
    ['WebGPU against the CPU path', 'webgpu'],
  ];
  const software = results.comparisons.some((row) => row.group === 'webgpu' && row.seedling.name.includes('software rendering'));

  const sections = [
    `Measured ${results.startedAt} with \`${results.command}\`, ${results.method.runs} timed runs after ${results.method.warmup} warm-up run(s) per figure; each cell is the median (min–max).`,
    '',
    '### Machine',
    '',
    `- CPU: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGib} GiB memory; ${machine.os}, Linux ${machine.kernel}`,
    `- Load average (1 min): ${machine.loadAverage.start.toFixed(2)} at the start, ${machine.loadAverage.end.toFixed(2)} at the end, ${machine.loadAverage.median.toFixed(2)} median over the runs (range ${machine.loadAverage.min.toFixed(2)}–${machine.loadAverage.max.toFixed(2)})`,
    `- Browser: ${versions.chromium}, headless, cross-origin isolated: ${machine.crossOriginIsolated}`,
    '',
    '### Versions',
    '',
    ...Object.entries(versions).map(([name, version]) => `- ${name}: ${formatVersion(version)}`),
  ];

  for (const [title, group] of groups) {
    const rows = results.comparisons.filter((row) => row.group === group);
    if (!rows.length) continue;
    const note = group === 'webgpu' && software ? ' (software rendering: the adapters emulate a GPU on the CPU)' : '';
    sections.push('', `### ${title}${note}`, '', comparisonTable(rows));
  }

  if (results.wasmNative.length) sections.push('', '### Seedling in wasm against Seedling native (1 thread each)', '', wasmNativeTable(results.wasmNative));
  if (results.memory.length) sections.push('', '### Peak memory', '', memoryTable(results.memory));
  if (results.checks.length) sections.push('', '### Same work on both sides', '', checkTable(results.checks));
  if (results.targets.length) sections.push('', '### Targets (informational, not a gate)', '', targetTable(results.targets));

  const problems = results.problems.foreignRequests.length + results.problems.pageErrors.length;
  sections.push('', `Requests to hosts other than 127.0.0.1: ${results.problems.foreignRequests.length}; page errors: ${results.problems.pageErrors.length}.${problems ? ' See the JSON file.' : ''}`);
  return sections.join('\n');
}

export const START_MARKER = '<!-- bench:results:start (written by bench/run.mjs) -->';
export const END_MARKER = '<!-- bench:results:end -->';

// Replaces the generated part of `path` (between the markers) with `results`' tables.
export function updateMarkdownFile(path, results) {
  const text = readFileSync(path, 'utf8');
  const start = text.indexOf(START_MARKER);
  const end = text.indexOf(END_MARKER);
  if (start < 0 || end < start) {
    throw new Error(`${path} has no "${START_MARKER}" … "${END_MARKER}" section to replace`);
  }
  const updated = `${text.slice(0, start + START_MARKER.length)}\n${renderMarkdown(results)}\n${text.slice(end)}`;
  writeFileSync(path, updated);
}
