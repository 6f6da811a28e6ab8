#!/usr/bin/env python3
"""`sluice bench` beside llama.cpp b11434's `llama-bench`, in one run, printed as JSON with ratios.

Usage:
    python3 scripts/compare-llama.py MODEL.gguf [--threads 2] [--prompt-tokens 128]
        [--gen-tokens 64] [--rounds 3] [--sluice target/release/sluice] [--llama-bench PATH]
        [--sluice-arg=--matmul=exact ...] [--roofline] [--no-repack-too]

The two run alternately (sluice, llama-bench, sluice, ...) for `--rounds` rounds on the same file
with the same threads and lengths, so drift in the machine (thermal, neighbours) hits both alike.
Each side reports the median of its rounds; ratios are sluice / llama.cpp (above 1: sluice faster).
`llama-bench` comes from scripts/build-llama-bench.sh (its path is found in the user cache when not
given). Not part of the test command: it measures speed, which tests must not.

With --roofline, every sluice round also measures decode's memory roofline (`sluice bench
--roofline`: the weight bytes a token reads ÷ the read bandwidth over the mapped model with the same
threads), and both sides' decode is reported as a fraction of its median.

With --no-repack-too, each round also runs `llama-bench --repack 0` (the weights used as stored in
the file, as sluice does; by default llama.cpp repacks Q4_0 and Q4_K into 8-row interleaved layouts
at load on AVX2 CPUs), reported beside the default for information; the ratios stay against the
default.
"""
import argparse
import json
import os
import statistics
import signal
import subprocess
import sys


def default_llama_bench():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "sluice", "llama.cpp-b11434", "src", "llama.cpp", "build", "bin",
                        "llama-bench")


def run_json(cmd):
    """Runs `cmd`, returns its stdout parsed as JSON; on failure says what ran and what it said."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        hint = ""
        if proc.returncode == -signal.SIGILL:
            hint = ("\nSIGILL: this build uses instructions the machine cannot run (ggml's AMX kernels "
                    "fault on some VMs); rebuild with LLAMA_NO_AMX=1 LLAMA_REBUILD=1 "
                    "bash scripts/build-llama-bench.sh")
        sys.exit(f"compare-llama: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}{hint}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        sys.exit(f"compare-llama: {cmd[0]} printed no JSON ({e}):\n{proc.stdout[-2000:]}")


def sluice_round(args):
    out = run_json([args.sluice, "bench", "--model", args.model, "--threads", str(args.threads),
                    "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens",
                    str(args.gen_tokens), "--reps", "1", *(["--roofline"] if args.roofline else []),
                    *args.sluice_arg])
    found = {"prefill_tok_s": out["prefill_tok_s"], "decode_tok_s": out["decode_tok_s"]}
    if args.roofline:
        found["read_gb_s"] = out["roofline"]["read_gb_s"]
        found["roofline_tok_s"] = out["roofline"]["roofline_tok_s"]
        found["weight_bytes_per_token"] = out["roofline"]["weight_bytes_per_token"]
    return found


def llama_round(args, repack=1):
    entries = run_json([args.llama_bench, "-m", args.model, "-t", str(args.threads), "-p",
                        str(args.prompt_tokens), "-n", str(args.gen_tokens), "-r", "1",
                        "--repack", str(repack), "-o", "json"])
    found = {}
    for e in entries:
        if e.get("n_prompt", 0) > 0 and e.get("n_gen", 0) == 0:
            found["prefill_tok_s"] = e["avg_ts"]
        elif e.get("n_gen", 0) > 0 and e.get("n_prompt", 0) == 0:
            found["decode_tok_s"] = e["avg_ts"]
    if len(found) != 2:
        sys.exit(f"compare-llama: llama-bench JSON lacks a prompt or a generation entry: {entries}")
    return found


def summary(rounds, keys=("prefill_tok_s", "decode_tok_s")):
    return {
        key: {"median": statistics.median(r[key] for r in rounds),
              "rounds": [round(r[key], 2) for r in rounds]}
        for key in keys
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sluice", default=os.path.join("target", "release", "sluice"))
    ap.add_argument("--llama-bench", default=default_llama_bench())
    ap.add_argument("--roofline", action="store_true",
                    help="also measure decode's memory roofline and report both as fractions of it")
    ap.add_argument("--no-repack-too", action="store_true",
                    help="also run llama-bench with --repack 0 (weights used as stored, as sluice "
                         "does), reported for information beside the default")
    ap.add_argument("--sluice-arg", action="append", default=[],
                    help="an extra argument for `sluice bench` (repeatable)")
    args = ap.parse_args()
    for path, how in ((args.sluice, "cargo build --release -p sluice-cli"),
                      (args.llama_bench, "bash scripts/build-llama-bench.sh")):
        if not os.access(path, os.X_OK):
            sys.exit(f"compare-llama: {path} is not an executable; build it with `{how}`")
    if not os.path.isfile(args.model):
        sys.exit(f"compare-llama: no model file at {args.model}")

    ours, theirs, unpacked = [], [], []
    for i in range(args.rounds):
        ours.append(sluice_round(args))
        theirs.append(llama_round(args))
        if args.no_repack_too:
            unpacked.append(llama_round(args, repack=0))
        print(f"compare-llama: round {i + 1}/{args.rounds}: sluice {ours[-1]} llama.cpp {theirs[-1]}"
              + (f" llama.cpp --repack 0 {unpacked[-1]}" if unpacked else ""), file=sys.stderr)
    s, l = summary(ours), summary(theirs)
    report = {
        "model": os.path.basename(args.model),
        "threads": args.threads,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "rounds": args.rounds,
        "sluice_args": args.sluice_arg,
        "sluice": s,
        "llama_cpp_b11434": l,
        "ratio_prefill": round(s["prefill_tok_s"]["median"] / l["prefill_tok_s"]["median"], 3),
        "ratio_decode": round(s["decode_tok_s"]["median"] / l["decode_tok_s"]["median"], 3),
    }
    if unpacked:
        # llama.cpp repacks Q4_0 and Q4_K (not Q4_1) into 8-row interleaved layouts at load on
        # AVX2 CPUs; this is the same build reading the weights as stored.
        u = summary(unpacked)
        report["llama_cpp_b11434_repack_0"] = u
        report["ratio_prefill_vs_repack_0"] = round(
            s["prefill_tok_s"]["median"] / u["prefill_tok_s"]["median"], 3)
        report["ratio_decode_vs_repack_0"] = round(
            s["decode_tok_s"]["median"] / u["decode_tok_s"]["median"], 3)
    if args.roofline:
        r = summary(ours, ("read_gb_s", "roofline_tok_s"))
        roof = r["roofline_tok_s"]["median"]
        report["roofline"] = {
            "weight_bytes_per_token": ours[0]["weight_bytes_per_token"],
            "read_gb_s": r["read_gb_s"],
            "roofline_tok_s": r["roofline_tok_s"],
            "sluice_decode_fraction": round(s["decode_tok_s"]["median"] / roof, 3),
            "llama_cpp_decode_fraction": round(l["decode_tok_s"]["median"] / roof, 3),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
