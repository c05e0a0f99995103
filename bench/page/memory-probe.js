// Records every WebAssembly.Memory that this thread creates or instantiates, so the
// benchmark can read the engines' wasm heap sizes. A wasm memory never shrinks, so its
// current size is its peak. It is loaded first in each engine's worker, as a module
// import or prepended to the source of wllama's worker by bench.js. Every thread that
// runs it replies to a 'query' on the BroadcastChannel 'seedling-bench-memory' with
// the total size of its memories.
(() => {
  if (self.__benchWasmMemories) return;
  const memories = new Set();
  self.__benchWasmMemories = memories;

  const track = (value) => {
    if (value instanceof WebAssembly.Memory) memories.add(value);
  };
  const trackExports = (instance) => {
    for (const value of Object.values(instance?.exports ?? {})) track(value);
  };

  WebAssembly.Memory = new Proxy(WebAssembly.Memory, {
    construct(target, args, newTarget) {
      const memory = Reflect.construct(target, args, newTarget);
      memories.add(memory);
      return memory;
    },
  });
  WebAssembly.Instance = new Proxy(WebAssembly.Instance, {
    construct(target, args, newTarget) {
      const instance = Reflect.construct(target, args, newTarget);
      trackExports(instance);
      return instance;
    },
  });
  for (const name of ['instantiate', 'instantiateStreaming']) {
    const original = WebAssembly[name];
    WebAssembly[name] = async function (...args) {
      const result = await original.apply(this, args);
      // instantiate(module) resolves to an Instance, instantiate(bytes) to {module, instance}.
      trackExports(result instanceof WebAssembly.Instance ? result : result.instance);
      return result;
    };
  }

  self.__benchWasmBytes = () => {
    let bytes = 0;
    for (const memory of memories) bytes += memory.buffer.byteLength;
    return bytes;
  };
  const channel = new BroadcastChannel('seedling-bench-memory');
  channel.onmessage = (event) => {
    if (event.data === 'query') channel.postMessage({ bytes: self.__benchWasmBytes(), memories: memories.size });
  };
})();
