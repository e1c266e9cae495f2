// Causal attention of one head over a block of query rows, in fp32, with no BLAS: the query
// rows of a block share every key and value they load (8 rows per pass with AVX-512, 4 with AVX2).
#pragma once
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// For r in [0, rows): query row r attends to keys/values [0, visible0 + r) (visible0 >= 1):
//   out[r] = softmax(scale * q[r] · k[j] for j < visible0 + r) · v
// Rows of q/out are ldq/ldo floats apart, rows of k/v (one per position) ldkv apart; each
// vector has head_dim floats. scores: scratch of 4 * (visible0 + rows - 1) floats.
void dq_attention_head(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,
                       const float *v, int64_t ldkv, int64_t rows, int64_t head_dim,
                       int64_t visible0, float scale, float *scores);
void dq_attention_head_ref(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,
                           const float *v, int64_t ldkv, int64_t rows, int64_t head_dim,
                           int64_t visible0, float scale, float *scores);

// The same with the cache in fp16 (IEEE half; k and v point at uint16_t elements, ldkv in
// elements): each key and value is widened to fp32 as it is loaded, so the arithmetic is the
// fp32 kernel's and only the cache's rounding differs.
void dq_attention_head_f16(float *out, int64_t ldo, const float *q, int64_t ldq, const uint16_t *k,
                           const uint16_t *v, int64_t ldkv, int64_t rows, int64_t head_dim,
                           int64_t visible0, float scale, float *scores);
void dq_attention_head_f16_ref(float *out, int64_t ldo, const float *q, int64_t ldq,
                               const uint16_t *k, const uint16_t *v, int64_t ldkv, int64_t rows,
                               int64_t head_dim, int64_t visible0, float scale, float *scores);

// Decode rows (one new query row of one sequence) in two steps, with the bits
// dq_attention_head(_f16) gives the row (rows = 1), so a row's result does not depend on
// whether it came alone or in a block of a prefill.
// 1. The scores, split by keys so that threads share a long context and each reads whole cache
//    rows in order: the row's keys [0, visible) are cut into dq_attention_decode_chunks(visible)
//    chunks, and chunk `chunk` writes, for every head h (reading kv head h / group), its scaled
//    dot products with the chunk's keys to scores[h * visible + j].
// 2. dq_attention_decode_values takes those scores (softmax in place, head by head) and writes
//    the row's output, every head (heads * head_dim floats), reading whole value rows in order.
// q and out point at head 0 of the row (head h at h * head_dim); k and v at kv head 0 of the
// first visible key, fp16 elements (IEEE half) when f16, else fp32; rows ldkv elements apart.
// Each returns false, doing nothing, where there is no kernel: dq_attention_decode_available
// (AVX-512 and head_dim a multiple of 16) says so.
int64_t dq_attention_decode_chunks(int64_t visible);
bool dq_attention_decode_available(int64_t head_dim);
bool dq_attention_decode_scores(float *scores, const float *q, const void *k, bool f16, int64_t ldkv,
                                int64_t heads, int64_t group, int64_t head_dim, int64_t visible,
                                int64_t chunk, float scale);
bool dq_attention_decode_values(float *out, float *scores, const void *v, bool f16, int64_t ldkv,
                                int64_t heads, int64_t group, int64_t head_dim, int64_t visible);

// dst[i] = fp16(src[i]), round to nearest even (F16C twin when present; same bits).
void dq_fp32_to_fp16_row(uint16_t *dst, const float *src, int64_t n);

#ifdef __cplusplus
}
#endif
