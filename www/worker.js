// The inference worker: downloads and caches files, hands their bytes to the wasm
// engine, and relays its progress. All checks and computation happen in Rust.
import init, {
  Engine, assessFeasibility, defaultDataFiles, detectProfile, equivalents, gridOptions, profileOptions, rejudge,
  sha256Hex, verifySha256, wasmMemoryBytes,
} from './pkg/seedling.js';
import { PythonSandbox } from './sandbox.js';

const CACHE_NAME = 'seedling-files-v1';
let engine = null;
let sandbox = null;

function post(message) {
  self.postMessage(message);
}

async function readJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function openCache() {
  try {
    return await caches.open(CACHE_NAME);
  } catch {
    return null;
  }
}

// Downloads `url` with progress events, checks its SHA-256 and keeps it in the Cache
// API; a cached copy is re-checked and used instead when it is intact.
async function fetchVerified(url, entry) {
  const cache = await openCache();
  if (cache) {
    const hit = await cache.match(url);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      try {
        verifySha256(entry.dest, bytes, entry.sha256);
        post({ type: 'download', file: entry.dest, loaded: bytes.length, total: bytes.length, cached: true, verified: true });
        return bytes;
      } catch {
        await cache.delete(url);
      }
    }
  }

  const bytes = await download(url, entry.dest, entry.bytes);
  verifySha256(entry.dest, bytes, entry.sha256);
  post({ type: 'download', file: entry.dest, loaded: bytes.length, total: bytes.length, verified: true });

  if (cache) {
    try {
      await cache.put(url, new Response(bytes));
    } catch (error) {
      post({ type: 'warning', key: 'cacheFull', detail: String(error) });
    }
  }
  return bytes;
}

// Downloads `url` with progress events under the name `file`.
async function download(url, file, expectedBytes) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`${file}: cannot fetch ${url} (${error.message}); check the URL, and that its server allows this page's origin (CORS)`);
  }
  if (!response.ok) throw new Error(`${file}: HTTP ${response.status} from ${url}`);
  const total = Number(response.headers.get('content-length')) || expectedBytes || 0;
  const entry = { dest: file };
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  let lastReport = 0;
  const start = performance.now();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    const now = performance.now();
    if (now - lastReport > 100) {
      lastReport = now;
      post({ type: 'download', file: entry.dest, loaded, total, rate: loaded / Math.max(1, now - start) * 1000 });
    }
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  const rate = loaded / Math.max(1, performance.now() - start) * 1000;
  post({ type: 'download', file: entry.dest, loaded, total, rate });
  return bytes;
}

// A user's model file: bytes from the page (a local file) or a download from the URL
// the user gave, checked against the SHA-256 the user gave, if any. Its record carries
// the SHA-256 computed here, so the report records exactly what ran.
async function userFile(source, name) {
  const bytes = source.bytes ?? await download(source.url, name);
  const sha256 = sha256Hex(bytes);
  if (source.sha256) verifySha256(name, bytes, source.sha256.toLowerCase());
  post({ type: 'download', file: name, loaded: bytes.length, total: bytes.length, verified: Boolean(source.sha256), user: true });
  return { bytes, record: { name, sha256, bytes: bytes.length } };
}

// The encoder's files from a user's folder (local files or a base URL): the weights,
// the tokenizer, the configuration and, if present, sentence-transformers' settings.
async function userEncoder(source) {
  const expected = ['model.safetensors', 'tokenizer.json', 'config.json', 'sentence_bert_config.json'];
  const files = {};
  if (source.files) {
    for (const name of expected) {
      const file = source.files.find((candidate) => candidate.name === name);
      if (file) files[name] = await userFile({ bytes: file.bytes }, name);
    }
  } else {
    const base = source.url.endsWith('/') ? source.url : `${source.url}/`;
    for (const name of expected) {
      try {
        files[name] = await userFile({ url: new URL(name, base).href }, name);
      } catch (error) {
        if (name !== 'sentence_bert_config.json') throw error;
        console.info(`optional ${name} not loaded from ${base}: ${error.message}`);
      }
    }
  }
  const missing = expected.slice(0, 3).filter((name) => !files[name]);
  if (missing.length) {
    throw new Error(`the encoder folder lacks ${missing.join(', ')}; give a sentence-transformers folder with model.safetensors, tokenizer.json and config.json`);
  }
  return files;
}

