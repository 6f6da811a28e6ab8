#!/usr/bin/env python3
"""The exact reference: an independent float64 forward pass of a llama-family GGUF model.

Writes an oracle for the Rust engine's exact path: for every fixture prompt, the greedy continuation
(argmax of float64 logits), the top-2 margin at each step, the logits at the first positions of
prompt + continuation (top-k and a fixed random sample of vocab ids per position) and the full
logits of the first generation step.

Nothing here comes from the Rust code: the GGUF is read with `gguf.GGUFReader`, every tensor is
dequantized with `gguf.quants.dequantize` and widened to float64, and the forward pass below is a
plain numpy transcription of the llama / qwen2 / qwen3 / gemma3 architectures as llama.cpp defines
them (llama shown; the others' differences below):

    x = token_embd[id]
    per layer:  h = rmsnorm(x) * attn_norm
                q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)
                rope(q), rope(k)   theta_i = (pos / linear_scale) * base^(-2i / rope_dim)
                                   pairs (2i, 2i+1) for llama, halves (i, i + rope_dim/2) for qwen2
                x += softmax(q k^T / sqrt(head_dim) + causal mask) v   Wo^T   (GQA: q head h reads
                                                                             kv head h // (H/Hkv))
                h = rmsnorm(x) * ffn_norm
                x += (silu(h Wgate^T) * (h Wup^T)) Wdown^T
    logits = (rmsnorm(x) * output_norm) Wout^T      Wout = output.weight, else token_embd.weight

with rmsnorm(x) = x / sqrt(mean(x^2) + eps). Every value after dequantization is float64.

    qwen2:  q/k/v biases; RoPE pairs are the NeoX halves.
    qwen3:  NeoX halves; q and k are RMS-normed per head (attn_q_norm, attn_k_norm) before RoPE.
    gemma3: x = token_embd[id] * sqrt(dim); NeoX halves; per-head q/k norms; the attention output
            and the MLP output are RMS-normed (post_attention_norm, post_ffw_norm) before each joins
            x; the MLP is gelu_tanh(h Wgate^T) * (h Wup^T); layer i is a sliding-window layer
            unless i % 6 == 5 (attention.sliding_window_pattern when given): it sees keys with
            pos_q - pos_k < attention.sliding_window and rotates with base 10000
            (rope.freq_base_swa when given); the others see everything and use rope.freq_base.
            The file's norm weights already hold Gemma's (1 + w) (llama.cpp's converter adds it).
    llama with rope_freqs.weight (Llama 3.x): pair i's frequency is divided by rope_freqs[i].
    rope.scaling.type yarn: ggml's rope_yarn (a ramp between the correction dims of beta_fast 32
            and beta_slow 1 over rope.scaling.original_context_length mixes the interpolated and
            the original angle; cos and sin times attn_factor * (1 + 0.1 ln(factor))).
    rope_factors_long/short (Phi-3): the long divisors when the context (--context, default the
            model's context_length) exceeds rope.scaling.original_context_length, else the short;
            cos and sin times rope.scaling.attn_factor.
    phi3:   NeoX halves; q, k, v are rows 0.., H*hd.., (H+Hkv)*hd.. of one attn_qkv, and gate, up
            the first and second halves of ffn_up's rows (when the file fuses them).

How to run (from the repository root; see fixtures/reference/README.md for the exact commands):

    python scripts/reference_forward.py --model "$(sluice fetch)" \\
        --prompts fixtures/reference/prompts.json --out fixtures/reference/smollm2

Text prompts are tokenized by llama.cpp's tokenizer (llama-cpp-python, vocab_only), chat prompts are
first rendered with jinja2 from the GGUF's `tokenizer.chat_template`. Prompts given as raw id lists
(`"kind": "ids"`) need neither.

Output: OUT.json (index: model, versions, options, per-prompt ids, continuation, margins, and the
byte offset, dtype and shape of each array) and OUT.bin (the arrays, little-endian f32 / u32).
"""

from __future__ import annotations

import os

# One BLAS thread: the products here are small matrix-vector ones, where extra BLAS threads only
# spin (8x slower on a busy 2-core machine). Results do not depend on it beyond float64 rounding.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import hashlib
import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

