// The benchmark harness (bench/run.mjs, `./build.sh bench`) through one short iteration
// of every part: each engine loads, runs the same workload as its peer, and reports
// figures, memory and the load of the machine. Speed itself is not checked.
// It needs what ./build.sh test prepares: the native CLI, www/pkg, llama-cpp-python in
// .cache/venv-llama, lavapipe, and the int8 MiniLM ONNX from bench/build_minilm_onnx.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBenchmarks } from '../../bench/run.mjs';
import { renderMarkdown } from '../../bench/report.mjs';

const GROUPS = ['minilm', 'smollm2', 'native', 'webgpu'];

test('benchmark harness quick run', { timeout: 300_000 }, async () => {
  const results = await runBenchmarks({ quick: true, silent: true, command: 'node --test tests/browser/bench.test.mjs' });

  assert.deepEqual(results.failures, [], 'no benchmark group failed');
  assert.deepEqual(results.problems.foreignRequests, [], 'every request went to 127.0.0.1');
  assert.deepEqual(results.problems.pageErrors, [], 'no uncaught error in the pages');

  const groups = new Set(results.comparisons.map((row) => row.group));
  for (const group of GROUPS) assert.ok(groups.has(group), `no ${group} figures`);
  for (const row of results.comparisons) {
    for (const side of [row.seedling, row.peer]) {
      assert.equal(side.stats.n, 1, `${row.workload}, ${side.name}: one timed run`);
      assert.ok(Number.isFinite(side.stats.median), `${row.workload}, ${side.name}: median ${side.stats.median}`);
      assert.ok(side.stats.median > 0, `${row.workload}, ${side.name}: median ${side.stats.median} ${row.unit}`);
    }
    assert.ok(Number.isFinite(row.ratio), `${row.workload}: ratio ${row.ratio}`);
    assert.ok(row.ratio > 0, `${row.workload}: ratio ${row.ratio}`);
  }

  const peers = results.comparisons.map((row) => row.peer.name).join('; ');
  assert.match(peers, /transformers\.js/);
  assert.match(peers, /wllama/);
  assert.match(peers, /llama\.cpp/);
  const gpuRows = results.comparisons.filter((row) => row.group === 'webgpu');
  assert.ok(gpuRows.some((row) => row.workload.startsWith('browser:')), 'WebGPU figures in the browser');
  assert.ok(gpuRows.some((row) => row.workload.startsWith('native:')), 'GPU figures natively');

  // The int8 peer model and Seedling's f32 weights give nearly the same embedding.
  const similarity = results.checks.find((check) => check.check.startsWith('embedding cosine'));
  assert.ok(similarity.value >= 0.98, `embedding cosine ${similarity.value}`);

  for (const row of results.memory) {
    const figure = row.wasmHeapBytes ?? row.processPeakRssBytes;
    assert.ok(figure > 0, `${row.engine}: memory figure ${figure}`);
    if (row.wasmHeapBytes !== undefined) assert.ok(row.rendererPeakRssBytes > 0, `${row.engine}: renderer peak RSS`);
  }
  assert.ok(results.machine.loadAverage.samples.length >= 1, 'load samples recorded');
  assert.ok(results.wasmNative.length >= 2, 'wasm / native ratios');

  const markdown = renderMarkdown(results);
  for (const heading of ['### Machine', '### MiniLM', '### SmolLM2', '### Native', '### WebGPU', '### Peak memory']) {
    assert.ok(markdown.includes(heading), `Markdown has "${heading}"`);
  }
});
