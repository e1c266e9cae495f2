// Float kernels of the forward pass; see dq_ops.h for the contracts.
#include "dq_ops.h"

#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

void dq_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps) {
  double sum = 0;  // double: 576..8192 squares of activations that can reach 1e3
  for (int64_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
  const float scale = (float)(1.0 / sqrt(sum / (double)n + eps));
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
}

void dq_rope(float *x, int n_heads, int head_dim, int rot_dim, int64_t pos, float base,
             float freq_scale, int neox) {
  const int half = rot_dim / 2;
  for (int i = 0; i < half; i++) {
    // theta in double: pos up to 1e5 times a frequency must keep its fractional part.
    const double theta = (double)pos * freq_scale * pow((double)base, -2.0 * i / rot_dim);
    const float c = (float)cos(theta), s = (float)sin(theta);
    for (int h = 0; h < n_heads; h++) {
      float *v = x + (int64_t)h * head_dim;
      const int a = neox ? i : 2 * i;
      const int b = neox ? i + half : 2 * i + 1;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

void dq_softmax(float *x, int64_t n) {
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

void dq_swiglu(float *out, const float *gate, const float *up, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
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