FORMAT = "sluice-reference-v1"
SUPPORTED_ARCHS = ("llama", "qwen2", "qwen3", "gemma3", "phi3")
# Token texts that end a turn, besides the GGUF's eos/eot ids.
STOP_TEXTS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>")


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


# ---------------------------------------------------------------------------------------------
# Model


class Gguf:
    """Metadata and float64 tensors of a GGUF file."""

    def __init__(self, path: Path):
        self.reader = GGUFReader(str(path))
        self.fields = {k: f for k, f in self.reader.fields.items()}
        self.tensors = {t.name: t for t in self.reader.tensors}

    def get(self, key: str, default=None):
        f = self.fields.get(key)
        return default if f is None else f.contents()

    def require(self, key: str):
        v = self.get(key)
        if v is None:
            raise SystemExit(f"error: metadata key {key} is missing")
        return v

    def tensor(self, name: str) -> np.ndarray:
        """The tensor as float64, numpy shape = reversed GGUF dims (rows, ne0)."""
        t = self.tensors[name]
        shape = tuple(int(d) for d in reversed([int(x) for x in t.shape]))
        values = dequantize(t.data, t.tensor_type)
        return np.asarray(values, dtype=np.float64).reshape(shape)

    def has(self, name: str) -> bool:
        return name in self.tensors


@dataclass
class Layer:
    attn_norm: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    bq: np.ndarray | None
    bk: np.ndarray | None
    bv: np.ndarray | None
    wo: np.ndarray
    ffn_norm: np.ndarray
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray
    q_norm: np.ndarray | None = None
    k_norm: np.ndarray | None = None
    post_attn_norm: np.ndarray | None = None
    post_ffn_norm: np.ndarray | None = None
    # RoPE base and window (0: none) of this layer.
    rope_base: float = 10000.0
    window: int = 0


