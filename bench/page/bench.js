// The benchmark page: one engine per page (Seedling, transformers.js or wllama), opened
// and called by bench/run.mjs through `window.bench`. Each engine exposes the same
// methods, so the driver runs the same workload on each.
const SMOLLM2 = '/models/files/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf';

// An engine in a module worker of this page (Seedling and transformers.js).
class WorkerEngine {
  constructor(script) {
    this.worker = new Worker(new URL(script, import.meta.url), { type: 'module' });
    this.pending = new Map();
    this.nextId = 0;
    this.worker.onmessage = ({ data: { id, result, error } }) => {
      const { resolve, reject } = this.pending.get(id);
      this.pending.delete(id);
      if (error) reject(new Error(error));
      else resolve(result);
    };
    this.worker.onerror = (event) => {
      for (const { reject } of this.pending.values()) reject(new Error(`worker error: ${event.message}`));
      this.pending.clear();
    };
  }

  call(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, method, params });
    });
  }
}

async function fetchBlob(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.blob();
}

// wllama 3.x: llama.cpp's server context in WebAssembly. The prompt and decode times
// are the ones its server reports (prompt_ms and predicted_ms).
class Wllama3Engine {
  async call(method, params) {
    return this[method](params);
  }

  async init() {
    const { Wllama } = await import('/node_modules/@wllama/wllama/esm/index.js');
    this.wllama = new Wllama({ default: '/node_modules/@wllama/wllama/esm/wasm/wllama.wasm' }, { suppressNativeLog: true });
    return { backend: 'cpu' };
  }

  async loadLlm({ threads }) {
    const blob = await fetchBlob(SMOLLM2);
    const started = performance.now();
    // n_gpu_layers 0 keeps every layer on the CPU (3.x offloads to WebGPU by default).
    await this.wllama.loadModel([blob], { n_threads: threads, n_gpu_layers: 0, n_ctx: 1024, n_batch: 512 });
    return { loadMs: performance.now() - started, threads: this.wllama.getNumThreads(), multithread: this.wllama.isMultithread() };
  }

  // 3.13.0 fails on a prompt given as token ids (RangeError: Invalid typed array
  // length), so the prompt goes in as text and its token count is checked.
  async generate({ promptIds, promptText, decodeTokens }) {
    const result = await this.wllama.createCompletion({
      prompt: promptText,
      max_tokens: decodeTokens + 1,
      temperature: 0,
      ignore_eos: true,
      cache_prompt: false,
    });
    const timings = result.timings;
    if (!timings) throw new Error('wllama returned no timings');
    if (timings.prompt_n !== promptIds.length) {
      throw new Error(`wllama tokenized the prompt to ${timings.prompt_n} tokens, expected ${promptIds.length}`);
    }
    return {
      prefillMs: timings.prompt_ms,
      // predicted_ms runs from the first generated token to the last, so it spans
      // predicted_n - 1 decode steps.
      decodeMs: timings.predicted_ms,
      decodeTokens: timings.predicted_n - 1,
      text: result.choices[0].text,
    };
  }
}

// wllama 2.x: its own llama.cpp bindings, driven one call per token as its
// createCompletion does. The times include one worker round trip per call.
class Wllama2Engine {
  async call(method, params) {
    return this[method](params);
  }

  async init() {
    const { Wllama } = await import('/node_modules/wllama-2/esm/index.js');
    this.wllama = new Wllama({
      'single-thread/wllama.wasm': '/node_modules/wllama-2/esm/single-thread/wllama.wasm',
      'multi-thread/wllama.wasm': '/node_modules/wllama-2/esm/multi-thread/wllama.wasm',
    }, { suppressNativeLog: true });
    return { backend: 'cpu' };
  }

  async loadLlm({ threads }) {
    const blob = await fetchBlob(SMOLLM2);
    const started = performance.now();
    await this.wllama.loadModel([blob], { n_threads: threads, n_ctx: 1024, n_batch: 512 });
    return { loadMs: performance.now() - started, threads: this.wllama.getNumThreads(), multithread: this.wllama.isMultithread() };
  }

  async generate({ promptIds, decodeTokens }) {
    const wllama = this.wllama;
    await wllama.kvClear();
    await wllama.samplingInit({ temp: 0, top_k: 1 }, []);

    let started = performance.now();
    await wllama.decode(promptIds, {});
    let { token } = await wllama.samplingSample();
    const prefillMs = performance.now() - started;

    const tokenIds = [token];
    started = performance.now();
    for (let step = 0; step < decodeTokens; step += 1) {
      await wllama.samplingAccept([token]);
      await wllama.decode([token], {});
      ({ token } = await wllama.samplingSample());
      tokenIds.push(token);
    }
    return { prefillMs, decodeMs: performance.now() - started, decodeTokens, tokenIds };
  }
}

// Prepends the memory probe to the source of wllama's worker, which wllama builds as
// a Blob whose text starts with `const RUN_OPTIONS`.
async function probeWllamaWorkers() {
  const response = await fetch(new URL('memory-probe.js', import.meta.url));
  const probe = await response.text();
  const OriginalBlob = self.Blob;
  self.Blob = new Proxy(OriginalBlob, {
    construct(target, [parts, options], newTarget) {
      if (typeof parts?.[0] === 'string' && parts[0].startsWith('const RUN_OPTIONS')) {
        parts = [probe, ';\n', ...parts];
      }
      return Reflect.construct(target, [parts, options], newTarget);
    },
  });
}

// Sums the wasm memories of every thread of this page that runs the memory probe.
async function wasmHeapBytes(waitMs = 300) {
  const channel = new BroadcastChannel('seedling-bench-memory');
  const answers = [];
  channel.onmessage = (event) => answers.push(event.data);
  channel.postMessage('query');
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  channel.close();
  return { bytes: answers.reduce((sum, answer) => sum + answer.bytes, 0), threads: answers.length };
}

let engine = null;

window.bench = {
  crossOriginIsolated: self.crossOriginIsolated,
  hardwareConcurrency: navigator.hardwareConcurrency,
  userAgent: navigator.userAgent,

  // `kind`: seedling, transformers, wllama3 or wllama2.
  async open(kind) {
    if (engine) throw new Error('an engine is already open in this page');
    if (kind === 'seedling') engine = new WorkerEngine('seedling-worker.js');
    else if (kind === 'transformers') engine = new WorkerEngine('transformers-worker.js');
    else if (kind === 'wllama3' || kind === 'wllama2') {
      await probeWllamaWorkers();
      engine = kind === 'wllama3' ? new Wllama3Engine() : new Wllama2Engine();
    } else throw new Error(`unknown engine ${kind}: use seedling, transformers, wllama3 or wllama2`);
  },

  call(method, params) {
    return engine.call(method, params);
  },

  // The open engine, for debugging in the browser console.
  get engine() {
    return engine;
  },

  wasmHeapBytes,
};
