// The message loop of the engine workers: bench.js posts {id, method, params}, and the
// worker replies with {id, result} or {id, error}.
export function serve(handlers) {
  self.onmessage = async ({ data: { id, method, params } }) => {
    try {
      const handler = handlers[method];
      if (!handler) throw new Error(`unknown method ${method}`);
      self.postMessage({ id, result: await handler(params ?? {}) });
    } catch (error) {
      self.postMessage({ id, error: error?.stack ?? String(error) });
    }
  };
}

export async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}
