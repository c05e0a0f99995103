#!/usr/bin/env python3
"""Time llama.cpp's prefill and greedy decode of a GGUF model and print one JSON object.

The peer of `seedling bench llm` in ./build.sh bench: the same prompt token ids,
the prompt evaluated as one batch, then one token at a time, with the next
token chosen by argmax (ties to the lowest id) and end-of-sequence ignored.
It runs on llama-cpp-python, so each token also pays for a Python call into
the C API and a NumPy argmax over the vocabulary (about a tenth of a
millisecond on the machine in BENCHMARKS.md).

Run it with the virtual environment that ./build.sh test builds:

    .cache/venv-llama/bin/python bench/llama_cpp_bench.py --model FILE.gguf \
        --threads 1 --prompt-ids 1,2,3 --decode-tokens 128 --runs 5
"""

import argparse
import json
import sys
import time

import llama_cpp
import numpy as np


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process (VmHWM), where /proc is available."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def last_argmax(llm: llama_cpp.Llama) -> int:
    """Returns the most likely token after the last evaluated one, from the C API's
    logits, because Llama.eval keeps no logits unless logits_all is set."""
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
    return int(np.argmax(logits))


def generate(llm: llama_cpp.Llama, prompt_ids: list[int], decode_tokens: int) -> dict:
    llm.reset()
    started = time.perf_counter()
    llm.eval(prompt_ids)
    token = last_argmax(llm)
    prefill_ms = (time.perf_counter() - started) * 1000
    generated = [token]

    started = time.perf_counter()
    for _ in range(decode_tokens):
        llm.eval([token])
        token = last_argmax(llm)
        generated.append(token)
    decode_ms = (time.perf_counter() - started) * 1000
    return {"prefill_ms": prefill_ms, "decode_ms": decode_ms, "decode_tokens": decode_tokens, "token_ids": generated}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="GGUF file")
    parser.add_argument("--threads", type=int, default=1, help="threads for prompt and decode (default 1)")
    parser.add_argument("--prompt-ids", required=True, help="prompt token ids, comma-separated")
    parser.add_argument("--decode-tokens", type=int, default=128,
                        help="tokens decoded one at a time after the first generated token (default 128)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones (default 1)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    args = parser.parse_args()

    try:
        prompt_ids = [int(part) for part in args.prompt_ids.split(",")]
    except ValueError:
        parser.error(f"invalid --prompt-ids {args.prompt_ids!r}: give comma-separated integers, e.g. 1,2,3")
    if args.threads < 1:
        parser.error(f"invalid --threads {args.threads}: give at least 1")

    started = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=len(prompt_ids) + args.decode_tokens + 8,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    load_ms = (time.perf_counter() - started) * 1000

    runs = []
    for index in range(args.warmup + args.runs):
        result = generate(llm, prompt_ids, args.decode_tokens)
        if index >= args.warmup:
            runs.append(result)

    report = {
        "workload": "llm",
        "engine": "llama.cpp",
        "llama_cpp_python": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        "threads": args.threads,
        "load_ms": load_ms,
        "prompt_ids": prompt_ids,
        "runs": runs,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
