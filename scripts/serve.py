#!/usr/bin/env python3
"""Serve the page on 127.0.0.1: `www/` at `/`, plus `models/`, `data/` and Pyodide beside it.

Sends the headers the page needs: `application/wasm` for WebAssembly, cross-origin
isolation (COOP/COEP) so a later multi-threaded build can use SharedArrayBuffer, a
Content Security Policy, and `no-cache` so a rebuilt page is picked up on reload.
"""

import argparse
import http.server
import sys
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOUNTS = {
    "/models/": ROOT / "models",
    "/data/": ROOT / "data",
    # Pyodide from the npm package, loaded by www/python-worker.js.
    "/vendor/pyodide/": ROOT / "node_modules" / "pyodide",
    # Chart.js from the npm package, loaded by index.html.
    "/vendor/chart.js/": ROOT / "node_modules" / "chart.js" / "dist",
    # Worker scripts of the browser tests, which the page's policy admits only from
    # this origin. `./build.sh dist` leaves them out.
    "/test-scaffold/": ROOT / "tests" / "browser" / "scaffold",
}

# Content Security Policy of the Python sandbox worker. A worker takes its CSP
# from its own script response. This policy keeps the worker's programs from
# reaching other hosts (connect, fonts, images), from loading scripts with
# import() or eval, and from starting workers, even through JavaScript objects
# that python-worker.js cannot replace. The worker still loads Pyodide's files
# from this origin and compiles its WebAssembly.
PYTHON_WORKER_PATH = "/python-worker.js"
PYTHON_WORKER_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'none'"

# Content Security Policy of the page and of its inference worker. Scripts, styles,
# workers and WebAssembly come from this origin only, with no inline code or eval.
# Connections may go to this origin, to any HTTPS origin and to loopback, because the
# user types in the hosted API's URL. The client itself connects only to that URL.
PAGE_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self' https: http://127.0.0.1:* http://localhost:*",
    "worker-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])


def static_host_headers() -> str:
    """Formats the headers above as a `_headers` file for Netlify and Cloudflare Pages."""
    common = [
        "  Cross-Origin-Opener-Policy: same-origin",
        "  Cross-Origin-Embedder-Policy: require-corp",
    ]
    lines = ["/*", *common, f"  Content-Security-Policy: {PAGE_CSP}", ""]
    lines += [PYTHON_WORKER_PATH, "  ! Content-Security-Policy",
              f"  Content-Security-Policy: {PYTHON_WORKER_CSP}", ""]
    lines += ["/*.wasm", "  Content-Type: application/wasm", ""]
    return "\n".join(lines)


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".zip": "application/zip",
        ".jsonl": "application/x-ndjson",
        ".gguf": "application/octet-stream",
        ".safetensors": "application/octet-stream",
    }

    def translate_path(self, path):
        clean = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, folder in MOUNTS.items():
            if clean.startswith(prefix):
                target = (folder / clean[len(prefix):]).resolve()
                # Refuse paths that climb out of the mounted folder.
                if folder.resolve() in target.parents or target == folder.resolve():
                    return str(target)
                return str(ROOT / "www" / "__not_found__")
        return super().translate_path(path)

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        if self.path.split("?", 1)[0].split("#", 1)[0] == PYTHON_WORKER_PATH:
            self.send_header("Content-Security-Policy", PYTHON_WORKER_CSP)
        else:
            self.send_header("Content-Security-Policy", PAGE_CSP)
        super().end_headers()

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="TCP port on 127.0.0.1 (default 8080)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument("--headers", action="store_true",
                        help="print these headers as a static host's _headers file and exit")
    args = parser.parse_args()
    if args.headers:
        print(static_host_headers(), end="")
        return 0

    handler = partial(Handler, directory=str(ROOT / "www"))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    except OSError as error:
        print(f"serve: cannot listen on 127.0.0.1:{args.port}: {error}. "
              f"Pick another port with PORT=8081 ./build.sh serve", file=sys.stderr)
        return 1
    server.verbose = not args.quiet
    print(f"Seedling is served at http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
