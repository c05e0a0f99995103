// transformers.js (its ONNX Runtime Web WASM back end) in a worker, with every file
// served from this origin. Times are taken here, around each call.
import './memory-probe.js';
import { env, pipeline } from '/node_modules/@huggingface/transformers/dist/transformers.js';
import { serve } from './rpc-worker.js';

// transformers.js 4.3.1 bundles the WebGPU build of ONNX Runtime Web, which loads
// these two files (its default is a CDN).
const ORT_DIST = new URL('/node_modules/onnxruntime-web/dist/', self.location.href).href;

let extractor = null;

serve({
  // `model` is a folder under /bench-models/, and `dtype` is fp32 or q8.
  async init({ model, dtype, threads }) {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = '/bench-models/';
    env.useBrowserCache = false;
    env.backends.onnx.wasm.wasmPaths = {
      mjs: `${ORT_DIST}ort-wasm-simd-threaded.asyncify.mjs`,
      wasm: `${ORT_DIST}ort-wasm-simd-threaded.asyncify.wasm`,
    };
    env.backends.onnx.wasm.numThreads = threads;
    const started = performance.now();
    extractor = await pipeline('feature-extraction', model, { dtype, device: 'wasm' });
    return {
      loadMs: performance.now() - started,
      version: env.version,
      onnxruntimeWeb: env.backends.onnx.versions?.web ?? null,
      threads: env.backends.onnx.wasm.numThreads,
    };
  },

  // Returns the token count of each text after padding, as the pipeline gives them to the model.
  tokenCounts({ texts }) {
    const encoded = extractor.tokenizer(texts, { padding: true, truncation: true });
    const [batch, length] = encoded.input_ids.dims;
    return Array.from({ length: batch }, () => length);
  },

  async embed({ texts }) {
    const started = performance.now();
    const output = await extractor(texts, { pooling: 'mean', normalize: true });
    const ms = performance.now() - started;
    const hidden = output.dims[1];
    return { ms, vector: Array.from(output.data.slice(0, hidden)) };
  },
});
