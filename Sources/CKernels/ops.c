// Float kernels of the forward pass; see dq_ops.h for the contracts.
#include "dq_ops.h"

#include "cpu_features.h"

#include <math.h>

#include "dq_simd.h"
#if DQ_X86_SIMD
#include <immintrin.h>
#endif

void dq_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps) {
  double sum = 0;  // double: 576..8192 squares of activations that can reach 1e3
  for (int64_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
  const float scale = (float)(1.0 / sqrt(sum / (double)n + eps));
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
}

void dq_rope_angles(float *cos_sin, int64_t pos, int rot_dim, float base, float freq_scale) {
  for (int i = 0; i < rot_dim / 2; i++) {
    // theta in double: pos up to 1e5 times a frequency must keep its fractional part.
    const double theta = (double)pos * freq_scale * pow((double)base, -2.0 * i / rot_dim);
    cos_sin[2 * i] = (float)cos(theta);
    cos_sin[2 * i + 1] = (float)sin(theta);
  }
}

void dq_rope_apply(float *x, int n_heads, int head_dim, int rot_dim, const float *cos_sin,
                   int neox) {
  const int half = rot_dim / 2;
  for (int h = 0; h < n_heads; h++) {
    float *v = x + (int64_t)h * head_dim;
    for (int i = 0; i < half; i++) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      const int a = neox ? i : 2 * i;
      const int b = neox ? i + half : 2 * i + 1;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

static void softmax_scalar(float *x, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    x[i] = expf(x[i] - max);
    sum += x[i];
  }
  const float inv = (float)(1.0 / sum);
  for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

static double cross_entropy_scalar(float *z, int64_t n, int32_t label, float weight,
                                   bool want_gradient) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; i++) max = z[i] > max ? z[i] : max;
  double total = 0;
  for (int64_t i = 0; i < n; i++) total += (double)expf(z[i] - max);
  const double lse = (double)max + log(total);
  const double loss = lse - (double)z[label];
  if (want_gradient) {
    const float shift = (float)lse;
    for (int64_t i = 0; i < n; i++) z[i] = weight * expf(z[i] - shift);
    z[label] -= weight;
  }
  return loss;
}

static void swiglu_scalar(float *out, const float *gate, const float *up, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void swiglu_backward_scalar(float *d_gate, float *d_up, const float *dh, const float *gate,
                                   const float *up, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    const float sigma = 1.0f / (1.0f + expf(-g));
    d_gate[i] = dh[i] * up[i] * sigma * (1.0f + g * (1.0f - sigma));
    d_up[i] = dh[i] * g * sigma;
  }
}

// GeGLU (Gemma): gelu(g) · up with GELU's tanh approximation,
// gelu(g) = g/2 · (1 + tanh(y)), y = √(2/π) · g · (1 + 0.044715 g²).
static const float geglu_c = 0.7978845608028654f, geglu_a = 0.044715f;

static void geglu_scalar(float *out, const float *gate, const float *up, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = 0.5f * g * (1.0f + tanhf(geglu_c * g * (1.0f + geglu_a * g * g))) * up[i];
  }
}

// gelu'(g) = (1 + t)/2 + g/2 · (1 - t²) · c (1 + 3a g²), t = tanh(y).
static void geglu_backward_scalar(float *d_gate, float *d_up, const float *dh, const float *gate,
                                  const float *up, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    const float t = tanhf(geglu_c * g * (1.0f + geglu_a * g * g));
    const float slope =
        0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * geglu_c * (1.0f + 3.0f * geglu_a * g * g);
    d_gate[i] = dh[i] * up[i] * slope;
    d_up[i] = dh[i] * 0.5f * g * (1.0f + t);
  }
}

#if DQ_X86_SIMD
// e^x for 8 floats: 2^(x log2 e) = 2^n · e^g with n = round(x log2 e), |g| <= ln2/2, and e^g by
// its Taylor series to degree 7 (truncation error < 6e-9 relative, below float rounding).
// Inputs are clamped to [-87.3, 88.7], where results stay normal floats.
__attribute__((target("avx2,fma"))) static inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // g = x - n ln2, with ln2 split in two so the subtraction loses nothing.
  __m256 g = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  g = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), g);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, g, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, g, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, g, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, g, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, g, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, g, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, g, _mm256_set1_ps(1.0f));
  const __m256i scale =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