class Model:
    def __init__(self, g: Gguf):
        arch = g.require("general.architecture")
        if arch not in SUPPORTED_ARCHS:
            raise SystemExit(f"error: architecture {arch!r} is not supported (only {SUPPORTED_ARCHS})")
        self.arch = arch
        a = arch
        self.n_layer = int(g.require(f"{a}.block_count"))
        self.dim = int(g.require(f"{a}.embedding_length"))
        self.n_head = int(g.require(f"{a}.attention.head_count"))
        self.n_head_kv = int(g.get(f"{a}.attention.head_count_kv", self.n_head))
        self.head_dim = int(g.get(f"{a}.attention.key_length", self.dim // self.n_head))
        value_length = int(g.get(f"{a}.attention.value_length", self.head_dim))
        if value_length != self.head_dim:
            raise SystemExit("error: attention.value_length != key_length is not supported")
        self.eps = float(g.require(f"{a}.attention.layer_norm_rms_epsilon"))
        self.rope_base = float(g.get(f"{a}.rope.freq_base", 10000.0))
        self.rope_dim = int(g.get(f"{a}.rope.dimension_count", self.head_dim))
        scaling_type = g.get(f"{a}.rope.scaling.type")
        factor = g.get(f"{a}.rope.scaling.factor")
        if scaling_type not in (None, "none", "linear", "llama3", "yarn"):
            raise SystemExit(f"error: rope scaling {scaling_type!r} is not supported")
        if scaling_type in ("none", "llama3") or factor is None or float(factor) == 0.0:
            self.rope_scale = 1.0
        else:
            self.rope_scale = float(factor)
        # Llama 3.x scaling: pair i's frequency is divided by rope_freqs[i] (ggml's freq_factors).
        self.rope_freqs = g.tensor("rope_freqs.weight").reshape(-1) if g.has("rope_freqs.weight") else None
        if scaling_type == "llama3" and self.rope_freqs is None:
            raise SystemExit("error: rope.scaling.type llama3 without rope_freqs.weight")
        # Phi-3 long-context factors: the long ones for a context above the original, else short
        # (llama.cpp's get_rope_factors with n_ctx = `context`, set by the caller).
        self.rope_long = g.tensor("rope_factors_long.weight").reshape(-1) if g.has("rope_factors_long.weight") else None
        self.rope_short = g.tensor("rope_factors_short.weight").reshape(-1) if g.has("rope_factors_short.weight") else None
        self.orig_ctx = int(g.get(f"{a}.rope.scaling.original_context_length", g.require(f"{a}.context_length")))
        self.context = int(g.require(f"{a}.context_length"))
        self.attn_factor = float(g.get(f"{a}.rope.scaling.attn_factor", 1.0))
        self.yarn = scaling_type == "yarn"
        self.beta_fast = float(g.get(f"{a}.rope.scaling.yarn_beta_fast", 32.0))
        self.beta_slow = float(g.get(f"{a}.rope.scaling.yarn_beta_slow", 1.0))
        # llama.cpp: LLM_ARCH_LLAMA uses LLAMA_ROPE_TYPE_NORM (adjacent pairs), the others NEOX.
        self.neox = arch != "llama"
        self.qk_norm = arch in ("qwen3", "gemma3")
        self.post_norms = arch == "gemma3"
        self.gelu = arch == "gemma3"
        self.embed_scale = np.sqrt(float(self.dim)) if arch == "gemma3" else 1.0
        if arch == "gemma3":
            self.window = int(g.require(f"{a}.attention.sliding_window"))
            self.swa_pattern = int(g.get(f"{a}.attention.sliding_window_pattern", 6))
            self.swa_base = float(g.get(f"{a}.rope.freq_base_swa", 10000.0))
        else:
            self.window, self.swa_pattern, self.swa_base = 0, 0, self.rope_base
        if self.n_head % self.n_head_kv:
            raise SystemExit("error: head_count is not a multiple of head_count_kv")

        self.token_embd = g.tensor("token_embd.weight")
        self.vocab = self.token_embd.shape[0]
        self.layers = []
        for i in range(self.n_layer):
            p = f"blk.{i}."
            opt = lambda n: g.tensor(p + n) if g.has(p + n) else None  # noqa: E731
            if g.has(p + "attn_qkv.weight"):
                qkv = g.tensor(p + "attn_qkv.weight")
                nq, nkv = self.n_head * self.head_dim, self.n_head_kv * self.head_dim
                wq, wk, wv = qkv[:nq], qkv[nq : nq + nkv], qkv[nq + nkv :]
                gate_up = g.tensor(p + "ffn_up.weight")
                half = gate_up.shape[0] // 2
                w_gate, w_up = gate_up[:half], gate_up[half:]
            else:
                wq, wk, wv = (g.tensor(p + f"attn_{n}.weight") for n in "qkv")
                w_gate, w_up = g.tensor(p + "ffn_gate.weight"), g.tensor(p + "ffn_up.weight")
            self.layers.append(
                Layer(
                    attn_norm=g.tensor(p + "attn_norm.weight"),
                    wq=wq,
                    wk=wk,
                    wv=wv,
                    bq=opt("attn_q.bias"),
                    bk=opt("attn_k.bias"),
                    bv=opt("attn_v.bias"),
                    wo=g.tensor(p + "attn_output.weight"),
                    ffn_norm=g.tensor(p + "ffn_norm.weight"),
                    w_gate=w_gate,
                    w_up=w_up,
                    w_down=g.tensor(p + "ffn_down.weight"),
                    q_norm=g.tensor(p + "attn_q_norm.weight") if self.qk_norm else None,
                    k_norm=g.tensor(p + "attn_k_norm.weight") if self.qk_norm else None,
                    post_attn_norm=g.tensor(p + "post_attention_norm.weight") if self.post_norms else None,
                    post_ffn_norm=g.tensor(p + "post_ffw_norm.weight") if self.post_norms else None,
                )
            )
            sliding = self.swa_pattern > 0 and i % self.swa_pattern < self.swa_pattern - 1
            self.layers[-1].rope_base = self.swa_base if sliding else self.rope_base
            self.layers[-1].window = self.window if sliding else 0
        self.output_norm = g.tensor("output_norm.weight")
        self.tied_output = not g.has("output.weight")
        self.output = self.token_embd if self.tied_output else g.tensor("output.weight")
        self.has_qkv_bias = self.layers[0].bq is not None
        self._check_shapes()

    def _check_shapes(self):
        d, hd = self.dim, self.head_dim
        L = self.layers[0]
        assert self.token_embd.shape == (self.vocab, d)
        assert L.wq.shape == (self.n_head * hd, d), L.wq.shape
        assert L.wk.shape == (self.n_head_kv * hd, d), L.wk.shape
        assert L.wv.shape == (self.n_head_kv * hd, d), L.wv.shape
        assert L.wo.shape == (d, self.n_head * hd), L.wo.shape
        assert self.output.shape == (self.vocab, d)
        assert self.rope_dim <= hd and self.rope_dim % 2 == 0

    def describe(self) -> dict:
        return {
            "arch": self.arch,
            "n_layer": self.n_layer,
            "dim": self.dim,
            "n_head": self.n_head,
            "n_head_kv": self.n_head_kv,
            "head_dim": self.head_dim,
            "ffn": int(self.layers[0].w_gate.shape[0]),
            "vocab": self.vocab,
            "rms_eps": self.eps,
            "rope_freq_base": self.rope_base,
            "rope_dim": self.rope_dim,
            "rope_linear_scale": self.rope_scale,
            "rope_yarn": self.yarn,
            "rope_attn_factor": self.attn_factor,
            "rope_long_factors": self.rope_long is not None and self.context > self.orig_ctx,
            "context": self.context,
            "rope_freq_factors": None if self.rope_freqs is None else [float(f) for f in self.rope_freqs],
            "rope_pairing": "neox halves (i, i+d/2)" if self.neox else "adjacent pairs (2i, 2i+1)",
            "tied_output": self.tied_output,
            "qkv_bias": self.has_qkv_bias,
            "qk_norm": self.qk_norm,
            "post_norms": self.post_norms,
            "activation": "gelu_tanh" if self.gelu else "silu",
            "embedding_scale": self.embed_scale,
            "sliding_window": self.window,
            "sliding_window_pattern": self.swa_pattern,
            "rope_freq_base_swa": self.swa_base if self.window else None,
        }

    # -- the forward pass -------------------------------------------------------------------

    def rmsnorm(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x: np.ndarray, pos: np.ndarray, base: float) -> np.ndarray:
        """x: (n, heads, head_dim); rotates the first rope_dim dims of each head."""
        half = self.rope_dim // 2
        inv_freq = base ** (-2.0 * np.arange(half, dtype=np.float64) / self.rope_dim)
        if self.rope_freqs is not None:
            inv_freq = inv_freq / self.rope_freqs
        elif self.rope_long is not None:
            inv_freq = inv_freq / (self.rope_long if self.context > self.orig_ctx else self.rope_short)
        extrap = pos.astype(np.float64)[:, None] * inv_freq[None, :]
        angles = extrap / self.rope_scale
        mscale = self.attn_factor
        if self.yarn:
            # ggml's rope_yarn: a ramp over pairs between the correction dims blends the original
            # angle back in; the magnitude grows by 0.1 ln(scale).
            def corr(rot: float) -> float:
                return self.rope_dim * np.log(self.orig_ctx / (rot * 2 * np.pi)) / (2 * np.log(base))

            low = max(0.0, np.floor(corr(self.beta_fast)))
            high = min(self.rope_dim - 1.0, np.ceil(corr(self.beta_slow)))
            y = (np.arange(half, dtype=np.float64) - low) / max(0.001, high - low)
            mix = 1.0 - np.clip(y, 0.0, 1.0)
            angles = angles * (1 - mix)[None, :] + extrap * mix[None, :]
            mscale *= 1.0 + 0.1 * np.log(self.rope_scale)
        cos = np.cos(angles)[:, None, :] * mscale
        sin = np.sin(angles)[:, None, :] * mscale
        out = x.copy()
        if self.neox:
            x0, x1 = x[..., :half], x[..., half : self.rope_dim]
            out[..., :half] = x0 * cos - x1 * sin
            out[..., half : self.rope_dim] = x0 * sin + x1 * cos
        else:
            x0, x1 = x[..., 0 : self.rope_dim : 2], x[..., 1 : self.rope_dim : 2]
            out[..., 0 : self.rope_dim : 2] = x0 * cos - x1 * sin
            out[..., 1 : self.rope_dim : 2] = x0 * sin + x1 * cos
        return out

    def new_cache(self) -> list[tuple[list, list]]:
        return [([], []) for _ in range(self.n_layer)]

    def forward(self, ids: list[int], cache, start: int) -> np.ndarray:
        """Runs tokens `ids` at positions start.. with the KV cache; returns (len(ids), vocab) logits."""
        n = len(ids)
        H, Hkv, hd = self.n_head, self.n_head_kv, self.head_dim
        group = H // Hkv
        pos = np.arange(start, start + n)
        x = self.token_embd[np.asarray(ids, dtype=np.int64)] * self.embed_scale
        total = start + n
        # mask[i, j] = key j is visible to query i (causal).
        causal = np.arange(total)[None, :] <= pos[:, None]
        scale = 1.0 / np.sqrt(hd)
        for L, (kc, vc) in zip(self.layers, cache):
            h = self.rmsnorm(x, L.attn_norm)
            q = h @ L.wq.T
            k = h @ L.wk.T
            v = h @ L.wv.T
            if L.bq is not None:
                q = q + L.bq
            if L.bk is not None:
                k = k + L.bk
            if L.bv is not None:
                v = v + L.bv
            q, k = q.reshape(n, H, hd), k.reshape(n, Hkv, hd)
            if L.q_norm is not None:
                q, k = self.rmsnorm(q, L.q_norm), self.rmsnorm(k, L.k_norm)
            q = self.rope(q, pos, L.rope_base)
            k = self.rope(k, pos, L.rope_base)
            visible = causal
            if L.window:
                visible = causal & (pos[:, None] - np.arange(total)[None, :] < L.window)
            v = v.reshape(n, Hkv, hd)
            kc.append(k)
            vc.append(v)
            K = np.concatenate(kc, axis=0)  # (total, Hkv, hd)
            V = np.concatenate(vc, axis=0)
            assert K.shape[0] == total
            K = np.repeat(K, group, axis=1)  # q head h reads kv head h // group
            V = np.repeat(V, group, axis=1)
            scores = np.einsum("nhd,thd->hnt", q, K) * scale
            scores = np.where(visible[None, :, :], scores, -np.inf)
            scores = scores - scores.max(axis=-1, keepdims=True)
            p = np.exp(scores)
            p = p / p.sum(axis=-1, keepdims=True)
            attn = np.einsum("hnt,thd->nhd", p, V).reshape(n, H * hd)
            o = attn @ L.wo.T
            x = x + (o if L.post_attn_norm is None else self.rmsnorm(o, L.post_attn_norm))
            h = self.rmsnorm(x, L.ffn_norm)
            gate = h @ L.w_gate.T
            up = h @ L.w_up.T
            if self.gelu:
                act = 0.5 * gate * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (gate + 0.044715 * gate**3)))
            else:
                act = gate / (1.0 + np.exp(-gate))
            down = (act * up) @ L.w_down.T
            x = x + (down if L.post_ffn_norm is None else self.rmsnorm(down, L.post_ffn_norm))
        x = self.rmsnorm(x, self.output_norm)
        return x @ self.output.T