// The last part of a URL or file name, for the report.
const baseName = (text) => text.replace(/[?#].*$/, '').replace(/\/+$/, '').split('/').pop();

function record(entry) {
  return { name: entry.dest, sha256: entry.sha256, bytes: entry.bytes };
}

// Returns the base URL of the model files: `models/files/` beside the page, unless the
// deployer's config.json names another (`./build.sh dist --model-base URL`).
async function modelBase() {
  const config = await readJson('config.json');
  const base = config.modelBase ?? 'models/files/';
  return new URL(base.endsWith('/') ? base : `${base}/`, self.location.href).href;
}

// The model files each model needs, by their manifest destination.
const MODEL_FILES = {
  llm: ['SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf'],
  encoder: ['model.safetensors', 'tokenizer.json', 'config.json', 'sentence_bert_config.json']
    .map((name) => `all-MiniLM-L6-v2/${name}`),
};

// Returns the bytes the given models would download (files not in the cache yet) and
// the bytes the cache holds, so the page can warn before a large download.
async function cacheStatus(models) {
  const manifest = await readJson('models/manifest.json');
  const byDest = Object.fromEntries(manifest.files.map((entry) => [entry.dest, entry]));
  const base = await modelBase();
  const cache = await openCache();
  let pending = 0;
  for (const dest of models.flatMap((model) => MODEL_FILES[model] ?? [])) {
    const hit = cache && await cache.match(new URL(dest, base).href);
    if (!hit) pending += byDest[dest].bytes;
  }
  let cached = 0;
  for (const request of cache ? await cache.keys() : []) {
    const entry = manifest.files.find((file) => request.url.endsWith(`/${file.dest}`));
    cached += entry?.bytes ?? 0;
  }
  return { pending, cached };
}

async function loadModels(which, custom = {}) {
  const manifest = await readJson('models/manifest.json');
  const byDest = Object.fromEntries(manifest.files.map((entry) => [entry.dest, entry]));
  const base = await modelBase();
  const get = async (dest) => fetchVerified(new URL(dest, base).href, byDest[dest]);
  // Seconds each model took to load into the engine, its download excluded.
  const info = { loadSeconds: [] };
  const timed = (load) => {
    const start = performance.now();
    const result = load();
    info.loadSeconds.push((performance.now() - start) / 1000);
    return result;
  };

  if (which.includes('llm') && custom.llm) {
    const name = custom.llm.name ?? baseName(custom.llm.url);
    const { bytes, record: fileRecord } = await userFile(custom.llm, name);
    post({ type: 'status', key: 'statusLoadingModel', values: { model: name } });
    info.llm = timed(() => engine.loadLlm(bytes, fileRecord, name.replace(/\.gguf$/i, '')));
  } else if (which.includes('llm')) {
    const [dest] = MODEL_FILES.llm;
    const bytes = await get(dest);
    post({ type: 'status', key: 'statusLoadingModel', values: { model: 'SmolLM2-135M-Instruct' } });
    info.llm = timed(() => engine.loadLlm(bytes, record(byDest[dest])));
  }
  if (which.includes('encoder') && custom.encoder) {
    const files = await userEncoder(custom.encoder);
    const name = custom.encoder.name ?? baseName(custom.encoder.url ?? 'encoder');
    post({ type: 'status', key: 'statusLoadingModel', values: { model: name } });
    const parts = ['model.safetensors', 'tokenizer.json', 'config.json'].map((file) => files[file].bytes);
    const records = Object.values(files).map((file) => file.record);
    info.encoder = timed(() => engine.loadEncoder(...parts, files['sentence_bert_config.json']?.bytes, records, name));
  } else if (which.includes('encoder')) {
    const dests = MODEL_FILES.encoder;
    const [weights, tokenizer, config, sentence] = await Promise.all(dests.map(get));
    post({ type: 'status', key: 'statusLoadingModel', values: { model: 'all-MiniLM-L6-v2' } });
    info.encoder = timed(() => engine.loadEncoder(weights, tokenizer, config, sentence, dests.map((dest) => record(byDest[dest]))));
  }
  // The head loads after the encoder, which it checks it was trained on.
  if (which.includes('head')) {
    const recordResponse = await fetch('models/heads/sentiment.json');
    if (!recordResponse.ok) throw new Error(`models/heads/sentiment.json: HTTP ${recordResponse.status}`);
    const recordText = await recordResponse.text();
    const weightsResponse = await fetch('models/heads/sentiment.safetensors');
    if (!weightsResponse.ok) throw new Error(`models/heads/sentiment.safetensors: HTTP ${weightsResponse.status}`);
    const weights = new Uint8Array(await weightsResponse.arrayBuffer());
    info.head = engine.loadHead(weights, recordText);
  }
  return info;
}

// Hands each task's default data files to the engine, unless it already has
// files for that task (the defaults from an earlier run, or the user's own file).
async function loadData(tasks) {
  const manifest = await readJson('data/manifest.json');
  const byDest = Object.fromEntries(manifest.files.map((entry) => [entry.dest, entry]));
  for (const task of tasks) {
    if (engine.dataFiles(task).length > 0) continue;
    for (const dest of defaultDataFiles(task)) {
      const bytes = await fetchVerified(`data/files/${dest}`, byDest[dest]);
      engine.addData(task, dest, bytes, byDest[dest].sha256, false);
    }
  }
}

// Runs HumanEval programs in a Pyodide worker with no network, cut off after the time limit.
function executePython(program, timeoutMs) {
  sandbox ??= new PythonSandbox();
  return sandbox.run(program, timeoutMs).then(({ outcome, detail }) => ({
    passed: outcome === 'passed',
    result: outcome === 'failed' ? `failed: ${detail}` : outcome,
  }));
}

const handlers = {
  // Models load on the chosen back end, so changing it means a new worker.
  async init({ backend }) {
    await init();
    engine = new Engine();
    let chosen;
    try {
      chosen = await engine.useBackend(backend || 'auto');
    } catch (error) {
      chosen = { ...(await engine.useBackend('cpu')), failed: error?.message ?? String(error) };
    }
    return { threads: navigator.hardwareConcurrency || 1, backend: chosen };
  },
  load: ({ models, custom }) => loadModels(models, custom),
  cacheStatus: ({ models }) => cacheStatus(models),
  // Deletes every cached model and data file; the next run downloads them again.
  clearCache: () => caches.delete(CACHE_NAME),
  gridOptions: ({ language }) => gridOptions(language),
  profileOptions: () => profileOptions(),
  detectProfile: ({ hints }) => detectProfile(hints),
  rejudge: ({ report, margin }) => rejudge(report, margin),
  feasibility: ({ report, limits }) => assessFeasibility(report, limits),
  // The engine's wasm memory now: after a run, the run's peak, since it never shrinks.
  memory: () => (engine ? wasmMemoryBytes() : null),
  equivalents: ({ grams, language }) => equivalents(grams, language),
  async run({ tasks, settings, userAgent, grid, profile, hosted, loseGpuAfterItems }) {
    await loadData(tasks);
    // The wasm and its bindings are fetched here, so they are in this worker's timeline.
    // NOTE: Pyodide is fetched by the sandbox's own worker and is not counted.
    settings.runtime_download_bytes += performance.getEntriesByType('resource')
      .filter((entry) => !/\/(models|data)\//.test(new URL(entry.name).pathname))
      .reduce((sum, entry) => sum + (entry.encodedBodySize || entry.transferSize || 0), 0);
    const request = { tasks, settings, userAgent, grid, profile, hosted, loseGpuAfterItems };
    return engine.runEval(request, (event) => post({ type: 'progress', event }), executePython);
  },
  // A user's JSONL file replaces the task's data until `useDefaultData`.
  useData: ({ task, name, bytes }) => engine.addData(task, name, bytes, undefined, true),
  useDefaultData: ({ task }) => engine.clearData(task),
  // Stops the run in progress at its next item; its report then keeps what finished.
  cancel: () => engine?.cancel(),
  embed: ({ texts }) => engine.embed(texts),
  generate: ({ request }) => engine.generate(request, (id, text) => post({ type: 'token', id, text })),
  tokenize: ({ prompt }) => Array.from(engine.tokenizePrompt(prompt)),
  teacherForced: async ({ ids }) => Array.from(await engine.teacherForcedTop1(Uint32Array.from(ids))),
  checkGpuKernels: ({ iterations }) => engine.checkGpuKernels(iterations ?? 0),
};

self.onmessage = async ({ data }) => {
  const { id, type } = data;
  try {
    const handler = handlers[type];
    if (!handler) throw new Error(`unknown worker request ${type}`);
    const result = await handler(data);
    post({ type: 'result', id, result });
  } catch (error) {
    post({ type: 'result', id, error: error?.message ?? String(error) });
  }
};
