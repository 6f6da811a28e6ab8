#!/usr/bin/env python3
"""Writes fixtures/quant/: random GGML blocks and their dequantization by the reference `gguf` package.

The Rust dequantizer must match these outputs bit for bit (engine-core/tests/quant_fixture.rs).

How to run (from the repository root), in a venv made with `pip install gguf==0.19.0 numpy`:

    python scripts/make_quant_fixture.py

The output is deterministic for a given seed, gguf and numpy version (recorded in the manifest).

Layout: for each type T, fixtures/quant/T.bin holds `n_blocks * type_size` raw block bytes followed by
`n_blocks * block_size` expected values as little-endian f32. fixtures/quant/manifest.json lists the
files with their geometry and SHA-256, the versions, the seed and the command.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

SEED = 0x5C1CE
OUT_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "quant"
BLOCKS_PER_QUANT_TYPE = 16
ELEMENTS_PER_FLOAT_TYPE = 256

# Byte offsets of the f16 scale fields (d, dmin/m) inside one block of each quantized type.
SCALE_FIELDS: dict[T, tuple[int, ...]] = {
    T.Q4_0: (0,),
    T.Q4_1: (0, 2),
    T.Q5_0: (0,),
    T.Q5_1: (0, 2),
    T.Q8_0: (0,),
    T.Q2_K: (80, 82),
    T.Q3_K: (108,),
    T.Q4_K: (0, 2),
    T.Q5_K: (0, 2),
    T.Q6_K: (208,),
}

FLOAT_TYPES = (T.F32, T.F16, T.BF16)


def random_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """Finite f16 scales, log-uniform in [2^-12, 2^2) with random sign, so outputs stay finite."""
    mag = np.exp2(rng.uniform(-12.0, 2.0, size=n))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return (sign * mag).astype(np.float16)


def quant_blocks(rng: np.random.Generator, qtype: T) -> np.ndarray:
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n = BLOCKS_PER_QUANT_TYPE
    blocks = rng.integers(0, 256, size=(n, type_size), dtype=np.uint8)
    for off in SCALE_FIELDS[qtype]:
        scales = random_scales(rng, n)
        # Edge values: zero, negative, f16 subnormals (smallest and a random one), largest finite.
        scales[0] = 0.0
        scales[1] = -abs(scales[1])
        scales[2:4] = np.array([0x0001, 0x8000 | int(rng.integers(1, 0x400))], dtype=np.uint16).view(np.float16)
        scales[4] = 65504.0 if off == SCALE_FIELDS[qtype][0] else -65504.0
        blocks[:, off : off + 2] = scales.view(np.uint8).reshape(n, 2)
    return blocks


def float_elements(rng: np.random.Generator, qtype: T) -> np.ndarray:
    """Raw random bit patterns (NaNs with payloads included) plus explicit edge values."""
    n = ELEMENTS_PER_FLOAT_TYPE
    if qtype == T.F32:
        bits = rng.integers(0, 2**32, size=n, dtype=np.uint32)
        edges = [0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F800000, 0xFF800000,
                 0x7FC00000, 0x7F800001, 0xFFBFFFFF, 0x7F7FFFFF, 0x3F800000]
        bits[: len(edges)] = np.array(edges, dtype=np.uint32)
    else:
        bits32 = rng.integers(0, 2**16, size=n, dtype=np.uint32)
        bits = bits32.astype(np.uint16)
        if qtype == T.F16:
            edges = [0x0000, 0x8000, 0x0001, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
                     0x7E00, 0x7C01, 0xFD55, 0x3C00]
        else:
            edges = [0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80,
                     0x7FC0, 0x7F81, 0xFFA5, 0x3F80]
        bits[: len(edges)] = np.array(edges, dtype=np.uint16)
    return bits.view(np.uint8)


def main() -> int:
    rng = np.random.default_rng(SEED)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    entries = []
    for qtype in (*FLOAT_TYPES, *SCALE_FIELDS):
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        raw = (float_elements(rng, qtype) if qtype in FLOAT_TYPES else quant_blocks(rng, qtype)).ravel()
        n_blocks = raw.size // type_size
        expected = np.asarray(dequantize(raw.copy(), qtype), dtype=np.float32).ravel()
        assert expected.size == n_blocks * block_size, qtype.name
        payload = raw.tobytes() + expected.astype("<f4").tobytes()
        name = f"{qtype.name}.bin"
        (OUT_DIR / name).write_bytes(payload)
        entries.append({
            "type": qtype.name,
            "id": int(qtype),
            "file": name,
            "n_blocks": n_blocks,
            "block_size": block_size,
            "type_size": type_size,
            "data_bytes": n_blocks * type_size,
            "expected_bytes": 4 * n_blocks * block_size,
            "sha256": hashlib.sha256(payload).hexdigest(),
        })
    manifest = {
        "generator": "scripts/make_quant_fixture.py",
        "command": "python scripts/make_quant_fixture.py  # in a venv with `pip install gguf==0.19.0 numpy`",
        "gguf_version": version("gguf"),
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "seed": SEED,
        "layout": "T.bin = data_bytes raw GGML blocks of type T, then expected_bytes of little-endian f32 "
                  "from gguf.quants.dequantize(data, T)",
        "files": entries,
    }
    (OUT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(e["data_bytes"] + e["expected_bytes"] for e in entries)
    print(f"wrote {len(entries)} fixtures ({total} bytes) to {OUT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