__attribute__((target("avx2,fma"))) static float row_max_avx2(const float *x, int64_t n) {
  int64_t i = 0;
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  float max = _mm_cvtss_f32(m);
  for (; i < n; i++) max = x[i] > max ? x[i] : max;
  return max;
}

__attribute__((target("avx2,fma"))) static void softmax_avx2(float *x, int64_t n) {
  int64_t i;
  const float max = row_max_avx2(x, n);

  const __m256 vm = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(vsum), _mm256_extractf128_ps(vsum, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float sum = _mm_cvtss_f32(s);
  for (; i < n; i++) {
    x[i] = expf(x[i] - max);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
  for (; i < n; i++) x[i] *= inv;
}

__attribute__((target("avx2,fma"))) static double cross_entropy_avx2(float *z, int64_t n,
                                                                   int32_t label, float weight,
                                                                   bool want_gradient) {
  int64_t i;
  const float max = row_max_avx2(z, n);

  // The sum in double (as the scalar twin): 50k terms of a vocabulary add up in float badly.
  const __m256 vm = _mm256_set1_ps(max);
  __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(z + i), vm));
    sum_lo = _mm256_add_pd(sum_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    sum_hi = _mm256_add_pd(sum_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  double lanes[4];
  _mm256_storeu_pd(lanes, _mm256_add_pd(sum_lo, sum_hi));
  double total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; i++) total += (double)expf(z[i] - max);
  const double lse = (double)max + log(total);
  const double loss = lse - (double)z[label];
  if (want_gradient) {
    const __m256 shift = _mm256_set1_ps((float)lse);
    const __m256 w = _mm256_set1_ps(weight);
    for (i = 0; i + 8 <= n; i += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(z + i), shift));
      _mm256_storeu_ps(z + i, _mm256_mul_ps(w, e));
    }
    for (; i < n; i++) z[i] = weight * expf(z[i] - (float)lse);
    z[label] -= weight;
  }
  return loss;
}

__attribute__((target("avx2,fma"))) static void swiglu_avx2(float *out, const float *gate,
                                                            const float *up, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)),
                                            _mm256_loadu_ps(up + i)));
  }
  swiglu_scalar(out + i, gate + i, up + i, n - i);
}

__attribute__((target("avx2,fma"))) static void swiglu_backward_avx2(float *d_gate, float *d_up,
                                                                     const float *dh,
                                                                     const float *gate,
                                                                     const float *up, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 d = _mm256_loadu_ps(dh + i);
    const __m256 sigma =
        _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    const __m256 slope = _mm256_fmadd_ps(g, _mm256_sub_ps(one, sigma), one);  // 1 + g(1 - σ)
    _mm256_storeu_ps(d_gate + i,
                     _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(up + i)), _mm256_mul_ps(sigma, slope)));
    _mm256_storeu_ps(d_up + i, _mm256_mul_ps(d, _mm256_mul_ps(g, sigma)));
  }
  swiglu_backward_scalar(d_gate + i, d_up + i, dh + i, gate + i, up + i, n - i);
}

// (1 + tanh y)/2 = 1/(1 + e^(-2y)), so gelu(g) = g / (1 + e^(-2y)): one exp256, no tanh.
__attribute__((target("avx2,fma"))) static void geglu_avx2(float *out, const float *gate,
                                                           const float *up, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 minus_2c = _mm256_set1_ps(-2.0f * geglu_c);
  const __m256 a = _mm256_set1_ps(geglu_a);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(a, g), g, one);  // 1 + a g²
    const __m256 e = exp256(_mm256_mul_ps(_mm256_mul_ps(minus_2c, g), inner));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)),
                                            _mm256_loadu_ps(up + i)));
  }
  geglu_scalar(out + i, gate + i, up + i, n - i);
}

