#!/usr/bin/env python3
"""Write a random-weight Llama GGUF (F16 matrices, F32 norms) at a given shape, carrying the
tokenizer of another GGUF, for speed benchmarks (any weights do for speed). Tensors are written
one at a time so a 1.7B-parameter file never sits in memory whole.

  make_random_llama.py --tokenizer-from MODEL.gguf --out OUT.gguf --hidden 2048 --layers 24 \
      --heads 32 --kv-heads 32 --ffn 8192 [--seed 1]
"""
import argparse

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

ap = argparse.ArgumentParser()
ap.add_argument("--tokenizer-from", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--name", default="random-llama")
ap.add_argument("--hidden", type=int, required=True)
ap.add_argument("--layers", type=int, required=True)
ap.add_argument("--heads", type=int, required=True)
ap.add_argument("--kv-heads", type=int, required=True)
ap.add_argument("--ffn", type=int, required=True)
ap.add_argument("--context", type=int, default=8192)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()

src = GGUFReader(a.tokenizer_from)
vocab = len(src.fields["tokenizer.ggml.tokens"].data)
head_dim = a.hidden // a.heads

w = GGUFWriter(a.out, "llama")
w.add_name(a.name)
w.add_context_length(a.context)
w.add_embedding_length(a.hidden)
w.add_block_count(a.layers)
w.add_feed_forward_length(a.ffn)
w.add_head_count(a.heads)
w.add_head_count_kv(a.kv_heads)
w.add_rope_dimension_count(head_dim)
w.add_rope_freq_base(130000.0)
w.add_layer_norm_rms_eps(1e-5)
w.add_vocab_size(vocab)
w.add_file_type(1)  # mostly F16
for name, field in src.fields.items():
    if not name.startswith("tokenizer."):
        continue
    main = field.types[0]
    if main == GGUFValueType.ARRAY:
        w.add_key_value(name, field.contents(), main, sub_type=field.types[-1])
    else:
        w.add_key_value(name, field.contents(), main)

# (name, rows, cols); cols is the input dimension (ggml ne[0]). No output.weight: tied to the
# embedding, as in SmolLM2.
shapes = [("token_embd.weight", vocab, a.hidden), ("output_norm.weight", a.hidden, None)]
kv = a.kv_heads * head_dim
for i in range(a.layers):
    p = f"blk.{i}."
    shapes += [(p + "attn_norm.weight", a.hidden, None),
               (p + "attn_q.weight", a.hidden, a.hidden), (p + "attn_k.weight", kv, a.hidden),
               (p + "attn_v.weight", kv, a.hidden), (p + "attn_output.weight", a.hidden, a.hidden),
               (p + "ffn_norm.weight", a.hidden, None),
               (p + "ffn_gate.weight", a.ffn, a.hidden), (p + "ffn_up.weight", a.ffn, a.hidden),
               (p + "ffn_down.weight", a.hidden, a.ffn)]
for name, rows, cols in shapes:
    if cols is None:
        w.add_tensor_info(name, (rows,), np.dtype(np.float32), rows * 4)
    else:
        w.add_tensor_info(name, (rows, cols), np.dtype(np.float16), rows * cols * 2)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_ti_data_to_file()
rng = np.random.default_rng(a.seed)
for name, rows, cols in shapes:
    if cols is None:
        w.write_tensor_data(np.ones(rows, dtype=np.float32))
    else:
        std = 1.0 / np.sqrt(cols)  # keeps activations O(1) through the layers
        w.write_tensor_data((rng.standard_normal((rows, cols), dtype=np.float32) * std).astype(np.float16))
w.close()
