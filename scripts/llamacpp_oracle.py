#!/usr/bin/env python3
"""The llama.cpp anchor: greedy continuations and first-step logits from llama.cpp itself.

Runs the exact reference's prompts (the very token ids recorded in the reference fixture) through
llama-cpp-python: the prompt is evaluated in one batch, then one token at a time; every step takes the
argmax of llama.cpp's logits here, so no sampler is involved. Records the full-vocab logits of the
first step (as f16), the continuation and its top-2 margins, and compares them with the float64
reference (first-step logit correlation, max |difference|, top-1 agreement, greedy agreement length).

How to run (from the repository root; see fixtures/llamacpp/README.md for the exact commands):

    python scripts/llamacpp_oracle.py --model "$(sluice fetch)" \\
        --reference fixtures/reference/smollm2 --out fixtures/llamacpp/smollm2

Output: OUT.json (index: model, versions, llama.cpp options, per-prompt continuation, margins,
comparison with the reference, array offsets) and OUT.bin (little-endian arrays).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import hashlib
import json
import platform
import shlex
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

FORMAT = "sluice-llamacpp-v1"


def pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_array(blob: bytes, desc: dict) -> np.ndarray:
    dt = {"f32": "<f4", "u32": "<u4", "f16": "<f2"}[desc["dtype"]]
    n = int(np.prod(desc["shape"]))
    return np.frombuffer(blob, dtype=dt, count=n, offset=desc["offset"]).reshape(desc["shape"])


def top2(row: np.ndarray) -> tuple[int, float]:
    order = np.argsort(-row, kind="stable")[:2]
    return int(order[0]), float(row[order[0]] - row[order[1]])


def last_logits(llm, vocab: int) -> np.ndarray:
    """llama.cpp's logits for the last evaluated token (float32 copy).

    With logits_all=False, Llama.eval does not fill Llama.scores; read llama_get_logits_ith(-1).
    """
    import llama_cpp

    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.array(np.ctypeslib.as_array(ptr, shape=(vocab,)), dtype=np.float32, copy=True)


def dequantized_check(args, ref: dict, ref_blob: bytes, options: dict) -> dict:
    """Validates the float64 reference against llama.cpp itself on the same weights, dequantized.

    llama.cpp converts the model to all-F32 tensors (llama_model_quantize, LLAMA_FTYPE_ALL_F32;
    ggml's dequantization, not gguf-py's) and runs it with an F32 KV cache, so it computes in
    float32 with no quantized activations. Teacher-forced on ids + the reference continuation, its
    logits at every stored position (top-k and sampled ids) and the first-step full logits are
    compared with the reference. Differences here are float32 rounding only; anything more would
    mean the reference and llama.cpp disagree about the architecture.
    """
    import ctypes
    import tempfile

    import llama_cpp
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    F32 = 0  # GGML_TYPE_F32
    with tempfile.TemporaryDirectory() as tmp:
        f32_path = Path(tmp) / "model-f32.gguf"
        qp = llama_cpp.llama_model_quantize_default_params()
        qp.ftype = llama_cpp.LLAMA_FTYPE_ALL_F32
        qp.allow_requantize = True
        qp.nthread = args.threads
        with suppress_stdout_stderr(disable=False):  # it logs every tensor
            rc = llama_cpp.llama_model_quantize(
                str(args.model).encode(), str(f32_path).encode(), ctypes.byref(qp)
            )
        if rc != 0:
            raise SystemExit(f"error: llama_model_quantize to F32 failed ({rc})")
        opts = dict(options, logits_all=True, type_k=F32, type_v=F32)
        llm = Llama(model_path=str(f32_path), verbose=False, **opts)
        assert llm.n_vocab() == ref["model"]["vocab"]
        sampled = np.asarray(ref["sampled_ids"], dtype=np.int64)
        per_prompt = {}
        for p in ref["prompts"]:
            tokens = list(p["ids"]) + list(p["continuation"])
            n_pos = p["n_positions"]
            llm.reset()
            llm.eval(tokens[: max(n_pos, len(p["ids"]))])
            scores = np.asarray(llm.scores[: llm.n_tokens], dtype=np.float64)
            top_ids = read_array(ref_blob, p["arrays"]["top_ids"]).astype(np.int64)
            top = read_array(ref_blob, p["arrays"]["top_logits"]).astype(np.float64)
            samp = read_array(ref_blob, p["arrays"]["sampled_logits"]).astype(np.float64)
            first = read_array(ref_blob, p["arrays"]["first_step_logits"]).astype(np.float64)
            lc = scores[:n_pos]
            d_top = np.abs(np.take_along_axis(lc, top_ids, axis=1) - top).max()
            d_samp = np.abs(lc[:, sampled] - samp).max()
            d_first = np.abs(scores[len(p["ids"]) - 1] - first).max()
            argmax_agree = all(
                int(np.argmax(lc[i])) == int(top_ids[i, 0]) for i in range(n_pos)
            )
            per_prompt[p["name"]] = {
                "positions": n_pos,
                "max_abs_diff_top": float(d_top),
                "max_abs_diff_sampled": float(d_samp),
                "first_step_max_abs_diff": float(d_first),
                "argmax_agrees_at_all_positions": argmax_agree,
            }
        del llm
    worst = max(max(v["max_abs_diff_top"], v["max_abs_diff_sampled"], v["first_step_max_abs_diff"])
                for v in per_prompt.values())
    return {
        "what": "llama.cpp on the same weights dequantized to F32 (llama_model_quantize"
        " LLAMA_FTYPE_ALL_F32), F32 KV cache, logits_all, teacher-forced on the reference's"
        " ids + continuation, vs the float64 reference at every stored position",
        "options": {k: v for k, v in opts.items()},
        "worst_max_abs_diff": float(worst),
        "prompts": per_prompt,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--reference", required=True, type=Path, help="reference fixture without extension")
    ap.add_argument("--out", required=True, type=Path, help="output path without extension")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--n-batch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-dequantized-check",
        action="store_true",
        help="skip validating the reference against llama.cpp on F32-dequantized weights",
    )
    args = ap.parse_args()

    import llama_cpp
    from llama_cpp import Llama

    t0 = time.time()
    ref = json.loads(args.reference.with_suffix(".json").read_text())
    ref_blob = args.reference.with_suffix(".bin").read_bytes()
    model_sha = sha256_file(args.model)
    if model_sha != ref["model"]["sha256"]:
        raise SystemExit("error: the model is not the one the reference was made from")

    options = dict(
        n_ctx=args.n_ctx,
        n_batch=args.n_batch,
        n_ubatch=args.n_batch,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_gpu_layers=0,
        logits_all=False,
        flash_attn=False,
        type_k=None,
        type_v=None,
        seed=args.seed,
        embedding=False,
        offload_kqv=False,
    )
    llm = Llama(model_path=str(args.model), verbose=False, **options)
    stops = set(ref["options"]["stop_ids"])
    vocab = llm.n_vocab()
    assert vocab == ref["model"]["vocab"], (vocab, ref["model"]["vocab"])
    try:
        system_info = llama_cpp.llama_print_system_info().decode().strip()
    except Exception:  # noqa: BLE001
        system_info = None

    out_prompts = []
    parts: list[bytes] = []
    offset = 0
    table = []
    for p in ref["prompts"]:
        t1 = time.time()
        ids = list(p["ids"])
        llm.reset()
        llm.eval(ids)  # the whole prompt in one batch
        first = last_logits(llm, vocab)
        logits = first
        continuation, margins = [], []
        stop_reason = "length"
        for step in range(args.max_new_tokens):
            tok, margin = top2(logits)
            continuation.append(tok)
            margins.append(margin)
            if tok in stops:
                stop_reason = "stop_token"
                break
            if step + 1 == args.max_new_tokens:
                break
            llm.eval([tok])
            logits = last_logits(llm, vocab)

        # Compare with the float64 reference.
        ref_first = read_array(ref_blob, p["arrays"]["first_step_logits"]).astype(np.float64)
        f = first.astype(np.float64)
        corr = float(np.corrcoef(f, ref_first)[0, 1])
        max_diff = float(np.max(np.abs(f - ref_first)))
        ref_top = int(np.argsort(-ref_first, kind="stable")[0])
        agree = 0
        for a, b in zip(continuation, p["continuation"]):
            if a != b:
                break
            agree += 1
        vs_ref = {
            "first_step_correlation": corr,
            "first_step_max_abs_diff": max_diff,
            "first_step_top1_agrees": ref_top == continuation[0],
            "first_step_margin": margins[0],
            "greedy_agreement": agree,
            "reference_continuation_len": len(p["continuation"]),
        }
        data = np.ascontiguousarray(first, dtype="<f2").tobytes()
        entry = {
            "name": p["name"],
            "kind": p["kind"],
            "ids": ids,
            "continuation": continuation,
            "continuation_text": llm.detokenize(continuation, special=True).decode("utf-8", "replace"),
            "stop_reason": stop_reason,
            "margins": margins,
            "vs_reference": vs_ref,
            "arrays": {"first_step_logits": {"offset": offset, "dtype": "f16", "shape": [vocab]}},
        }
        parts.append(data)
        offset += len(data)
        out_prompts.append(entry)
        table.append((p["name"], vs_ref, len(continuation)))
        print(f"{p['name']:>14}: {len(continuation)} tokens in {time.time() - t1:.1f}s", flush=True)

    print()
    hdr = f"{'prompt':>14} {'corr':>8} {'max|d|':>7} {'top1':>5} {'margin':>7} {'agree':>9}"
    print(hdr)
    for name, v, n in table:
        print(
            f"{name:>14} {v['first_step_correlation']:8.5f} {v['first_step_max_abs_diff']:7.3f}"
            f" {'yes' if v['first_step_top1_agrees'] else 'NO':>5} {v['first_step_margin']:7.3f}"
            f" {v['greedy_agreement']:>3}/{v['reference_continuation_len']:<3}"
        )

    check = None
    if not args.no_dequantized_check:
        del llm
        t2 = time.time()
        check = dequantized_check(args, ref, ref_blob, options)
        print(f"\ndequantized check ({time.time() - t2:.1f}s): llama.cpp on F32 weights, F32 KV,")
        print("teacher-forced, vs the float64 reference (max |diff| over stored positions):")
        for name, v in check["prompts"].items():
            print(
                f"{name:>14} top-k {v['max_abs_diff_top']:.2e}  sampled {v['max_abs_diff_sampled']:.2e}"
                f"  first step {v['first_step_max_abs_diff']:.2e}"
                f"  argmax {'same' if v['argmax_agrees_at_all_positions'] else 'DIFFERS'}"
                f" at {v['positions']} positions"
            )
        print(f"worst: {check['worst_max_abs_diff']:.2e}")

    out_bin = args.out.with_suffix(".bin")
    out_json = args.out.with_suffix(".json")
    blob = b"".join(parts)
    out_bin.parent.mkdir(parents=True, exist_ok=True)
    out_bin.write_bytes(blob)
    recorded = {k: v for k, v in options.items()}
    recorded["type_k"] = "f16 (llama.cpp default)" if options["type_k"] is None else options["type_k"]
    recorded["type_v"] = "f16 (llama.cpp default)" if options["type_v"] is None else options["type_v"]
    index = {
        "format": FORMAT,
        "generator": "scripts/llamacpp_oracle.py",
        "command": " ".join(
            ["python", "scripts/llamacpp_oracle.py"]
            + [shlex.quote(a) if a != str(args.model) else "$MODEL" for a in sys.argv[1:]]
        ),
        "model": {"file": args.model.name, "sha256": model_sha, "vocab": vocab},
        "reference": {
            "file": args.reference.with_suffix(".json").name,
            "binary_sha256": ref["binary"]["sha256"],
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "llama_cpp_python": pkg_version("llama_cpp_python"),
            "llama_cpp": llama_cpp.llama_version().decode(),
            "llama_cpp_system_info": system_info,
        },
        "options": {
            "llama": recorded,
            "evaluation": "prompt ids in one Llama.eval call, then one Llama.eval per generated token;"
            " the next token is the argmax of llama_get_logits_ith(ctx, -1) (ties: smaller id),"
            " no sampler",
            "max_new_tokens": args.max_new_tokens,
            "stop_ids": sorted(stops),
            "first_step_logits_dtype": "f16",
        },
        "layout": (
            "first_step_logits: llama.cpp's full-vocab logits after the prompt (the step choosing"
            " continuation[0]), little-endian f16 at the byte offset in the .bin. margins[i] ="
            " top1 - top2 of llama.cpp's logits at the step that chose continuation[i]."
            " vs_reference compares with the float64 reference fixture (computed from the f32"
            " logits before rounding to f16)."
        ),
        "binary": {"file": out_bin.name, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()},
        "prompts": out_prompts,
        "dequantized_check": check,
        "runtime_s": round(time.time() - t0, 1),
    }
    out_json.write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwrote {out_json} and {out_bin} ({len(blob)} bytes) in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
