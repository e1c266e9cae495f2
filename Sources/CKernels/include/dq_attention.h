// Causal attention of one head over a block of query rows, in fp32, with no BLAS: the query
// rows of a block share every key and value they load (8 rows per pass with AVX-512, 4 with AVX2).
#pragma once
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

// dst[i] = fp16(src[i]), round to nearest even (F16C twin when present; same bits).
void dq_fp32_to_fp16_row(uint16_t *dst, const float *src, int64_t n);

#ifdef __cplusplus
}
#endif
