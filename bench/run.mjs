#!/usr/bin/env node
// The benchmark harness behind `./build.sh bench`: Seedling against transformers.js
// (MiniLM) and wllama (SmolLM2) in the same headless Chromium, against llama.cpp
// natively, and its WebGPU path against its CPU path. Seedling and each peer run
// interleaved (one run each, in alternating order), so a change in machine load hits
// both. Writes a JSON file and the tables of BENCHMARKS.md.
//
//   node bench/run.mjs [--runs N] [--warmup N] [--only minilm,smollm2,native,webgpu]
//                      [--out FILE] [--markdown FILE | --no-markdown] [--quick]
//                      [--minilm-model fp32|int8]
//
// --quick is one short iteration of every part, for the harness's own test.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { CHROMIUM, EngineSession } from './browser.mjs';
import { summarize, updateMarkdownFile } from './report.mjs';
import { startBenchServer } from './server.mjs';

const run = promisify(execFile);

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SEEDLING = join(ROOT, 'target/release/seedling');
const LLAMA_PYTHON = join(ROOT, '.cache/venv-llama/bin/python');
const GGUF = join(ROOT, 'models/files/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf');
const PROMPT_FILE = join(ROOT, 'bench/prompt.txt');
const ONNX_MODELS = join(ROOT, '.cache/bench/models');
export const GROUPS = ['minilm', 'smollm2', 'native', 'webgpu'];

// MiniLM cases are [batch, tokens per text, special tokens included].
const FULL = {
  runs: 5,
  warmup: 1,
  minilmCases: [[1, 16], [1, 128], [1, 512], [32, 128]],
  minilmModel: 'fp32',
  promptTokens: 128,
  decodeTokens: 128,
  browserThreads: [1, 2],
  nativeThreads: [1, 2],
  // SwiftShader and lavapipe emulate a GPU on the CPU and take seconds per forward
  // pass on 2 cores, so the GPU rows use a short prompt and few tokens.
  webgpu: { minilmCases: [[1, 128]], promptTokens: 8, decodeTokens: 4 },
};

const QUICK = {
  runs: 1,
  warmup: 0,
  minilmCases: [[1, 16]],
  minilmModel: 'int8',
  promptTokens: 16,
  decodeTokens: 8,
  browserThreads: [1],
  nativeThreads: [1],
  webgpu: { minilmCases: [[1, 16]], promptTokens: 4, decodeTokens: 2 },
};

// Words that the MiniLM tokenizer keeps whole, so a text of n - 2 of them is n tokens
// with [CLS] and [SEP]. Both engines' token counts are checked before timing.
const WORDS = (
  'the river runs past an old mill where children play in the summer and men wait for rain '
  + 'while birds sing over green hills under a bright blue sky near the little town by the sea'
).split(' ');

function minilmTexts(batch, tokens) {
  return Array.from({ length: batch }, (_, row) =>
    Array.from({ length: tokens - 2 }, (_, index) => WORDS[(row * 5 + index) % WORDS.length]).join(' '));
}

function cosine(a, b) {
  let dot = 0, normA = 0, normB = 0;
  for (let i = 0; i < a.length; i += 1) {
    dot += a[i] * b[i];
    normA += a[i] * a[i];
    normB += b[i] * b[i];
  }
  return dot / Math.sqrt(normA * normB);
}

// Counts the leading tokens that two greedy generations share.
function sharedPrefix(a, b) {
  let index = 0;
  while (index < Math.min(a.length, b.length) && a[index] === b[index]) index += 1;
  return index;
}

// Reads the idle and total CPU time counters of /proc/stat (all processes, ours included).
function cpuTimes() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = fields[3] + (fields[4] ?? 0);
    return { idle, total: fields.reduce((sum, value) => sum + value, 0) };
  } catch {
    return null;
  }
}

async function runJson(command, args, options = {}) {
  try {
    const { stdout } = await run(command, args, { cwd: ROOT, maxBuffer: 64 * 1024 * 1024, ...options });
    return JSON.parse(stdout);
  } catch (error) {
    const detail = error.stderr ? `\n${String(error.stderr).trim().split('\n').slice(-15).join('\n')}` : '';
    throw new Error(`${relative(ROOT, command) || command} ${args.slice(0, 4).join(' ')} … failed: ${error.message.split('\n')[0]}${detail}`);
  }
}

