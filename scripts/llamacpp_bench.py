#!/usr/bin/env python3
"""llama.cpp peer benchmark, measured the way `sluice bench` measures, printed as JSON.

Usage (a venv with `pip install llama-cpp-python==0.3.36`):
    python scripts/llamacpp_bench.py MODEL.gguf --threads 2 --prompt-tokens 128 --gen-tokens 64 --reps 3

Prefill: one eval of a `prompt-tokens` prompt (token ids 1000.. cycling, like `sluice bench`), timed.
Decode: `gen-tokens` single-token evals, each feeding the argmax of the previous logits, timed.
Reports the median over `reps` runs (a fresh context each run) plus the load time.
"""
import argparse
import json
import statistics
import time

import llama_cpp
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(
        args.model,
        n_ctx=args.prompt_tokens + args.gen_tokens + 8,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=False,
        verbose=False,
    )
    load_s = time.perf_counter() - t0
    n_vocab = llm.n_vocab()
    prompt = [1000 + (i % 1000) for i in range(args.prompt_tokens)]
    prompt = [t % n_vocab for t in prompt]

    runs = []
    for _ in range(args.reps):
        llm.reset()
        llm._ctx.kv_cache_clear()
        t = time.perf_counter()
        llm.eval(prompt)
        prefill = time.perf_counter() - t
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t = time.perf_counter()
        for _ in range(args.gen_tokens):
            llm.eval([token])
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        decode = time.perf_counter() - t
        runs.append((args.prompt_tokens / prefill, args.gen_tokens / decode))

    print(json.dumps({
        "engine": "llama.cpp",
        "llama_cpp_python": llama_cpp.__version__,
        "model": args.model,
        "threads": args.threads,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "reps": args.reps,
        "load_s": round(load_s, 4),
        "prefill_tok_s": round(statistics.median(r[0] for r in runs), 2),
        "decode_tok_s": round(statistics.median(r[1] for r in runs), 2),
        "runs": [{"prefill_tok_s": round(p, 2), "decode_tok_s": round(d, 2)} for p, d in runs],
    }, indent=2))


if __name__ == "__main__":
    main()
