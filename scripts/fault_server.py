#!/usr/bin/env python3
"""An OpenAI-compatible test server on 127.0.0.1 that injects faults on request.

Each request path picks a scenario and a tag: POST /<scenario>/<tag>/v1/chat/completions.
The tag keeps the state of one test apart from another's (e.g. "429 once, then reply").
GET /<scenario>/<tag>/log returns the requests that tag received, headers included, so a
test can check what the client sent. The first line printed is the server's URL.

Scenarios:
  ok                    replies to every request (streamed or not), with usage
  no-usage              replies without a usage object
  rate-limit-once       429 with Retry-After: 1 on the first request, then replies
  always-429            429 with Retry-After: 0 on every request
  long-retry-after      429 with Retry-After: 3600 (one hour)
  server-error          500 on every request
  server-error-once     503 on the first request, then replies
  malformed             200 with a body that is not JSON
  slow                  waits 3 s before replying
  cut-stream            streams two pieces of text, then closes without [DONE]
  no-cors               replies, but sends no CORS headers and rejects preflight (405)
  unauthorized          401 with an OpenAI error body
  forbidden             403
  unknown-model         404 with an OpenAI error body
  refuse-max-tokens     400 naming max_completion_tokens while the body has max_tokens
"""

import argparse
import http.server
import json
import os
import sys
import threading
import time

REPLY_TEXT = "The answer is 42."

STATE_LOCK = threading.Lock()
COUNTS = {}
LOGS = {}


def error_body(message, kind="invalid_request_error", code=None):
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "SeedlingFaultServer/1"

    def log_message(self, format, *args):
        pass

    def route(self):
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) < 3:
            return None, None, None
        return parts[0], parts[1], "/".join(parts[2:])

    def cors(self, scenario):
        if scenario == "no-cors":
            return
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "authorization, content-type, accept")
        self.send_header("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
        self.send_header("Access-Control-Expose-Headers", "Retry-After")

    def send_json(self, status, body, scenario, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.cors(scenario)
        self.end_headers()
        self.wfile.write(body)

    def do_OPTIONS(self):
        scenario, _, _ = self.route()
        if scenario == "no-cors":
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(204)
        self.cors(scenario)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        scenario, tag, rest = self.route()
        if rest == "log":
            with STATE_LOCK:
                body = json.dumps(LOGS.get((scenario, tag), [])).encode()
            self.send_json(200, body, scenario)
        elif rest == "v1/models":
            body = json.dumps({"object": "list", "data": [{"id": "fault-model", "object": "model"}]})
            self.send_json(200, body.encode(), scenario)
        else:
            self.send_json(404, error_body(f"no route {self.path}"), scenario)

    def do_POST(self):
        scenario, tag, rest = self.route()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            request = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            request = {}
        with STATE_LOCK:
            count = COUNTS.get((scenario, tag), 0)
            COUNTS[(scenario, tag)] = count + 1
            LOGS.setdefault((scenario, tag), []).append(
                {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": request}
            )
        if rest != "v1/chat/completions":
            self.send_json(404, error_body(f"no route {self.path}"), scenario)
            return
        model = request.get("model", "")
        if scenario == "rate-limit-once" and count == 0 or scenario == "always-429":
            wait = "1" if scenario == "rate-limit-once" else "0"
            self.send_json(429, error_body("Rate limit reached", "requests", "rate_limit_exceeded"), scenario,
                           [("Retry-After", wait)])
        elif scenario == "long-retry-after":
            self.send_json(429, error_body("Rate limit reached", "requests"), scenario, [("Retry-After", "3600")])
        elif scenario == "server-error":
            self.send_json(500, error_body("The server had an error", "server_error"), scenario)
        elif scenario == "server-error-once" and count == 0:
            self.send_json(503, b"<html>Service Unavailable</html>", scenario)
        elif scenario == "malformed":
            self.send_json(200, b'{"choices": [', scenario)
        elif scenario == "unauthorized":
            self.send_json(401, error_body("Incorrect API key provided", code="invalid_api_key"), scenario)
        elif scenario == "forbidden":
            self.send_json(403, error_body("Project does not have access to this model"), scenario)
        elif scenario == "unknown-model":
            self.send_json(404, error_body(f"The model `{model}` does not exist", code="model_not_found"), scenario)
        elif scenario == "refuse-max-tokens" and "max_tokens" in request:
            message = ("Unsupported parameter: 'max_tokens' is not supported with this model. "
                       "Use 'max_completion_tokens' instead.")
            self.send_json(400, error_body(message, code="unsupported_parameter"), scenario)
        else:
            if scenario == "slow":
                time.sleep(3)
            self.send_completion(scenario, request)

    def send_completion(self, scenario, request):
        model = request.get("model", "fault-model")
        usage = {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}
        if not request.get("stream"):
            body = {
                "id": "chatcmpl-fault", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY_TEXT},
                             "finish_reason": "stop"}],
            }
            if scenario != "no-usage":
                body["usage"] = usage
            self.send_json(200, json.dumps(body).encode(), scenario)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.cors(scenario)
        self.end_headers()

        def event(payload):
            self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()

        def chunk(content, finish=None):
            return {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {"content": content} if content else {},
                                 "finish_reason": finish}]}

        pieces = ["The answer", " is", " 42."]
        if scenario == "cut-stream":
            for piece in pieces[:2]:
                event(chunk(piece))
                time.sleep(0.05)
            self.close_connection = True
            return
        for piece in pieces:
            event(chunk(piece))
            time.sleep(0.02)
        event(chunk(None, "stop"))
        include_usage = (request.get("stream_options") or {}).get("include_usage")
        if include_usage and scenario != "no-usage":
            event({"id": "chatcmpl-fault", "object": "chat.completion.chunk", "model": model,
                   "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that timed out or was cancelled closes its connection mid-reply; that is expected here.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--exit-with-stdin", action="store_true",
                        help="exit when standard input closes, i.e. when the process that started it ends")
    args = parser.parse_args()
    if args.exit_with_stdin:
        def wait_for_eof():
            sys.stdin.buffer.read()
            os._exit(0)
        threading.Thread(target=wait_for_eof, daemon=True).start()
    server = Server(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
