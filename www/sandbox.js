// PythonSandbox runs Python programs in Pyodide inside a dedicated worker
// (python-worker.js) and cuts each one off after a time limit by terminating that
// worker. It works from the page and from inside another worker.
//
//   const sandbox = new PythonSandbox();
//   const { outcome, detail, ms } = await sandbox.run(program, 3000);
//   // outcome: 'passed' (no exception), 'failed' (detail: 'Type: message'),
//   // or 'timed out'
//   sandbox.terminate();
//
// Calls run one at a time in call order. One worker serves consecutive programs
// while it behaves. After a timeout, a crash or a Pyodide fatal error the worker
// is terminated and the next call starts a fresh one, which loads Pyodide again
// (about 2 s to 5 s, outside the program's time limit).

export const DEFAULT_LOAD_TIMEOUT_MS = 60_000;

const OUTCOMES = new Set(['passed', 'failed']);

export class PythonSandbox {
  #workerUrl;
  #loadTimeoutMs;
  #session = null;
  #nextId = 1;
  #queue = Promise.resolve();

  // `loadTimeoutMs` limits the start of a worker and Pyodide's load, which do not
  // count toward any program's time limit.
  constructor(workerUrl = new URL('./python-worker.js', import.meta.url), { loadTimeoutMs = DEFAULT_LOAD_TIMEOUT_MS } = {}) {
    if (!(Number.isFinite(loadTimeoutMs) && loadTimeoutMs > 0)) {
      throw new RangeError(`loadTimeoutMs must be a positive number of milliseconds, got ${loadTimeoutMs}`);
    }
    this.#workerUrl = new URL(workerUrl, globalThis.location?.href);
    this.#loadTimeoutMs = loadTimeoutMs;
  }

  // Starts the worker and loads Pyodide unless that is done. Resolves to
  // {pyodide, python, ms}: the Pyodide and Python versions and the load time.
  // Rejects with an Error naming the URL when the worker or Pyodide cannot load.
  load() {
    return this.#enqueue(async () => (await this.#readySession()).info);
  }

  // Runs `program` with exec() in a fresh globals dict and resolves to
  // {outcome, detail, ms, stdout, stderr}. `ms` is the time from sending the
  // program to its result. It does not include loading Pyodide.
  run(program, timeoutMs) {
    if (typeof program !== 'string') throw new TypeError(`program must be a string, got ${typeof program}`);
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
      throw new RangeError(`timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
    }
    return this.#enqueue(() => this.#runNow(program, timeoutMs));
  }

  // Stops the worker now. A call in progress rejects, and a later call starts a
  // fresh worker.
  terminate() {
    const session = this.#session;
    this.#session = null;
    if (!session) return;
    session.worker.terminate();
    session.port.close();
    session.pending?.settle({ kind: 'terminated' });
  }

  #enqueue(task) {
    const result = this.#queue.then(task);
    this.#queue = result.catch(() => {});
    return result;
  }

  async #runNow(program, timeoutMs) {
    const session = await this.#readySession();
    const id = this.#nextId++;
    const started = performance.now();
    session.port.postMessage({ id, program });
    const result = await waitFor(session, timeoutMs, (data) => data?.id === id);
    const ms = performance.now() - started;

    if (result.kind === 'terminated') throw new Error('the Python sandbox was terminated during the run');
    if (result.kind === 'timeout') {
      this.#discard(session);
      return { outcome: 'timed out', detail: `no result within ${timeoutMs} ms, so the worker was terminated`, ms, stdout: '', stderr: '' };
    }
    if (result.kind === 'failure') {
      this.#discard(session);
      return { outcome: 'failed', detail: `the Python worker stopped: ${result.reason}`, ms, stdout: '', stderr: '' };
    }

    const { outcome, detail, stdout, stderr, fatal } = result.data;
    if (!OUTCOMES.has(outcome)) {
      this.#discard(session);
      return { outcome: 'failed', detail: `the Python worker sent an invalid outcome ${JSON.stringify(outcome)}`, ms, stdout: '', stderr: '' };
    }
    if (fatal) this.#discard(session);
    return { outcome, detail: String(detail ?? ''), ms, stdout: String(stdout ?? ''), stderr: String(stderr ?? '') };
  }

  // Returns a session whose worker has loaded Pyodide, starting one if needed.
  async #readySession() {
    if (this.#session?.info && !this.#session.failure) return this.#session;
    if (this.#session) this.#discard(this.#session);

    const session = startSession(this.#workerUrl);
    this.#session = session;
    const deadline = performance.now() + this.#loadTimeoutMs;
    for (;;) {
      const result = await waitFor(session, deadline - performance.now(), (data) => typeof data?.type === 'string');
      if (result.kind === 'terminated') throw new Error('the Python sandbox was terminated while Pyodide was loading');
      if (result.kind === 'timeout') {
        this.#discard(session);
        const where = session.indexURL ?? `the worker ${this.#workerUrl.href}`;
        throw new Error(`Pyodide did not load from ${where} within ${this.#loadTimeoutMs / 1000} s`);
      }
      if (result.kind === 'failure') {
        this.#discard(session);
        throw new Error(`could not start the Python sandbox worker ${this.#workerUrl.href}: ${result.reason}`);
      }
      const message = result.data;
      if (message.type === 'loading') session.indexURL = message.indexURL;
      if (message.type === 'load-failed') {
        this.#discard(session);
        throw new Error(message.detail);
      }
      if (message.type === 'ready') {
        session.info = { pyodide: message.pyodide, python: message.python, ms: message.ms };
        return session;
      }
    }
  }

  #discard(session) {
    if (this.#session === session) this.#session = null;
    session.worker.terminate();
    session.port.close();
  }
}

// Creates the worker and hands it the private MessagePort it replies on.
function startSession(workerUrl) {
  const worker = new Worker(workerUrl, { type: 'module', name: 'python-sandbox' });
  const channel = new MessageChannel();
  const session = { worker, port: channel.port1, indexURL: null, info: null, failure: null, pending: null };

  worker.addEventListener('error', (event) => {
    // Handled here, so the error does not also reach the owner's global onerror.
    event.preventDefault();
    session.failure = describeWorkerError(event);
    session.pending?.settle({ kind: 'failure', reason: session.failure });
  });
  worker.addEventListener('messageerror', () => {
    session.failure = 'a message from the worker could not be deserialized';
    session.pending?.settle({ kind: 'failure', reason: session.failure });
  });
  channel.port1.onmessage = (event) => session.pending?.receive(event.data);
  worker.postMessage({ type: 'connect' }, [channel.port2]);
  return session;
}

// Waits for the first message that `accept` takes, a worker failure, or
// `timeoutMs`, and resolves to {kind: 'message', data}, {kind: 'failure', reason},
// {kind: 'timeout'} or {kind: 'terminated'}.
function waitFor(session, timeoutMs, accept) {
  if (session.failure) return Promise.resolve({ kind: 'failure', reason: session.failure });
  return new Promise((resolve) => {
    const timer = setTimeout(() => settle({ kind: 'timeout' }), Math.max(0, timeoutMs));
    const settle = (result) => {
      clearTimeout(timer);
      session.pending = null;
      resolve(result);
    };
    session.pending = {
      settle,
      receive: (data) => {
        if (accept(data)) settle({ kind: 'message', data });
      },
    };
  });
}

function describeWorkerError(event) {
  if (event.message) return event.message;
  // Chromium's error event has no message when a module worker's script fails to load.
  return 'the worker script failed to load or to run (check that its URL serves JavaScript)';
}