# ---------------------------------------------------------------------------------------------
# Prompts


def render_chat(template: str, messages: list[dict], bos: str, eos: str) -> str:
    import jinja2
    import jinja2.sandbox

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    # The settings transformers uses for chat templates.
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos
    )


class Tokenizer:
    """llama.cpp's tokenizer through llama-cpp-python (vocab only)."""

    def __init__(self, model_path: Path):
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(model_path), vocab_only=True, verbose=False)

    @property
    def add_bos(self) -> bool:
        return bool(self.llm._model.add_bos_token())

    def tokenize(self, text: str) -> list[int]:
        # add_bos=True means "add the special tokens llama.cpp's vocab asks for" (llama_tokenize's
        # add_special): a BOS only where the GGUF's tokenizer.ggml.add_bos_token says so.
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def detokenize(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids, special=True).decode("utf-8", errors="replace")


def stop_ids(g: Gguf, vocab: int) -> list[int]:
    ids = set()
    for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"):
        v = g.get(key)
        if v is not None:
            ids.add(int(v))
    tokens = g.get("tokenizer.ggml.tokens")
    if tokens is not None:
        for i, t in enumerate(tokens[:vocab]):
            if t in STOP_TEXTS:
                ids.add(i)
    return sorted(ids)


# ---------------------------------------------------------------------------------------------
# Running and writing