// With s = (1 + tanh y)/2 = 1/(1 + e), e = e^(-2y): gelu(g) = g s and, as (1 - t²)/4 = s (1 - s),
// gelu'(g) = s + 2 c (1 + 3a g²) g s (1 - s), 1 - s taken as e s where s nears 1 (no
// cancellation). One exp256 per element instead of libm's tanhf twice.
__attribute__((target("avx2,fma"))) static void geglu_backward_avx2(float *d_gate, float *d_up,
                                                                    const float *dh,
                                                                    const float *gate,
                                                                    const float *up, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 minus_2c = _mm256_set1_ps(-2.0f * geglu_c);
  const __m256 two_c = _mm256_set1_ps(2.0f * geglu_c);
  const __m256 a = _mm256_set1_ps(geglu_a);
  const __m256 three_a = _mm256_set1_ps(3.0f * geglu_a);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 d = _mm256_loadu_ps(dh + i);
    const __m256 g2 = _mm256_mul_ps(g, g);
    const __m256 e = exp256(_mm256_mul_ps(_mm256_mul_ps(minus_2c, g), _mm256_fmadd_ps(a, g2, one)));
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    // e s = 1 - s: as e s while e <= 1 (s near 1), as 1 - s above (e may be +inf there).
    const __m256 es = _mm256_blendv_ps(_mm256_mul_ps(e, s), _mm256_sub_ps(one, s),
                                       _mm256_cmp_ps(e, one, _CMP_GT_OQ));
    const __m256 es2 = _mm256_mul_ps(es, s);
    const __m256 outer = _mm256_mul_ps(_mm256_mul_ps(two_c, _mm256_fmadd_ps(three_a, g2, one)), g);
    const __m256 slope = _mm256_fmadd_ps(outer, es2, s);
    _mm256_storeu_ps(d_gate + i, _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(up + i)), slope));
    _mm256_storeu_ps(d_up + i, _mm256_mul_ps(d, _mm256_mul_ps(g, s)));
  }
  geglu_backward_scalar(d_gate + i, d_up + i, dh + i, gate + i, up + i, n - i);
}

#endif

void dq_geglu(float *out, const float *gate, const float *up, int64_t n) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx2()) {
    geglu_avx2(out, gate, up, n);
    return;
  }
#endif
  geglu_scalar(out, gate, up, n);
}

void dq_geglu_ref(float *out, const float *gate, const float *up, int64_t n) {
  geglu_scalar(out, gate, up, n);
}

void dq_geglu_backward(float *d_gate, float *d_up, const float *dh, const float *gate,
                       const float *up, int64_t n) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx2()) {
    geglu_backward_avx2(d_gate, d_up, dh, gate, up, n);
    return;
  }
#endif
  geglu_backward_scalar(d_gate, d_up, dh, gate, up, n);
}

void dq_geglu_backward_ref(float *d_gate, float *d_up, const float *dh, const float *gate,
                           const float *up, int64_t n) {
  geglu_backward_scalar(d_gate, d_up, dh, gate, up, n);
}

void dq_softmax(float *x, int64_t n) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx2()) {
    softmax_avx2(x, n);
    return;
  }
#endif
  softmax_scalar(x, n);
}

void dq_softmax_ref(float *x, int64_t n) { softmax_scalar(x, n); }

double dq_cross_entropy(float *z, int64_t n, int32_t label, float weight, bool want_gradient) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx2()) return cross_entropy_avx2(z, n, label, weight, want_gradient);
#endif
  return cross_entropy_scalar(z, n, label, weight, want_gradient);
}

double dq_cross_entropy_ref(float *z, int64_t n, int32_t label, float weight, bool want_gradient) {
  return cross_entropy_scalar(z, n, label, weight, want_gradient);
}

void dq_swiglu(float *out, const float *gate, const float *up, int64_t n) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx2()) {
    swiglu_avx2(out, gate, up, n);
    return;
  }
#endif
  swiglu_scalar(out, gate, up, n);
}

void dq_swiglu_ref(float *out, const float *gate, const float *up, int64_t n) {
  swiglu_scalar(out, gate, up, n);
}

void dq_swiglu_backward(float *d_gate, float *d_up, const float *dh, const float *gate,
                        const float *up, int64_t n) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx2()) {
    swiglu_backward_avx2(d_gate, d_up, dh, gate, up, n);
    return;
  }
#endif
  swiglu_backward_scalar(d_gate, d_up, dh, gate, up, n);
}

void dq_swiglu_backward_ref(float *d_gate, float *d_up, const float *dh, const float *gate,
                            const float *up, int64_t n) {
  swiglu_backward_scalar(d_gate, d_up, dh, gate, up, n);
}

