// A static file server on 127.0.0.1 for the benchmark page: the page itself, Seedling's
// wasm build, the model files and the peers' files from node_modules. Every response is
// cross-origin isolated (COOP and COEP), so the multi-threaded builds of wllama and
// ONNX Runtime Web can use SharedArrayBuffer.
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

// URL prefix to folder. Only these folders are served.
const MOUNTS = [
  ['/bench/', 'bench/page'],
  ['/pkg/', 'www/pkg'],
  ['/models/files/', 'models/files'],
  ['/bench-models/', '.cache/bench/models'],
  ['/node_modules/@huggingface/transformers/dist/', 'node_modules/@huggingface/transformers/dist'],
  ['/node_modules/onnxruntime-web/dist/', 'node_modules/onnxruntime-web/dist'],
  ['/node_modules/@wllama/wllama/esm/', 'node_modules/@wllama/wllama/esm'],
  ['/node_modules/wllama-2/esm/', 'node_modules/wllama-2/esm'],
];

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
};

function resolvePath(pathname) {
  for (const [prefix, folder] of MOUNTS) {
    if (!pathname.startsWith(prefix)) continue;
    const base = resolve(ROOT, folder);
    const target = resolve(base, decodeURIComponent(pathname.slice(prefix.length)));
    // Reject paths that climb out of the mounted folder.
    return target === base || target.startsWith(base + sep) ? target : null;
  }
  return null;
}

function handle(request, response) {
  const headers = {
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Embedder-Policy': 'require-corp',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Cache-Control': 'no-store',
  };
  const { pathname } = new URL(request.url, 'http://127.0.0.1');
  const path = resolvePath(pathname.endsWith('/') ? `${pathname}index.html` : pathname);
  let stat = null;
  try {
    stat = path && statSync(path);
  } catch {
    stat = null;
  }
  if (!stat?.isFile()) {
    response.writeHead(404, { ...headers, 'Content-Type': 'text/plain' });
    response.end(`not found: ${pathname}\n`);
    return;
  }
  response.writeHead(200, {
    ...headers,
    'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream',
    'Content-Length': stat.size,
  });
  if (request.method === 'HEAD') {
    response.end();
    return;
  }
  createReadStream(path).pipe(response);
}

// Starts the server on a free port of 127.0.0.1 and resolves to `{url, close}`.
export async function startBenchServer() {
  const server = createServer(handle);
  await new Promise((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', done);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/bench/`,
    close: () => new Promise((done) => server.close(done)),
  };
}