class Blob:
    """Little-endian arrays appended to one binary file; returns their descriptors."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, arr: np.ndarray, dtype: str) -> dict:
        np_dtype = {"f32": "<f4", "u32": "<u4", "f16": "<f2"}[dtype]
        data = np.ascontiguousarray(arr, dtype=np_dtype).tobytes()
        desc = {"offset": self.size, "dtype": dtype, "shape": list(arr.shape)}
        self.parts.append(data)
        self.size += len(data)
        return desc

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def top_k(row: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k largest logits, descending; ties broken by the smaller id."""
    return np.argsort(-row, kind="stable")[:k]


def run_prompt(model: Model, ids: list[int], args, stops: list[int]) -> dict:
    cache = model.new_cache()
    logits = [model.forward(ids, cache, 0)]  # rows for positions 0..len(ids)-1
    seq = list(ids)
    continuation, margins = [], []
    stop_reason = "length"
    for _ in range(args.max_new_tokens):
        last = logits[-1][-1]
        order = top_k(last, 2)
        tok = int(order[0])
        margins.append(float(last[order[0]] - last[order[1]]))
        continuation.append(tok)
        seq.append(tok)
        if tok in stops:
            stop_reason = "stop_token"
            break
        if len(seq) >= len(ids) + args.max_new_tokens:
            break  # the last token's own logits are only needed for the stored positions
        logits.append(model.forward([tok], cache, len(seq) - 1))
    n_pos = min(args.positions, len(seq))
    have = sum(r.shape[0] for r in logits)
    while have < n_pos:  # feed the final token too when its position is among the stored ones
        logits.append(model.forward([seq[have]], cache, have))
        have += 1
    all_logits = np.concatenate(logits, axis=0)
    return {
        "seq": seq,
        "continuation": continuation,
        "margins": margins,
        "stop_reason": stop_reason,
        "logits": all_logits[:n_pos],
        "first_step": logits[0][-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--prompts", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path, help="output path without extension")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--positions", type=int, default=64, help="positions whose logits are stored")
    ap.add_argument("--top-k", type=int, default=64)
    ap.add_argument("--samples", type=int, default=256, help="random vocab ids stored per position")
    ap.add_argument("--sample-seed", type=int, default=20240917)
    ap.add_argument("--model-command", default=None, help="how the model file was made (recorded)")
    ap.add_argument("--context", type=int, default=None,
                    help="the context a session holds (picks Phi-3's long or short RoPE factors); default the model's")
    args = ap.parse_args()

    t0 = time.time()
    model_sha = sha256_file(args.model)
    g = Gguf(args.model)
    model = Model(g)
    if args.context is not None:
        model.context = args.context
    t_load = time.time() - t0
    print(f"loaded {args.model.name} ({model.arch}, {model.n_layer} layers) in {t_load:.1f}s", flush=True)

    prompts = json.loads(args.prompts.read_text())["prompts"]
    need_tokenizer = any(p["kind"] != "ids" for p in prompts)
    tok = Tokenizer(args.model) if need_tokenizer else None
    template = g.get("tokenizer.chat_template")
    tokens = g.get("tokenizer.ggml.tokens")
    bos_id, eos_id = g.get("tokenizer.ggml.bos_token_id"), g.get("tokenizer.ggml.eos_token_id")
    bos_text = tokens[int(bos_id)] if tokens is not None and bos_id is not None else ""
    eos_text = tokens[int(eos_id)] if tokens is not None and eos_id is not None else ""
    stops = stop_ids(g, model.vocab)

    rng = np.random.default_rng(args.sample_seed)
    n_samples = min(args.samples, model.vocab)
    sampled_ids = np.sort(rng.choice(model.vocab, size=n_samples, replace=False))
    k = min(args.top_k, model.vocab)

    blob = Blob()
    out_prompts = []
    for p in prompts:
        t1 = time.time()
        entry = {"name": p["name"], "kind": p["kind"]}
        if p["kind"] == "plain":
            entry["text"] = p["text"]
            rendered = p["text"]
        elif p["kind"] == "chat":
            if template is None:
                raise SystemExit("error: chat prompt but the model has no tokenizer.chat_template")
            entry["messages"] = p["messages"]
            rendered = render_chat(template, p["messages"], bos_text, eos_text)
        elif p["kind"] == "ids":
            rendered = None
        else:
            raise SystemExit(f"error: unknown prompt kind {p['kind']!r}")
        if rendered is not None:
            entry["rendered"] = rendered
            ids = tok.tokenize(rendered)
        else:
            ids = [int(i) for i in p["ids"]]
        if not ids or max(ids) >= model.vocab or min(ids) < 0:
            raise SystemExit(f"error: prompt {p['name']}: bad ids")
        r = run_prompt(model, ids, args, stops)
        L = r["logits"]
        tops = np.stack([top_k(row, k) for row in L])
        entry.update(
            {
                "ids": ids,
                "continuation": r["continuation"],
                "stop_reason": r["stop_reason"],
                "margins": r["margins"],
                "n_positions": int(L.shape[0]),
                "first_step_position": len(ids) - 1,
            }
        )
        if tok is not None:
            entry["continuation_text"] = tok.detokenize(r["continuation"])
        entry["arrays"] = {
            "top_ids": blob.add(tops, "u32"),
            "top_logits": blob.add(np.take_along_axis(L, tops, axis=1), "f32"),
            "sampled_logits": blob.add(L[:, sampled_ids], "f32"),
            "first_step_logits": blob.add(r["first_step"], "f32"),
        }
        out_prompts.append(entry)
        low = [i for i, m in enumerate(r["margins"]) if m < 0.02]
        print(
            f"{p['name']:>14}: {len(ids):3d} prompt ids, {len(r['continuation']):2d} new"
            f" ({r['stop_reason']}), min margin {min(r['margins']):.4f}"
            f", first margin<0.02 at step {low[0] if low else '-'}, {time.time() - t1:.1f}s",
            flush=True,
        )

    out_bin = args.out.with_suffix(".bin")
    out_json = args.out.with_suffix(".json")
    data = blob.bytes()
    out_bin.write_bytes(data)
    index = {
        "format": FORMAT,
        "generator": "scripts/reference_forward.py",
        "command": " ".join(
            ["python", "scripts/reference_forward.py"]
            + [shlex.quote(a) if a != str(args.model) else "$MODEL" for a in sys.argv[1:]]
        ),
        "model": {
            "file": args.model.name,
            "sha256": model_sha,
            "made_by": args.model_command,
            **model.describe(),
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "gguf": pkg_version("gguf"),
            "jinja2": pkg_version("jinja2") if any(p["kind"] == "chat" for p in prompts) else None,
            "llama_cpp_python": pkg_version("llama_cpp_python") if tok else None,
        },
        "options": {
            "dtype": "float64",
            "max_new_tokens": args.max_new_tokens,
            "greedy": "argmax of the float64 logits, ties to the smaller id",
            "stop_ids": stops,
            "positions": args.positions,
            "top_k": k,
            "sample_seed": args.sample_seed,
            "samples": n_samples,
            "tokenizer": "llama.cpp (llama-cpp-python Llama(vocab_only=True).tokenize(add_bos=True, special=True))"
            if tok
            else None,
            "add_bos": tok.add_bos if tok else None,
            "chat_template": "GGUF tokenizer.chat_template rendered by jinja2 (sandboxed, trim_blocks,"
            " lstrip_blocks), add_generation_prompt=True"
            if any(p["kind"] == "chat" for p in prompts)
            else None,
        },
        "layout": (
            "Arrays are little-endian in the .bin at the given byte offsets, row-major with the given"
            " shape. Position p's logits are the model's output after consuming token p of"
            " ids + continuation (teacher-forced on the greedy continuation); top_ids/top_logits"
            " are the top_k logits in descending order (ties: smaller id first), sampled_logits"
            " are the logits at sampled_ids. first_step_logits (full vocab) are position"
            " first_step_position = len(ids) - 1. margins[i] = top1 - top2 logit of the step"
            " that chose continuation[i]."
        ),
        "binary": {"file": out_bin.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "sampled_ids": sampled_ids.tolist(),
        "prompts": out_prompts,
        "runtime_s": round(time.time() - t0, 1),
    }
    out_json.write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out_json} and {out_bin} ({len(data)} bytes) in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