void dq_axpy(float *y, float a, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void dq_add(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static float dot_f32_scalar(const float *a, const float *b, int64_t n) {
  float sum = 0;
  for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
  return sum;
}

#if DQ_X86_SIMD
__attribute__((target("avx2,fma"))) static float dot_f32_avx2(const float *a, const float *b,
                                                              int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float sum = _mm_cvtss_f32(s);
  for (; i < n; i++) sum += a[i] * b[i];
  return sum;
}
#endif

float dq_dot_f32(const float *a, const float *b, int64_t n) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx2()) return dot_f32_avx2(a, b, n);
#endif
  return dot_f32_scalar(a, b, n);
}

void dq_add_low_rank_ref(float *w, int64_t ldw, const float *b, int64_t ldb, const float *a,
                         int64_t lda, int64_t rows, int64_t columns, int64_t rank, float scale) {
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < columns; j++) {
      float sum = 0;
      for (int64_t k = 0; k < rank; k++) sum += b[i * ldb + k] * a[k * lda + j];
      w[i * ldw + j] += scale * sum;
    }
}

#if DQ_X86_SIMD
// Up to 4 rows (nr) x 32 columns (4 vectors of 8) of w, accumulated over the whole rank.
__attribute__((target("avx2,fma"))) static void low_rank_block(float *w, int64_t ldw,
                                                               const float *b, int64_t ldb,
                                                               const float *a, int64_t lda,
                                                               int nr, int64_t rank, float scale) {
  __m256 acc[4][4];
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < 4; c++) acc[i][c] = _mm256_setzero_ps();
  for (int64_t k = 0; k < rank; k++) {
    const float *ak = a + k * lda;
    const __m256 a0 = _mm256_loadu_ps(ak), a1 = _mm256_loadu_ps(ak + 8);
    const __m256 a2 = _mm256_loadu_ps(ak + 16), a3 = _mm256_loadu_ps(ak + 24);
    for (int i = 0; i < nr; i++) {
      const __m256 bik = _mm256_set1_ps(b[i * ldb + k]);
      acc[i][0] = _mm256_fmadd_ps(bik, a0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(bik, a1, acc[i][1]);
      acc[i][2] = _mm256_fmadd_ps(bik, a2, acc[i][2]);
      acc[i][3] = _mm256_fmadd_ps(bik, a3, acc[i][3]);
    }
  }
  const __m256 s = _mm256_set1_ps(scale);
  for (int i = 0; i < nr; i++)
    for (int c = 0; c < 4; c++) {
      float *out = w + i * ldw + 8 * c;
      _mm256_storeu_ps(out, _mm256_fmadd_ps(s, acc[i][c], _mm256_loadu_ps(out)));
    }
}
#endif

#if DQ_X86_SIMD
// The AVX-512 twin of low_rank_block: 4 rows x 64 columns (4 vectors of 16).
__attribute__((target("avx512f"))) static void low_rank_block512(float *w, int64_t ldw,
                                                                 const float *b, int64_t ldb,
                                                                 const float *a, int64_t lda,
                                                                 int nr, int64_t rank,
                                                                 float scale) {
  __m512 acc[4][4];
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < 4; c++) acc[i][c] = _mm512_setzero_ps();
  for (int64_t k = 0; k < rank; k++) {
    const float *ak = a + k * lda;
    const __m512 a0 = _mm512_loadu_ps(ak), a1 = _mm512_loadu_ps(ak + 16);
    const __m512 a2 = _mm512_loadu_ps(ak + 32), a3 = _mm512_loadu_ps(ak + 48);
    for (int i = 0; i < nr; i++) {
      const __m512 bik = _mm512_set1_ps(b[i * ldb + k]);
      acc[i][0] = _mm512_fmadd_ps(bik, a0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(bik, a1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(bik, a2, acc[i][2]);
      acc[i][3] = _mm512_fmadd_ps(bik, a3, acc[i][3]);
    }
  }
  const __m512 s = _mm512_set1_ps(scale);
  for (int i = 0; i < nr; i++)
    for (int c = 0; c < 4; c++) {
      float *out = w + i * ldw + 16 * c;
      _mm512_storeu_ps(out, _mm512_fmadd_ps(s, acc[i][c], _mm512_loadu_ps(out)));
    }
}

#endif

void dq_add_low_rank(float *w, int64_t ldw, const float *b, int64_t ldb, const float *a,
                     int64_t lda, int64_t rows, int64_t columns, int64_t rank, float scale) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx512f()) {
    const int64_t wide = columns / 64 * 64;
    for (int64_t i = 0; i < rows; i += 4) {
      const int nr = rows - i >= 4 ? 4 : (int)(rows - i);
      for (int64_t j = 0; j < wide; j += 64)
        low_rank_block512(w + i * ldw + j, ldw, b + i * ldb, ldb, a + j, lda, nr, rank, scale);
      if (wide < columns)
        dq_add_low_rank_ref(w + i * ldw + wide, ldw, b + i * ldb, ldb, a + wide, lda, nr,
                            columns - wide, rank, scale);
    }
    return;
  }
  if (dq_cpu_has_avx2()) {
    const int64_t wide = columns / 32 * 32;
    for (int64_t i = 0; i < rows; i += 4) {
      const int nr = rows - i >= 4 ? 4 : (int)(rows - i);
      for (int64_t j = 0; j < wide; j += 32)
        low_rank_block(w + i * ldw + j, ldw, b + i * ldb, ldb, a + j, lda, nr, rank, scale);
      if (wide < columns)
        dq_add_low_rank_ref(w + i * ldw + wide, ldw, b + i * ldb, ldb, a + wide, lda, nr,
                            columns - wide, rank, scale);
    }
    return;
  }
