#!/usr/bin/env python3
"""Reads writer_output.gguf.bin (written by our GGUFWriter, see makeWriter(alignment: 64) in
Tests/GGUFTests/RoundTripTests.swift) with the reference reader, gguf-py 0.19.0's
gguf.GGUFReader, and checks every value and tensor against what the Swift test defines.

    python3 Tests/GGUFTests/Fixtures/check_writer_output.py   # from the package root
"""
import math
import os
import sys

import numpy as np
import gguf
from gguf import GGUFValueType as T, GGMLQuantizationType as Q

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "writer_output.gguf.bin")

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
I64_MIN = -(2**63)
U64_MAX = 2**64 - 1

EXPECTED = {
    "general.architecture": (T.STRING, "llama"),
    "v.uint8": (T.UINT8, 255),
    "v.int8": (T.INT8, -128),
    "v.uint16": (T.UINT16, 65535),
    "v.int16": (T.INT16, -32768),
    "v.uint32": (T.UINT32, 2**32 - 1),
    "v.int32": (T.INT32, I32_MIN),
    "v.uint64": (T.UINT64, U64_MAX),
    "v.int64": (T.INT64, I64_MIN),
    "v.float32": (T.FLOAT32, -0.125),
    "v.float64": (T.FLOAT64, math.pi),
    "v.bool": (T.BOOL, True),
    "v.string": (T.STRING, "ünïcødé ✓ \0nul"),
    "v.empty": (T.STRING, ""),
    "a.uint8": (T.ARRAY, [1, 2, 3]),
    "a.int8": (T.ARRAY, [-1, 0, 1]),
    "a.uint16": (T.ARRAY, [7]),
    "a.int16": (T.ARRAY, [-7, 7]),
    "a.uint32": (T.ARRAY, [0, 2**32 - 1]),
    "a.int32": (T.ARRAY, [I32_MIN, I32_MAX]),
    "a.uint64": (T.ARRAY, [U64_MAX]),
    "a.int64": (T.ARRAY, [I64_MIN, 0]),
    "a.float32": (T.ARRAY, [1.0, -2.5, math.inf]),
    "a.float64": (T.ARRAY, [1e-308, -1e308]),
    "a.bool": (T.ARRAY, [False, True]),
    "a.string": (T.ARRAY, ["a", "", "Ġb"]),
    "a.empty": (T.ARRAY, []),
    "a.nested": (T.ARRAY, [[1, 2], ["x"], [[True]], []]),
    "a.emptyNested": (T.ARRAY, []),
    "general.alignment": (T.UINT32, 64),
}

TENSORS = [  # name, type, ne (ggml order)
    ("f32", Q.F32, [3, 5]),
    ("f16", Q.F16, [7]),
    ("bf16", Q.BF16, [2, 2, 2, 2]),
    ("q4_0", Q.Q4_0, [64, 3]),
    ("q4_1", Q.Q4_1, [32, 1, 2]),
    ("q8_0", Q.Q8_0, [96, 2]),
    ("q4_K", Q.Q4_K, [256, 2]),
    ("q6_K", Q.Q6_K, [512]),
]


def main() -> int:
    r = gguf.GGUFReader(PATH)
    keys = [k for k in r.fields if not k.startswith("GGUF.")]
    assert keys == list(EXPECTED), keys
    assert int(r.fields["GGUF.version"].contents()) == 3
    assert r.alignment == 64, r.alignment
    for key, (vtype, value) in EXPECTED.items():
        field = r.fields[key]
        assert field.types[0] == vtype, (key, field.types)
        got = field.contents()
        if isinstance(value, str):
            assert got == value, (key, got)
        elif vtype == T.ARRAY and value and isinstance(value[0], list):
            # gguf-py parses nested arrays (the keys after them are found) but its contents()
            # flattens them to their leaf values ("FIXME ... multi-dimensional arrays"), with
            # the string "x" seen as its byte 120; check the types and the leaves.
            assert field.types[:2] == [T.ARRAY, T.ARRAY], (key, field.types)
            assert _plain(got) == [1, 2, 120, True], (key, got)
        else:
            assert _plain(got) == value, (key, got, value)
    assert len(r.tensors) == len(TENSORS)
    for index, ((name, qtype, ne), t) in enumerate(zip(TENSORS, r.tensors)):
        assert t.name == name, t.name
        assert t.tensor_type == qtype, (name, t.tensor_type)
        assert [int(d) for d in t.shape] == ne, (name, t.shape)
        assert t.data_offset % 64 == 0, (name, t.data_offset)
        raw = np.frombuffer(r.data[t.data_offset : t.data_offset + t.n_bytes], dtype=np.uint8)
        expected = (np.arange(t.n_bytes, dtype=np.int64) * 31 + index) % 256
        assert np.array_equal(raw, expected.astype(np.uint8)), name
    print(f"ok: gguf.GGUFReader read {PATH}: {len(keys)} keys, {len(r.tensors)} tensors")
    return 0


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