function packageVersion(name) {
  try {
    return JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

async function commandOutput(command, args) {
  try {
    return (await run(command, args, { cwd: ROOT })).stdout.trim();
  } catch {
    return null;
  }
}

function machineInfo() {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const osRelease = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
  return {
    cpu: cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGib: Math.round(os.totalmem() / 2 ** 30),
    os: osRelease.match(/^PRETTY_NAME="?([^"\n]*)"?$/m)?.[1] ?? os.type(),
    kernel: os.release(),
  };
}

async function versionInfo() {
  const commit = await commandOutput('git', ['rev-parse', '--short=12', 'HEAD']);
  const dirty = (await commandOutput('git', ['status', '--porcelain', '--untracked-files=no'])) ? ' with uncommitted changes' : '';
  const onnxRecord = (folder) => {
    const path = join(ONNX_MODELS, folder, 'build.json');
    return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null;
  };
  return {
    seedling: `${commit ?? 'unknown commit'}${dirty}`,
    rustc: await commandOutput('rustc', ['--version']),
    node: process.version,
    chromium: await commandOutput(CHROMIUM, ['--version']),
    'playwright-core': packageVersion('playwright-core'),
    'transformers.js': packageVersion('@huggingface/transformers'),
    'onnxruntime-web': packageVersion('onnxruntime-web'),
    'wllama 3.x': packageVersion('@wllama/wllama'),
    'wllama 2.x': packageVersion('wllama-2'),
    'MiniLM ONNX (fp32)': onnxRecord('all-MiniLM-L6-v2'),
    'MiniLM ONNX (int8)': onnxRecord('all-MiniLM-L6-v2-int8'),
  };
}

class Benchmark {
  constructor(config, options) {
    this.config = config;
    this.options = options;
    this.sessions = [];
    this.loadSamples = [];
    // Greedy token ids of each engine's first SmolLM2 run, by engine label.
    this.generatedTokens = {};
    this.results = {
      schema: 1,
      command: options.command,
      startedAt: new Date().toISOString(),
      method: {
        runs: config.runs,
        warmup: config.warmup,
        quick: options.quick,
        interleaved: 'one run of each engine per iteration, in alternating order',
        minilmCases: config.minilmCases.map(([batch, tokens]) => `${batch}x${tokens}`),
        minilmPeerModel: config.minilmModel,
        promptTokens: config.promptTokens,
        decodeTokens: config.decodeTokens,
        webgpu: config.webgpu,
      },
      machine: machineInfo(),
      versions: {},
      prompt: null,
      comparisons: [],
      wasmNative: [],
      memory: [],
      checks: [],
      targets: [],
      cpuBusy: {},
      problems: { foreignRequests: [], pageErrors: [], consoleErrors: [] },
      failures: [],
    };
  }

  log(message) {
    if (!this.options.silent) console.error(`[bench] ${message}`);
  }

  async open(kind, label) {
    const session = await EngineSession.open(this.baseUrl, kind, label);
    this.sessions.push(session);
    this.results.machine.crossOriginIsolated ??= session.environment.crossOriginIsolated;
    this.results.machine.browserHardwareConcurrency ??= session.environment.hardwareConcurrency;
    return session;
  }

  async close(session) {
    for (const key of Object.keys(this.results.problems)) {
      this.results.problems[key].push(...session.problems[key].map((text) => `${session.label}: ${text}`));
    }
    this.sessions = this.sessions.filter((other) => other !== session);
    await session.close();
  }

  sampleLoad() {
    this.loadSamples.push(os.loadavg()[0]);
  }

  // Runs `measure(engine)` for every engine, `warmup` untimed rounds then `runs` timed
  // rounds, reversing the order every other round. Returns one array per engine.
  async interleave(engines, measure, warmup = this.config.warmup) {
    for (let round = 0; round < warmup; round += 1) {
      for (const engine of engines) await measure(engine);
    }
    const values = engines.map(() => []);
    const order = engines.map((_, index) => index);
    for (let round = 0; round < this.config.runs; round += 1) {
      for (const index of round % 2 ? [...order].reverse() : order) {
        values[index].push(await measure(engines[index]));
      }
      this.sampleLoad();
    }
    return values;
  }

  compare({ group, workload, metric, unit, subject, values, peer, peerValues, alternatives }) {
    const seedling = summarize(values);
    const peerStats = summarize(peerValues);
    this.results.comparisons.push({
      group,
      workload,
      metric,
      unit,
      seedling: { name: subject, stats: seedling },
      peer: { name: peer, stats: peerStats },
      ratio: seedling.median / peerStats.median,
      alternatives,
    });
  }

  async recordMemory(session, workload) {
    this.results.memory.push({ engine: session.label, workload, ...(await session.memory()) });
  }

  // Returns the prompt of the SmolLM2 runs: the first promptTokens tokens of bench/prompt.txt.
  async prompt(promptTokens) {
    const output = await runJson(SEEDLING, [
      '--backend', 'cpu', 'bench', 'llm', '--prompt-file', PROMPT_FILE,
      '--prompt-tokens', String(promptTokens), '--runs', '0',
    ]);
    return { ids: output.prompt_ids, text: output.prompt_text };
  }

  async minilm() {
    const config = this.config;
    const folder = config.minilmModel === 'fp32' ? 'all-MiniLM-L6-v2' : 'all-MiniLM-L6-v2-int8';
    if (!existsSync(join(ONNX_MODELS, folder))) {
      throw new Error(`${relative(ROOT, join(ONNX_MODELS, folder))} is missing; build it with bench/build_minilm_onnx.py (./build.sh bench does)`);
    }
    const seedling = await this.open('seedling', 'Seedling wasm, 1 thread');
    await seedling.call('init', { backend: 'cpu' });
    await seedling.call('loadEncoder', { maxLength: 512 });
    const dtype = config.minilmModel === 'fp32' ? 'fp32' : 'q8';
    const peer = await this.open('transformers', `transformers.js WASM, 1 thread, ${dtype} ONNX`);
    const info = await peer.call('init', { model: folder, dtype, threads: 1 });
    this.results.versions['transformers.js'] = info.version;
    this.results.versions['onnxruntime-web (bundled in transformers.js)'] = info.onnxruntimeWeb;

    for (const [batch, tokens] of config.minilmCases) {
      const texts = minilmTexts(batch, tokens);
      const workload = `MiniLM ${batch}×${tokens} tokens`;
      this.log(workload);
      const ours = await seedling.call('embed', { texts });
      const theirs = await peer.call('embed', { texts });
      const peerTokens = await peer.call('tokenCounts', { texts });
      for (const [engine, counts] of [['Seedling', ours.tokens], ['transformers.js', peerTokens]]) {
        if (counts.some((count) => count !== tokens)) {
          throw new Error(`${engine} tokenized the ${workload} texts to ${counts.join(', ')} tokens, expected ${tokens}`);
        }
      }
      this.results.checks.push({ check: 'embedding cosine, Seedling vs transformers.js', workload, value: cosine(ours.vector, theirs.vector) });

      const [values, peerValues] = await this.interleave([seedling, peer], async (engine) => (await engine.call('embed', { texts })).ms);
      this.compare({ group: 'minilm', workload, metric: 'latency', unit: 'ms', subject: seedling.label, values, peer: peer.label, peerValues });
    }
    await this.recordMemory(seedling, 'MiniLM');
    await this.recordMemory(peer, 'MiniLM');
    await this.close(seedling);
    await this.close(peer);
  }

  // Returns the rates of one generate result: prompt tokens and decode steps per second.
  static rates(result, promptTokens) {
    return {
      prefill: promptTokens / (result.prefillMs / 1000),
      decode: result.decodeTokens / (result.decodeMs / 1000),
    };
  }

  async smollm2() {
    const config = this.config;
    const prompt = this.results.prompt;
    const request = { promptIds: prompt.ids, promptText: prompt.text, decodeTokens: config.decodeTokens };
    const seedling = await this.open('seedling', 'Seedling wasm, 1 thread');
    await seedling.call('init', { backend: 'cpu' });
    await seedling.call('loadLlm');

    const threads = config.browserThreads.filter((count) => count === 1 || (this.results.machine.crossOriginIsolated && count <= os.cpus().length));
    const peers = [];
    for (const count of threads) {
      for (const [kind, release] of [['wllama3', packageVersion('@wllama/wllama')], ['wllama2', packageVersion('wllama-2')]]) {
        const label = `wllama ${release}, ${count} thread${count > 1 ? 's' : ''}`;
        // A release that fails to load is recorded and left out, so the other still runs.
        try {
          const peer = await this.open(kind, label);
          peer.threads = count;
          await peer.call('init');
          const loaded = await peer.call('loadLlm', { threads: count });
          if (loaded.threads !== count) throw new Error(`${peer.label} runs ${loaded.threads} threads, expected ${count}`);
          peers.push(peer);
        } catch (error) {
          this.log(`${label} failed: ${error.message}`);
          this.results.failures.push({ group: 'smollm2', error: `${label}: ${error.message}` });
          const session = this.sessions.find((other) => other.label === label);
          if (session) await this.close(session);
        }
      }
    }

    this.log(`SmolLM2 prefill ${config.promptTokens} tokens and decode ${config.decodeTokens} tokens`);
    const engines = [seedling, ...peers];
    const first = [];
    for (const engine of engines) first.push(await engine.call('generate', request));
    for (const [index, result] of first.entries()) {
      if (result.decodeTokens !== config.decodeTokens) {
        throw new Error(`${engines[index].label} decoded ${result.decodeTokens} tokens, expected ${config.decodeTokens}`);
      }
      if (result.tokenIds) this.generatedTokens[engines[index].label] = result.tokenIds;
    }

    const samples = await this.interleave(engines, async (engine) => Benchmark.rates(await engine.call('generate', request), config.promptTokens));
    this.browserRates = samples[0];
    for (const count of threads) {
      for (const metric of ['prefill', 'decode']) {
        const candidates = peers
          .map((peer, index) => ({ peer, values: samples[index + 1].map((rates) => rates[metric]) }))
          .filter(({ peer }) => peer.threads === count)
          .map((candidate) => ({ ...candidate, median: summarize(candidate.values).median }));
        // The faster release is the peer, and the JSON keeps the other.
        candidates.sort((a, b) => b.median - a.median);
        if (!candidates.length) continue;
        const [best, ...others] = candidates;
        this.compare({
          group: 'smollm2',
          workload: metric === 'prefill' ? `SmolLM2 prefill, ${config.promptTokens}-token prompt` : `SmolLM2 decode, ${config.decodeTokens} tokens`,
          metric,
          unit: 'tokens/s',
          subject: seedling.label,
          values: samples[0].map((rates) => rates[metric]),
          peer: best.peer.label,
          peerValues: best.values,
          alternatives: others.map(({ peer, values }) => ({ name: peer.label, stats: summarize(values) })),
        });
      }
    }
    for (const engine of engines) {
      await this.recordMemory(engine, 'SmolLM2');
      await this.close(engine);
    }
  }

  async native() {
    const config = this.config;
    const ids = this.results.prompt.ids.join(',');
    const warmup = String(Math.max(config.warmup, 1));
    const seedlingArgs = (threads) => [
      '--backend', 'cpu', 'bench', 'llm', '--prompt-ids', ids, '--decode-tokens', String(config.decodeTokens),
      '--threads', String(threads), '--warmup', warmup, '--runs', '1',
    ];
    const llamaArgs = (threads) => [
      join(ROOT, 'bench/llama_cpp_bench.py'), '--model', GGUF, '--prompt-ids', ids,
      '--decode-tokens', String(config.decodeTokens), '--threads', String(threads), '--warmup', warmup, '--runs', '1',
    ];
    this.nativeRates = {};
    for (const threads of config.nativeThreads) {
      this.log(`native SmolLM2, ${threads} thread(s)`);
      const outputs = { seedling: [], llama: [] };
      const engines = [
        { name: 'seedling', start: () => runJson(SEEDLING, seedlingArgs(threads)) },
        { name: 'llama', start: () => runJson(LLAMA_PYTHON, llamaArgs(threads)) },
      ];
      // Each process loads the model and warms up on its own, so no warm-up rounds here.
      await this.interleave(engines, async (engine) => outputs[engine.name].push(await engine.start()), 0);

      this.results.versions['llama-cpp-python'] = outputs.llama[0].llama_cpp_python;
      this.results.versions['llama.cpp CPU features'] = outputs.llama[0].system_info;
      const rates = (output) => output.map((o) => Benchmark.rates({
        prefillMs: o.runs[0].prefill_ms, decodeMs: o.runs[0].decode_ms, decodeTokens: o.runs[0].decode_tokens,
      }, config.promptTokens));
      const ours = rates(outputs.seedling);
      const theirs = rates(outputs.llama);
      this.nativeRates[threads] = { seedling: ours, llama: theirs };
      const label = `${threads} thread${threads > 1 ? 's' : ''}`;
      for (const metric of ['prefill', 'decode']) {
        this.compare({
          group: 'native',
          workload: metric === 'prefill' ? `SmolLM2 prefill, ${config.promptTokens}-token prompt` : `SmolLM2 decode, ${config.decodeTokens} tokens`,
          metric,
          unit: 'tokens/s',
          subject: `Seedling native CPU, ${label}`,
          values: ours.map((r) => r[metric]),
          peer: `llama.cpp (llama-cpp-python ${outputs.llama[0].llama_cpp_python}), ${label}`,
          peerValues: theirs.map((r) => r[metric]),
        });
      }
      this.generatedTokens[`Seedling native CPU, ${label}`] = outputs.seedling[0].runs[0].token_ids;
      this.generatedTokens[`llama.cpp, ${label}`] = outputs.llama[0].runs[0].token_ids;
      const peak = (output) => Math.max(...output.map((o) => o.peak_rss_bytes ?? 0)) || null;
      this.results.memory.push({ engine: `Seedling native CPU, ${label}`, workload: 'SmolLM2', processPeakRssBytes: peak(outputs.seedling) });
      this.results.memory.push({ engine: `llama.cpp, ${label}`, workload: 'SmolLM2', processPeakRssBytes: peak(outputs.llama) });
    }

    // Native MiniLM on one thread, for the wasm / native ratio.
    const scratch = mkdtempSync(join(os.tmpdir(), 'seedling-bench-'));
    try {
      const textsFile = join(scratch, 'texts.json');
      const cases = config.minilmCases.map(([batch, tokens]) => ({ name: `${batch}x${tokens}`, texts: minilmTexts(batch, tokens) }));
      writeFileSync(textsFile, JSON.stringify({ cases }));
      this.log('native MiniLM, 1 thread');
      const output = await runJson(SEEDLING, [
        '--backend', 'cpu', 'bench', 'embed', '--texts-file', textsFile, '--threads', '1',
        '--warmup', String(Math.max(config.warmup, 1)), '--runs', String(config.runs),
      ]);
      this.nativeEmbed = output.cases;
      this.results.memory.push({ engine: 'Seedling native CPU, 1 thread', workload: 'MiniLM', processPeakRssBytes: output.peak_rss_bytes });
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  async webgpu() {
    const config = this.config.webgpu;
    const prompt = this.results.prompt;
    const request = { promptIds: prompt.ids.slice(0, config.promptTokens), promptText: null, decodeTokens: config.decodeTokens };
    if (request.promptIds.length < config.promptTokens) {
      throw new Error(`the prompt has ${request.promptIds.length} tokens, fewer than the ${config.promptTokens} of the WebGPU runs`);
    }

    // In the browser: Seedling on WebGPU (SwiftShader here) against its wasm CPU path.
    const gpu = await this.open('seedling', 'Seedling WebGPU');
    const adapter = await gpu.call('init', { backend: 'webgpu' });
    gpu.label = `Seedling WebGPU (${adapter.adapter}${adapter.software ? '' : ', hardware'})`;
    this.results.versions['browser WebGPU adapter'] = adapter.adapter;
    const cpu = await this.open('seedling', 'Seedling wasm CPU, 1 thread');
    await cpu.call('init', { backend: 'cpu' });
    for (const engine of [gpu, cpu]) {
      await engine.call('loadEncoder', { maxLength: 512 });
      await engine.call('loadLlm');
    }
    for (const [batch, tokens] of config.minilmCases) {
      const texts = minilmTexts(batch, tokens);
      this.log(`WebGPU MiniLM ${batch}×${tokens}`);
      const [values, peerValues] = await this.interleave([gpu, cpu], async (engine) => (await engine.call('embed', { texts })).ms);
      this.compare({ group: 'webgpu', workload: `browser: MiniLM ${batch}×${tokens} tokens`, metric: 'latency', unit: 'ms', subject: gpu.label, values, peer: cpu.label, peerValues });
    }
    this.log(`WebGPU SmolLM2 prefill ${config.promptTokens}, decode ${config.decodeTokens}`);
    const [gpuRates, cpuRates] = await this.interleave([gpu, cpu], async (engine) => Benchmark.rates(await engine.call('generate', request), config.promptTokens));
    for (const metric of ['prefill', 'decode']) {
      this.compare({
        group: 'webgpu',
        workload: `browser: SmolLM2 ${metric === 'prefill' ? `prefill, ${config.promptTokens}-token prompt` : `decode, ${config.decodeTokens} tokens`}`,
        metric,
        unit: 'tokens/s',
        subject: gpu.label,
        values: gpuRates.map((r) => r[metric]),
        peer: cpu.label,
        peerValues: cpuRates.map((r) => r[metric]),
      });
    }
    await this.recordMemory(gpu, 'MiniLM and SmolLM2');
    await this.recordMemory(cpu, 'MiniLM and SmolLM2');
    await this.close(gpu);
    await this.close(cpu);

    // Natively: the same kernels through wgpu on Vulkan (lavapipe here) against the CPU.
    this.log('native WebGPU kernels (wgpu) against the CPU');
    const args = (backend) => [
      '--backend', backend, 'bench', 'llm', '--prompt-ids', request.promptIds.join(','),
      '--decode-tokens', String(config.decodeTokens), '--warmup', '1', '--runs', '1',
    ];
    const outputs = { gpu: [], cpu: [] };
    // Each process warms up on its own (--warmup 1).
    await this.interleave(['gpu', 'cpu'], async (backend) => outputs[backend].push(await runJson(SEEDLING, args(backend))), 0);
    const adapterName = outputs.gpu[0].runtime.adapter;
    this.results.versions['native GPU adapter'] = adapterName;
    const rates = (list) => list.map((o) => Benchmark.rates({
      prefillMs: o.runs[0].prefill_ms, decodeMs: o.runs[0].decode_ms, decodeTokens: o.runs[0].decode_tokens,
    }, config.promptTokens));
    const [nativeGpu, nativeCpu] = [rates(outputs.gpu), rates(outputs.cpu)];
    for (const metric of ['prefill', 'decode']) {
      this.compare({
        group: 'webgpu',
        workload: `native: SmolLM2 ${metric === 'prefill' ? `prefill, ${config.promptTokens}-token prompt` : `decode, ${config.decodeTokens} tokens`}`,
        metric,
        unit: 'tokens/s',
        subject: `Seedling native GPU (${adapterName})`,
        values: nativeGpu.map((r) => r[metric]),
        peer: `Seedling native CPU, ${outputs.cpu[0].threads} threads`,
        peerValues: nativeCpu.map((r) => r[metric]),
      });
    }
  }

  // Computes Seedling's wasm / native ratios and the informational targets.
  summarizeRatios() {
    const median = (values) => summarize(values).median;
    const results = this.results;
    if (this.browserRates && this.nativeRates?.[1]) {
      for (const metric of ['prefill', 'decode']) {
        const wasm = median(this.browserRates.map((r) => r[metric]));
        const native = median(this.nativeRates[1].seedling.map((r) => r[metric]));
        results.wasmNative.push({ workload: `SmolLM2 ${metric}`, unit: 'tokens/s', wasm, native, ratio: wasm / native });
      }
    }
    if (this.nativeEmbed) {
      for (const nativeCase of this.nativeEmbed) {
        const [batch, tokens] = nativeCase.name.split('x');
        const row = results.comparisons.find((c) => c.group === 'minilm' && c.workload === `MiniLM ${batch}×${tokens} tokens`);
        if (!row) continue;
        const native = median(nativeCase.runs_ms);
        results.wasmNative.push({ workload: `MiniLM ${batch}×${tokens}`, unit: 'ms', wasm: row.seedling.stats.median, native, ratio: row.seedling.stats.median / native });
      }
    }

    // Greedy decoding of the same prompt: how many leading tokens each engine shares
    // with llama.cpp. Near-ties in the logits can make correct engines part ways.
    const reference = this.generatedTokens['llama.cpp, 1 thread'];
    for (const [engine, ids] of Object.entries(this.generatedTokens)) {
      if (!reference || engine === 'llama.cpp, 1 thread') continue;
      results.checks.push({
        check: `greedy tokens shared with llama.cpp (1 thread), ${engine}`,
        workload: 'SmolLM2',
        value: sharedPrefix(reference, ids),
        of: Math.min(reference.length, ids.length),
      });
    }

    const ratioOf = (group, workload) => results.comparisons.find((c) => c.group === group && c.workload === workload)?.ratio ?? null;
    const target = (name, value, goal, met) => results.targets.push({ name, value, goal, met: value === null ? null : met(value) });
    target('MiniLM 1×512 latency, Seedling / transformers.js', ratioOf('minilm', 'MiniLM 1×512 tokens'), '≤ 1.0', (v) => v <= 1.0);
    target('MiniLM 32×128 latency, Seedling / transformers.js', ratioOf('minilm', 'MiniLM 32×128 tokens'), '≤ 1.0', (v) => v <= 1.0);
    const browserDecode = this.browserRates ? median(this.browserRates.map((r) => r.decode)) : null;
    const llamaDecode = this.nativeRates?.[1] ? median(this.nativeRates[1].llama.map((r) => r.decode)) : null;
    target('SmolLM2 decode, Seedling wasm 1 thread / llama.cpp native 1 thread', browserDecode && llamaDecode ? browserDecode / llamaDecode : null, '≥ 0.5', (v) => v >= 0.5);
    for (const threads of this.config.nativeThreads) {
      const rows = results.comparisons.filter((c) => c.group === 'native' && c.metric === 'decode' && c.seedling.name.endsWith(`${threads} thread${threads > 1 ? 's' : ''}`));
      target(`SmolLM2 native decode, Seedling / llama.cpp, ${threads} thread${threads > 1 ? 's' : ''}`, rows[0]?.ratio ?? null, '≥ 1.0', (v) => v >= 1.0);
    }
    const ggufBytes = results.versions['SmolLM2 GGUF bytes'];
    const heap = results.memory.find((m) => m.workload === 'SmolLM2' && m.engine.startsWith('Seedling wasm'))?.wasmHeapBytes ?? null;
    target('SmolLM2 peak wasm heap / GGUF size, Seedling', heap && ggufBytes ? heap / ggufBytes : null, '≤ 1.5', (v) => v <= 1.5);
  }

  async execute() {
    const started = Date.now();
    const loadStart = os.loadavg()[0];
    this.results.versions = await versionInfo();
    this.results.versions['SmolLM2 GGUF bytes'] = existsSync(GGUF) ? statSync(GGUF).size : null;

    const server = await startBenchServer();
    this.baseUrl = server.url;
    try {
      this.results.prompt = await this.prompt(this.config.promptTokens);
      for (const group of GROUPS.filter((name) => this.options.only.includes(name))) {
        const before = cpuTimes();
        try {
          await this[group]();
        } catch (error) {
          this.log(`${group} failed: ${error.message}`);
          this.results.failures.push({ group, error: error.message });
          for (const session of [...this.sessions]) await this.close(session);
        }
        const after = cpuTimes();
        if (before && after) {
          this.results.cpuBusy[group] = 1 - (after.idle - before.idle) / Math.max(1, after.total - before.total);
        }
      }
      this.summarizeRatios();
    } finally {
      for (const session of [...this.sessions]) await this.close(session);
      await server.close();
    }

    const samples = this.loadSamples.length ? this.loadSamples : [loadStart];
    const load = summarize(samples);
    this.results.machine.loadAverage = { start: loadStart, end: os.loadavg()[0], median: load.median, min: load.min, max: load.max, samples };
    this.results.finishedAt = new Date().toISOString();
    this.results.durationSeconds = (Date.now() - started) / 1000;
    return this.results;
  }
}

// Runs the benchmarks and returns the results. `options`: {quick, runs, warmup, only,
// minilmModel, command, silent}.
export async function runBenchmarks(options = {}) {
  const config = structuredClone(options.quick ? QUICK : FULL);
  if (options.runs !== undefined) config.runs = options.runs;
  if (options.warmup !== undefined) config.warmup = options.warmup;
  if (options.minilmModel) config.minilmModel = options.minilmModel;
  const benchmark = new Benchmark(config, {
    quick: Boolean(options.quick),
    only: options.only ?? GROUPS,
    command: options.command ?? 'node bench/run.mjs',
    silent: Boolean(options.silent),
  });
  return benchmark.execute();
}

async function main() {
  const { values } = parseArgs({
    allowPositionals: false,
    options: {
      runs: { type: 'string' },
      warmup: { type: 'string' },
      only: { type: 'string' },
      out: { type: 'string' },
      markdown: { type: 'string' },
      'no-markdown': { type: 'boolean' },
      'minilm-model': { type: 'string' },
      quick: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 12).map((line) => line.replace(/^\/\/ ?/, '')).join('\n'));
    return 0;
  }
  const count = (name, minimum) => {
    if (values[name] === undefined) return undefined;
    const number = Number(values[name]);
    if (!Number.isInteger(number) || number < minimum) {
      throw new Error(`invalid --${name} ${values[name]}: give a whole number of at least ${minimum}`);
    }
    return number;
  };
  const only = values.only ? values.only.split(',').map((name) => name.trim()) : GROUPS;
  const unknown = only.filter((name) => !GROUPS.includes(name));
  if (unknown.length) throw new Error(`unknown --only group ${unknown.join(', ')}: use ${GROUPS.join(', ')}`);
  if (values['minilm-model'] && !['fp32', 'int8'].includes(values['minilm-model'])) {
    throw new Error(`invalid --minilm-model ${values['minilm-model']}: use fp32 or int8`);
  }
  for (const [path, hint] of [[SEEDLING, 'run ./build.sh build'], [LLAMA_PYTHON, 'run ./build.sh bench, which builds .cache/venv-llama'], [join(ROOT, 'www/pkg/seedling_bg.wasm'), 'run ./build.sh build']]) {
    if (!existsSync(path)) throw new Error(`${relative(ROOT, path)} is missing; ${hint}`);
  }

  const results = await runBenchmarks({
    quick: values.quick,
    runs: count('runs', 1),
    warmup: count('warmup', 0),
    only,
    minilmModel: values['minilm-model'],
    command: ['./build.sh bench', ...process.argv.slice(2)].join(' '),
  });
  // A quick run leaves the recorded figures alone unless --out names their file.
  const out = resolve(values.out ?? (values.quick ? join(os.tmpdir(), 'seedling-bench-quick.json') : join(ROOT, 'bench/results/latest.json')));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.error(`[bench] results written to ${out}`);
  const markdown = values['no-markdown'] ? null : values.markdown ?? (values.quick ? null : join(ROOT, 'BENCHMARKS.md'));
  if (markdown) {
    updateMarkdownFile(markdown, results);
    console.error(`[bench] tables written to ${markdown}`);
  }
  for (const failure of results.failures) console.error(`[bench] ${failure.group} failed: ${failure.error}`);
  return results.failures.length ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => process.exit(code), (error) => {
    console.error(`[bench] error: ${error.message}`);
    process.exit(1);
  });
}
