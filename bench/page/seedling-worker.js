// Seedling's wasm engine in a worker, called as www/worker.js calls it. Times are taken
// here, around each call, so they leave out the messages to and from the page.
import './memory-probe.js';
import init, { Engine } from '/pkg/seedling.js';
import { fetchBytes, serve } from './rpc-worker.js';

const MINILM = '/models/files/all-MiniLM-L6-v2/';
const SMOLLM2 = '/models/files/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf';

let engine = null;

serve({
  // Starts the engine on `backend` (`cpu` or `webgpu`) and returns what useBackend reports.
  async init({ backend }) {
    await init();
    engine = new Engine();
    return await engine.useBackend(backend);
  },

  async loadEncoder({ maxLength }) {
    const names = ['model.safetensors', 'tokenizer.json', 'config.json', 'sentence_bert_config.json'];
    const [weights, tokenizer, config, sentence] = await Promise.all(names.map((name) => fetchBytes(MINILM + name)));
    const started = performance.now();
    const records = [{ name: 'all-MiniLM-L6-v2/model.safetensors', sha256: '', bytes: weights.length }];
    const info = engine.loadEncoder(weights, tokenizer, config, sentence, records);
    engine.setMaxLength(maxLength);
    return { ...info, loadMs: performance.now() - started };
  },

  async embed({ texts }) {
    const started = performance.now();
    const embeddings = await engine.embed(texts);
    const ms = performance.now() - started;
    return { ms, tokens: embeddings.map((e) => e.token_ids.length), vector: embeddings[0].vector };
  },

  async loadLlm() {
    const bytes = await fetchBytes(SMOLLM2);
    const started = performance.now();
    const record = { name: 'SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf', sha256: '', bytes: bytes.length };
    const config = engine.loadLlm(bytes, record);
    return { config, loadMs: performance.now() - started, ggufBytes: bytes.length };
  },

  tokenize({ text }) {
    return Array.from(engine.tokenizePrompt(text));
  },

  // Runs the prefill of `promptIds`, then `decodeTokens` greedy steps with end-of-sequence ignored.
  async generate({ promptIds, decodeTokens }) {
    const options = { max_new_tokens: decodeTokens + 1, sampling: { kind: 'greedy' }, stop_at_eos: false };
    const generation = await engine.generate({ promptIds, options }, () => {});
    return {
      prefillMs: generation.prefill_ms,
      decodeMs: generation.decode_ms,
      decodeTokens: generation.token_ids.length - 1,
      tokenIds: generation.token_ids,
    };
  },
});
