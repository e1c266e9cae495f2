// Elementwise and row-wise float kernels of the transformer forward pass and of training. Plain
// loops the compiler vectorises; the reductions use a fixed order so results don't depend on
// threads.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i], over n elements (out may alias x).
void dq_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps);

// Rotary embedding. The angles of one position, computed once and shared by every layer:
// cos_sin[2i] = cos(theta_i), cos_sin[2i+1] = sin(theta_i) for i < rot_dim/2, with
// theta_i = pos * freq_scale * base^(-2i/rot_dim).
void dq_rope_angles(float *cos_sin, int64_t pos, int rot_dim, float base, float freq_scale);
// Rotates, in place, the first rot_dim dims of each of n_heads heads of head_dim in x.
// neox = 0: pairs (2i, 2i+1) (llama.cpp's "normal" layout; GGUF llama q/k are permuted for it);
// neox = 1: pairs (i, i + rot_dim/2) (Qwen2, GPT-NeoX).
void dq_rope_apply(float *x, int n_heads, int head_dim, int rot_dim, const float *cos_sin,
                   int neox);

// In place: x = softmax(x) over n elements (AVX2 exp when available; _ref is the libm twin).
void dq_softmax(float *x, int64_t n);
void dq_softmax_ref(float *x, int64_t n);

// Cross-entropy of one row of logits z[0..n) against `label` (training): returns
// logsumexp(z) - z[label], the exp sum kept in double. With `want_gradient`, overwrites z with
// weight * (softmax(z) - onehot(label)). AVX2 exp when available; _ref is the libm twin.
double dq_cross_entropy(float *z, int64_t n, int32_t label, float weight, bool want_gradient);
double dq_cross_entropy_ref(float *z, int64_t n, int32_t label, float weight, bool want_gradient);

// out[i] = silu(gate[i]) * up[i] (AVX2 exp when available; _ref is the libm twin)
void dq_swiglu(float *out, const float *gate, const float *up, int64_t n);
void dq_swiglu_ref(float *out, const float *gate, const float *up, int64_t n);
/// out[i] = gelu(gate[i]) * up[i], GELU's tanh approximation (Gemma's GeGLU); out may alias gate.
void dq_geglu(float *out, const float *gate, const float *up, int64_t n);
void dq_geglu_ref(float *out, const float *gate, const float *up, int64_t n);
// GeGLU's backward (training), gelu as above:
//   d_gate[i] = dh[i] * up[i] * gelu'(gate[i]),   d_up[i] = dh[i] * gelu(gate[i])
// (AVX2 exp when available; _ref is the libm tanhf twin).
void dq_geglu_backward(float *d_gate, float *d_up, const float *dh, const float *gate,
                       const float *up, int64_t n);
void dq_geglu_backward_ref(float *d_gate, float *d_up, const float *dh, const float *gate,
                           const float *up, int64_t n);
// SwiGLU's backward (training), with σ = sigmoid(gate):
//   d_gate[i] = dh[i] * up[i] * σ * (1 + gate[i] * (1 - σ)),   d_up[i] = dh[i] * gate[i] * σ
void dq_swiglu_backward(float *d_gate, float *d_up, const float *dh, const float *gate,
                        const float *up, int64_t n);
void dq_swiglu_backward_ref(float *d_gate, float *d_up, const float *dh, const float *gate,
                            const float *up, int64_t n);

// Low-rank update of a block of rows (LoRA merge): for i < rows, j < columns,
//   w[i * ldw + j] += scale * sum_k b[i * ldb + k] * a[k * lda + j]   (k < rank)
// w is (rows x columns) fp32, b (rows x rank), a (rank x columns). 4 rows x 32 columns (64 with
// AVX-512) are kept in registers while the rank loop streams over a, so each row of a is loaded
// once per 4 rows.
void dq_add_low_rank(float *w, int64_t ldw, const float *b, int64_t ldb, const float *a,
                     int64_t lda, int64_t rows, int64_t columns, int64_t rank, float scale);
void dq_add_low_rank_ref(float *w, int64_t ldw, const float *b, int64_t ldb, const float *a,
                         int64_t lda, int64_t rows, int64_t columns, int64_t rank, float scale);

// Unmerged LoRA at one projection in two steps (F16 factors, see lora.c):
//   down: u[k] = scale * sum_j a[k * columns + j] * x[j]            (k < rank; a is rank x columns)
//   up:   y[j] += sum_k u[k] * bt[k * ldbt + j]                       (j < n; bt is B transposed)
void dq_lora_down_f16(float *u, const uint16_t *a, int64_t rank, const float *x, int64_t columns,
                      float scale);
void dq_lora_down_f16_ref(float *u, const uint16_t *a, int64_t rank, const float *x,
                          int64_t columns, float scale);
void dq_lora_up_f16(float *y, const uint16_t *bt, int64_t ldbt, const float *u, int64_t rank,
                    int64_t n);
void dq_lora_up_f16_ref(float *y, const uint16_t *bt, int64_t ldbt, const float *u, int64_t rank,
                        int64_t n);

// y[i] += a * x[i]
void dq_axpy(float *y, float a, const float *x, int64_t n);

// y[i] += x[i]
void dq_add(float *y, const float *x, int64_t n);

// sum_i a[i] * b[i] (AVX2/FMA when available).
float dq_dot_f32(const float *a, const float *b, int64_t n);

// Inverted-dropout factors from xoshiro256** (the trainer's generator; `state` is its four
// words, advanced in place): each 64-bit output gives four draws of 16 bits, lowest first;
// out[i] = 0 when the draw is below `threshold` (p·2¹⁶), else `keep` (1/(1-p)). The last
// output's unused draws are discarded. AVX2 when available; _ref is the scalar twin (same
// values, same final state).
void dq_xoshiro_keep_mask(uint64_t state[4], float *out, int64_t count, uint32_t threshold,
                          float keep);
void dq_xoshiro_keep_mask_ref(uint64_t state[4], float *out, int64_t count, uint32_t threshold,
                              float keep);

#ifdef __cplusplus
}
#endif
