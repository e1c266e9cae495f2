#!/usr/bin/env python3
"""Writes fixture.gguf.bin with the reference writer (PyPI `gguf` 0.19.0, gguf.GGUFWriter).

GGUFTests reads this file and asserts, literally, every value and tensor defined below, so any
change here must be mirrored in Tests/GGUFTests/ForeignFixtureTests.swift.

    python3 Tests/GGUFTests/Fixtures/make_fixture.py   # from the package root

The `.gguf.bin` extension keeps the file out of the repository's `*.gguf` ignore rule.
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGUFValueType as T, GGMLQuantizationType as Q

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixture.gguf.bin")


def main() -> None:
    w = gguf.GGUFWriter(OUT, arch="fixture")  # writes general.architecture = "fixture"
    # one key per scalar type, at the edges of each range
    w.add_key_value("test.uint8", 200, T.UINT8)
    w.add_key_value("test.int8", -100, T.INT8)
    w.add_key_value("test.uint16", 60000, T.UINT16)
    w.add_key_value("test.int16", -30000, T.INT16)
    w.add_key_value("test.uint32", 4_000_000_000, T.UINT32)
    w.add_key_value("test.int32", -2_000_000_000, T.INT32)
    w.add_key_value("test.uint64", 2**63 + 5, T.UINT64)  # does not fit in Int
    w.add_key_value("test.int64", -(2**62) - 7, T.INT64)
    w.add_key_value("test.float32", 1.5, T.FLOAT32)
    w.add_key_value("test.float64", -2.25e100, T.FLOAT64)
    w.add_key_value("test.bool_true", True, T.BOOL)
    w.add_key_value("test.bool_false", False, T.BOOL)
    w.add_key_value("test.string", "héllo, GGUF ✓", T.STRING)
    w.add_key_value("test.empty_string", "", T.STRING)
    # arrays of each element type (the reference writer refuses empty arrays)
    w.add_key_value("test.array.uint8", [0, 1, 255], T.ARRAY, sub_type=T.UINT8)
    w.add_key_value("test.array.int8", [-128, 0, 127], T.ARRAY, sub_type=T.INT8)
    w.add_key_value("test.array.uint16", [0, 65535], T.ARRAY, sub_type=T.UINT16)
    w.add_key_value("test.array.int16", [-32768, 32767], T.ARRAY, sub_type=T.INT16)
    w.add_key_value("test.array.uint32", [1, 4_294_967_295], T.ARRAY, sub_type=T.UINT32)
    w.add_key_value("test.array.int32", [-1, 2, -3, 4], T.ARRAY, sub_type=T.INT32)
    w.add_key_value("test.array.uint64", [0, 2**64 - 1], T.ARRAY, sub_type=T.UINT64)
    w.add_key_value("test.array.int64", [-(2**63), 2**63 - 1], T.ARRAY, sub_type=T.INT64)
    w.add_key_value("test.array.float32", [0.5, -1.25, 3.0], T.ARRAY, sub_type=T.FLOAT32)
    w.add_key_value("test.array.float64", [1e-300, -0.1], T.ARRAY, sub_type=T.FLOAT64)
    w.add_key_value("test.array.bool", [True, False, True], T.ARRAY, sub_type=T.BOOL)
    w.add_key_value("test.array.string", ["<s>", "", "Ġthe", "日本"], T.ARRAY, sub_type=T.STRING)
    # nested arrays: an array of int32 arrays, and an array of arrays of string arrays
    w.add_array("test.array.nested", [[1, 2], [3]])
    w.add_array("test.array.nested2", [[["a"], ["b", "c"]], [["d"]]])

    # tensors; numpy shapes are outermost-first, so ne (ggml order) is the reverse
    w.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(3, 4) * 0.25 - 1)
    w.add_tensor("output_norm.weight", np.arange(8, dtype=np.float16) * 0.5 - 2)
    w.add_tensor("cube", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    # Q8_0, 2 rows of 64: values chosen so quantization is exact (scale 0.5, quants q below)
    q = np.array([i * 8 - 127 for i in range(32)], dtype=np.float32)
    values = np.stack([np.concatenate([q, -q]), np.concatenate([-q, q])]) * 0.5
    w.add_tensor("blk.0.attn_q.weight", gguf.quants.quantize(values, Q.Q8_0), raw_dtype=Q.Q8_0)
    # raw bytes: byte i of the tensor is (7 * i) % 256
    def pattern(n: int) -> np.ndarray:
        return (np.arange(n, dtype=np.int64) * 7 % 256).astype(np.uint8)
    w.add_tensor("blk.0.ffn_up.weight", pattern(3 * 20 * 2).reshape(3, 40), raw_dtype=Q.Q4_1)  # ne [64, 3]
    w.add_tensor("blk.0.ffn_down.weight", pattern(144).reshape(1, 144), raw_dtype=Q.Q4_K)  # ne [256, 1]
    w.add_tensor("blk.0.bf16", pattern(16).reshape(2, 8), raw_dtype=Q.BF16)  # ne [4, 2]

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # read it back with the reference reader as a sanity check of the script itself
    r = gguf.GGUFReader(OUT)
    assert len(r.tensors) == 7, len(r.tensors)
    print(f"wrote {OUT}: {os.path.getsize(OUT)} bytes, {len(r.fields)} keys, {len(r.tensors)} tensors")


if __name__ == "__main__":
    sys.exit(main())