#endif
  dq_add_low_rank_ref(w, ldw, b, ldb, a, lda, rows, columns, rank, scale);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t xoshiro_next(uint64_t s[4]) {
  const uint64_t result = rotl64(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl64(s[3], 45);
  return result;
}

static void keep_mask_scalar(uint64_t state[4], float *out, int64_t i, int64_t count,
                             uint32_t threshold, float keep) {
  uint64_t s[4] = {state[0], state[1], state[2], state[3]};
  while (i < count) {
    uint64_t bits = xoshiro_next(s);
    for (int k = 0; k < 4 && i < count; k++, i++, bits >>= 16)
      out[i] = (uint32_t)(bits & 0xFFFF) < threshold ? 0.0f : keep;
  }
  for (int k = 0; k < 4; k++) state[k] = s[k];
}

#if DQ_X86_SIMD
__attribute__((target("avx2"))) static void keep_mask_avx2(uint64_t state[4], float *out,
                                                          int64_t count, uint32_t threshold,
                                                          float keep) {
  uint64_t s[4] = {state[0], state[1], state[2], state[3]};
  // Unsigned 16-bit compare through the signed one: flip the top bit of both sides.
  const __m256i bias = _mm256_set1_epi16((short)0x8000);
  const __m256i limit = _mm256_set1_epi16((short)((threshold > 0xFFFF ? 0xFFFF : threshold) ^ 0x8000));
  const __m256i all = _mm256_set1_epi16(threshold > 0xFFFF ? -1 : 0);  // p = 1: drop all
  const __m256 vkeep = _mm256_set1_ps(keep);
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    uint64_t words[4];
    for (int k = 0; k < 4; k++) words[k] = xoshiro_next(s);
    const __m256i draws = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)words), bias);
    const __m256i drop = _mm256_or_si256(_mm256_cmpgt_epi16(limit, draws), all);
    const __m256i lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(drop));
    const __m256i hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(drop, 1));
    _mm256_storeu_ps(out + i, _mm256_andnot_ps(_mm256_castsi256_ps(lo), vkeep));
    _mm256_storeu_ps(out + i + 8, _mm256_andnot_ps(_mm256_castsi256_ps(hi), vkeep));
  }
  for (int k = 0; k < 4; k++) state[k] = s[k];
  keep_mask_scalar(state, out, i, count, threshold, keep);
}
#endif

void dq_xoshiro_keep_mask(uint64_t state[4], float *out, int64_t count, uint32_t threshold,
                          float keep) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx2()) {
    keep_mask_avx2(state, out, count, threshold, keep);
    return;
  }
#endif
  keep_mask_scalar(state, out, 0, count, threshold, keep);
}

void dq_xoshiro_keep_mask_ref(uint64_t state[4], float *out, int64_t count, uint32_t threshold,
                              float keep) {
  keep_mask_scalar(state, out, 0, count, threshold, keep);
}
