// Float kernels of the forward pass; see dq_ops.h for the contracts.
#include "dq_ops.h"

#include <math.h>
#include <stdatomic.h>

#if defined(__x86_64__)
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

static void swiglu_scalar(float *out, const float *gate, const float *up, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

#if defined(__x86_64__)
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

__attribute__((target("avx2,fma"))) static void softmax_avx2(float *x, int64_t n) {
  int64_t i = 0;
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  float max = _mm_cvtss_f32(m);
  for (; i < n; i++) max = x[i] > max ? x[i] : max;

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

static int has_avx2_fma(void) {
  static _Atomic int cached = -1;
  if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return cached;
}
#endif

void dq_softmax(float *x, int64_t n) {
#if defined(__x86_64__)
  if (has_avx2_fma()) {
    softmax_avx2(x, n);
    return;
  }
#endif
  softmax_scalar(x, n);
}

void dq_softmax_ref(float *x, int64_t n) { softmax_scalar(x, n); }

void dq_swiglu(float *out, const float *gate, const float *up, int64_t n) {
#if defined(__x86_64__)
  if (has_avx2_fma()) {
    swiglu_avx2(out, gate, up, n);
    return;
  }
#endif
  swiglu_scalar(out, gate, up, n);
}

void dq_swiglu_ref(float *out, const float *gate, const float *up, int64_t n) {
  swiglu_scalar(out, gate, up, n);
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

#if defined(__x86_64__)
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
#if defined(__x86_64__)
  static int has_avx2 = -1;
  if (has_avx2 < 0) has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (has_avx2) return dot_f32_avx2(a, b, n);
#endif
  return dot_f32_scalar(a, b, n);
}
