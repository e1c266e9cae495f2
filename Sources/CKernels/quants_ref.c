// Scalar reference kernels: dequantize, quantize and dot product for every type this library
// computes with. These are the definitions the SIMD twins (quants_avx2.c) are tested against,
// so they are written for obviousness, not speed. Arithmetic order follows ggml where it
// matters for bits: dequantized values are `(d*sc)*q - (dmin*m)` in fp32, quantizers use the
// same float operations as ggml's `quantize_row_*_ref`, so files we write load in llama.cpp.
//
// Not here: run-time dispatch (dispatch.c), fp16 conversion (fp16.c), k-quant quantizers
// (Q4_K/Q5_K/Q6_K are read-only here; they come from files).
#pragma STDC FP_CONTRACT OFF
#include <math.h>

#include "quants.h"

// ---- dequantize ---------------------------------------------------------------------------

static void dequant_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

static void dequant_f16(const void *src, float *dst, int64_t n) {
  const uint16_t *h = src;
  for (int64_t i = 0; i < n; i++) dst[i] = dq_fp16_to_fp32(h[i]);
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
  const uint16_t *h = src;
  for (int64_t i = 0; i < n; i++) dst[i] = dq_bf16_to_fp32(h[i]);
}

static void dequant_q4_0(const void *src, float *dst, int64_t n) {
  const block_q4_0 *b = src;
  for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
    const float d = DQ_H2F(b[i].d);
    for (int j = 0; j < QK4_0 / 2; j++) {
      dst[j] = d * (float)((b[i].qs[j] & 0x0F) - 8);
      dst[j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
    }
  }
}

static void dequant_q4_1(const void *src, float *dst, int64_t n) {
  const block_q4_1 *b = src;
  for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
    const float d = DQ_H2F(b[i].d), m = DQ_H2F(b[i].m);
    for (int j = 0; j < QK4_1 / 2; j++) {
      dst[j] = d * (float)(b[i].qs[j] & 0x0F) + m;
      dst[j + 16] = d * (float)(b[i].qs[j] >> 4) + m;
    }
  }
}

static void dequant_q5_0(const void *src, float *dst, int64_t n) {
  const block_q5_0 *b = src;
  for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
    const float d = DQ_H2F(b[i].d);
    const uint32_t qh = dq_load_u32le(b[i].qh);
    for (int j = 0; j < QK5_0 / 2; j++) {
      const int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
      dst[j] = d * (float)(((b[i].qs[j] & 0x0F) | h0) - 16);
      dst[j + 16] = d * (float)(((b[i].qs[j] >> 4) | h1) - 16);
    }
  }
}

static void dequant_q5_1(const void *src, float *dst, int64_t n) {
  const block_q5_1 *b = src;
  for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
    const float d = DQ_H2F(b[i].d), m = DQ_H2F(b[i].m);
    const uint32_t qh = dq_load_u32le(b[i].qh);
    for (int j = 0; j < QK5_1 / 2; j++) {
      const int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
      dst[j] = d * (float)((b[i].qs[j] & 0x0F) | h0) + m;
      dst[j + 16] = d * (float)((b[i].qs[j] >> 4) | h1) + m;
    }
  }
}

static void dequant_q8_0(const void *src, float *dst, int64_t n) {
  const block_q8_0 *b = src;
  for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
    const float d = DQ_H2F(b[i].d);
    for (int j = 0; j < QK8_0; j++) dst[j] = d * (float)b[i].qs[j];
  }
}

static void dequant_q8_1(const void *src, float *dst, int64_t n) {
  const block_q8_1 *b = src;
  for (int64_t i = 0; i < n / QK8_1; i++, dst += QK8_1) {
    const float d = DQ_H2F(b[i].d);
    for (int j = 0; j < QK8_1; j++) dst[j] = d * (float)b[i].qs[j];
  }
}

static void dequant_q8_K(const void *src, float *dst, int64_t n) {
  const block_q8_K *b = src;
  for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
    for (int j = 0; j < QK_K; j++) dst[j] = b[i].d * (float)b[i].qs[j];
  }
}

static void dequant_q4_K(const void *src, float *dst, int64_t n) {
  const block_q4_K *b = src;
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = DQ_H2F(b[i].d), dmin = DQ_H2F(b[i].dmin);
    const uint8_t *q = b[i].qs;
    for (int j = 0; j < QK_K / 64; j++, q += 32) {
      uint8_t sc0, m0, sc1, m1;
      dq_get_scale_min_k4(2 * j, b[i].scales, &sc0, &m0);
      dq_get_scale_min_k4(2 * j + 1, b[i].scales, &sc1, &m1);
      const float d0 = d * (float)sc0, min0 = dmin * (float)m0;
      const float d1 = d * (float)sc1, min1 = dmin * (float)m1;
      for (int l = 0; l < 32; l++) *dst++ = d0 * (float)(q[l] & 0x0F) - min0;
      for (int l = 0; l < 32; l++) *dst++ = d1 * (float)(q[l] >> 4) - min1;
    }
  }
}

static void dequant_q5_K(const void *src, float *dst, int64_t n) {
  const block_q5_K *b = src;
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = DQ_H2F(b[i].d), dmin = DQ_H2F(b[i].dmin);
    const uint8_t *ql = b[i].qs, *qh = b[i].qh;
    for (int j = 0; j < QK_K / 64; j++, ql += 32) {
      uint8_t sc0, m0, sc1, m1;
      dq_get_scale_min_k4(2 * j, b[i].scales, &sc0, &m0);
      dq_get_scale_min_k4(2 * j + 1, b[i].scales, &sc1, &m1);
      const float d0 = d * (float)sc0, min0 = dmin * (float)m0;
      const float d1 = d * (float)sc1, min1 = dmin * (float)m1;
      for (int l = 0; l < 32; l++) {
        const int q = (ql[l] & 0x0F) | (((qh[l] >> (2 * j)) & 1) << 4);
        *dst++ = d0 * (float)q - min0;
      }
      for (int l = 0; l < 32; l++) {
        const int q = (ql[l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4);
        *dst++ = d1 * (float)q - min1;
      }
    }
  }
}

// The 6-bit code of element l (0..255) of a q6_K block, in -32..31.
static inline int q6_K_code(const block_q6_K *b, int l) {
  const int half = l / 128, r = l % 128, quarter = r / 32, k = r % 32;
  const uint8_t lb = b->ql[64 * half + 32 * (quarter & 1) + k];
  const int lo = (quarter < 2) ? (lb & 0x0F) : (lb >> 4);
  const int hi = (b->qh[32 * half + k] >> (2 * quarter)) & 3;
  return (lo | (hi << 4)) - 32;
}

static void dequant_q6_K(const void *src, float *dst, int64_t n) {
  const block_q6_K *b = src;
  for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
    const float d = DQ_H2F(b[i].d);
    for (int l = 0; l < QK_K; l++) {
      const float dl = d * (float)b[i].scales[l / 16];
      dst[l] = dl * (float)q6_K_code(&b[i], l);
    }
  }
}

dq_dequant_fn dq_ref_dequant_kernel(uint32_t type) {
  switch (type) {
    case DQ_TYPE_F32: return dequant_f32;
    case DQ_TYPE_F16: return dequant_f16;
    case DQ_TYPE_BF16: return dequant_bf16;
    case DQ_TYPE_Q4_0: return dequant_q4_0;
    case DQ_TYPE_Q4_1: return dequant_q4_1;
    case DQ_TYPE_Q5_0: return dequant_q5_0;
    case DQ_TYPE_Q5_1: return dequant_q5_1;
    case DQ_TYPE_Q8_0: return dequant_q8_0;
    case DQ_TYPE_Q8_1: return dequant_q8_1;
    case DQ_TYPE_Q4_K: return dequant_q4_K;
    case DQ_TYPE_Q5_K: return dequant_q5_K;
    case DQ_TYPE_Q6_K: return dequant_q6_K;
    case DQ_TYPE_Q8_K: return dequant_q8_K;
    default: return NULL;
  }
}

// ---- quantize (ggml's reference rounding) -------------------------------------------------

// The element of largest magnitude, with its sign (the first one on ties, like ggml).
static float signed_absmax(const float *x, int k) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < k; j++) {
    if (amax < fabsf(x[j])) {
      amax = fabsf(x[j]);
      max = x[j];
    }
  }
  return max;
}

static void quant_f32(const float *x, void *dst, int64_t n) { memcpy(dst, x, (size_t)n * 4); }

static void quant_f16(const float *x, void *dst, int64_t n) {
  uint16_t *h = dst;
  for (int64_t i = 0; i < n; i++) h[i] = dq_fp32_to_fp16(x[i]);
}

static void quant_bf16(const float *x, void *dst, int64_t n) {
  uint16_t *h = dst;
  for (int64_t i = 0; i < n; i++) h[i] = dq_fp32_to_bf16(x[i]);
}

static void quant_q4_0(const float *x, void *dst, int64_t n) {
  block_q4_0 *b = dst;
  for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
    const float d = signed_absmax(x, QK4_0) / -8.0f;  // the extreme value maps to code 0
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = dq_fp32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; j++) {
      int q0 = (int8_t)(x[j] * id + 8.5f), q1 = (int8_t)(x[j + 16] * id + 8.5f);
      q0 = q0 > 15 ? 15 : q0;
      q1 = q1 > 15 ? 15 : q1;
      b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

static void quant_q4_1(const float *x, void *dst, int64_t n) {
  block_q4_1 *b = dst;
  for (int64_t i = 0; i < n / QK4_1; i++, x += QK4_1) {
    float min = INFINITY, max = -INFINITY;
    for (int j = 0; j < QK4_1; j++) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = dq_fp32_to_fp16(d);
    b[i].m = dq_fp32_to_fp16(min);
    for (int j = 0; j < QK4_1 / 2; j++) {
      int q0 = (int8_t)((x[j] - min) * id + 0.5f), q1 = (int8_t)((x[j + 16] - min) * id + 0.5f);
      q0 = q0 > 15 ? 15 : q0;
      q1 = q1 > 15 ? 15 : q1;
      b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

static void quant_q5_0(const float *x, void *dst, int64_t n) {
  block_q5_0 *b = dst;
  for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
    const float d = signed_absmax(x, QK5_0) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = dq_fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; j++) {
      int q0 = (int8_t)(x[j] * id + 16.5f), q1 = (int8_t)(x[j + 16] * id + 16.5f);
      q0 = q0 > 31 ? 31 : q0;
      q1 = q1 > 31 ? 31 : q1;
      b[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= (uint32_t)((q0 >> 4) & 1) << j;
      qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    memcpy(b[i].qh, &qh, 4);
  }
}

static void quant_q5_1(const float *x, void *dst, int64_t n) {
  block_q5_1 *b = dst;
  for (int64_t i = 0; i < n / QK5_1; i++, x += QK5_1) {
    float min = INFINITY, max = -INFINITY;
    for (int j = 0; j < QK5_1; j++) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = dq_fp32_to_fp16(d);
    b[i].m = dq_fp32_to_fp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; j++) {
      int q0 = (int)(uint8_t)((x[j] - min) * id + 0.5f);
      int q1 = (int)(uint8_t)((x[j + 16] - min) * id + 0.5f);
      q0 = q0 > 31 ? 31 : q0;
      q1 = q1 > 31 ? 31 : q1;
      b[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= (uint32_t)((q0 >> 4) & 1) << j;
      qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    memcpy(b[i].qh, &qh, 4);
  }
}

// Shared by q8_0 and q8_1: d = amax/127, q = roundf(x/d) (halves away from zero, as ggml).
static float quant_q8_block(const float *x, int8_t *qs, float *d_out) {
  float amax = 0.0f;
  for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  int sum = 0;
  for (int j = 0; j < 32; j++) {
    qs[j] = (int8_t)roundf(x[j] * id);
    sum += qs[j];
  }
  *d_out = d;
  return (float)sum;
}

static void quant_q8_0(const float *x, void *dst, int64_t n) {
  block_q8_0 *b = dst;
  for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
    float d;
    quant_q8_block(x, b[i].qs, &d);
    b[i].d = dq_fp32_to_fp16(d);
  }
}

static void quant_q8_1(const float *x, void *dst, int64_t n) {
  block_q8_1 *b = dst;
  for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
    float d;
    const float sum = quant_q8_block(x, b[i].qs, &d);
    b[i].d = dq_fp32_to_fp16(d);
    b[i].s = dq_fp32_to_fp16(sum * d);  // the fp32 d, as ggml (not the rounded half)
  }
}

// ggml's nearest_int: round half to even (the fp32 rounding mode), valid for |x| < 2^22.
static inline int nearest_int(float x) { return (int)lrintf(x); }

static void quant_q8_K(const float *x, void *dst, int64_t n) {
  block_q8_K *b = dst;
  for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
    const float max = signed_absmax(x, QK_K);
    if (max == 0.0f) {
      memset(&b[i], 0, sizeof b[i]);
      continue;
    }
    const float iscale = -127.0f / max;  // ggml's sign convention: the extreme maps to -127
    for (int j = 0; j < QK_K; j++) {
      int v = nearest_int(iscale * x[j]);
      b[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
    }
    for (int k = 0; k < QK_K / 16; k++) {
      int s = 0;
      for (int j = 0; j < 16; j++) s += b[i].qs[16 * k + j];
      b[i].bsums[k] = (int16_t)s;
    }
    b[i].d = 1.0f / iscale;
  }
}

void dq_quantize_row(uint32_t type, const float *src, void *dst, int64_t n) {
  switch (type) {
    case DQ_TYPE_F32: quant_f32(src, dst, n); break;
    case DQ_TYPE_F16: quant_f16(src, dst, n); break;
    case DQ_TYPE_BF16: quant_bf16(src, dst, n); break;
    case DQ_TYPE_Q4_0: quant_q4_0(src, dst, n); break;
    case DQ_TYPE_Q4_1: quant_q4_1(src, dst, n); break;
    case DQ_TYPE_Q5_0: quant_q5_0(src, dst, n); break;
    case DQ_TYPE_Q5_1: quant_q5_1(src, dst, n); break;
    case DQ_TYPE_Q8_0: quant_q8_0(src, dst, n); break;
    case DQ_TYPE_Q8_1: quant_q8_1(src, dst, n); break;
    case DQ_TYPE_Q8_K: quant_q8_K(src, dst, n); break;
    default: break;  // unsupported: callers check dq_quantize_supported first
  }
}

bool dq_quantize_supported(uint32_t type) {
  switch (type) {
    case DQ_TYPE_F32: case DQ_TYPE_F16: case DQ_TYPE_BF16: case DQ_TYPE_Q4_0: case DQ_TYPE_Q4_1:
    case DQ_TYPE_Q5_0: case DQ_TYPE_Q5_1: case DQ_TYPE_Q8_0: case DQ_TYPE_Q8_1: case DQ_TYPE_Q8_K:
      return true;
    default: return false;
  }
}

// ---- dot products -------------------------------------------------------------------------
// Integer sums inside a block, fp32 accumulation across blocks (as the SIMD twins do), except
// the float types, which accumulate in double.

static float dot_f32(int64_t n, const void *w, const void *x) {
  const float *a = w, *b = x;
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
  return (float)s;
}

static float dot_f16(int64_t n, const void *w, const void *x) {
  const uint16_t *a = w;
  const float *b = x;
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)dq_fp16_to_fp32(a[i]) * (double)b[i];
  return (float)s;
}

static float dot_bf16(int64_t n, const void *w, const void *x) {
  const uint16_t *a = w;
  const float *b = x;
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)dq_bf16_to_fp32(a[i]) * (double)b[i];
  return (float)s;
}

static float dot_q4_0_q8_0(int64_t n, const void *w, const void *x) {
  const block_q4_0 *a = w;
  const block_q8_0 *b = x;
  float s = 0;
  for (int64_t i = 0; i < n / QK8_0; i++) {
    int sumi = 0;
    for (int j = 0; j < 16; j++) {
      sumi += ((a[i].qs[j] & 0x0F) - 8) * b[i].qs[j];
      sumi += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + 16];
    }
    s += (float)sumi * (DQ_H2F(a[i].d) * DQ_H2F(b[i].d));
  }
  return s;
}

static float dot_q4_1_q8_1(int64_t n, const void *w, const void *x) {
  const block_q4_1 *a = w;
  const block_q8_1 *b = x;
  float s = 0;
  for (int64_t i = 0; i < n / QK8_1; i++) {
    int sumi = 0;
    for (int j = 0; j < 16; j++) {
      sumi += (a[i].qs[j] & 0x0F) * b[i].qs[j];
      sumi += (a[i].qs[j] >> 4) * b[i].qs[j + 16];
    }
    // sum_j (d q_j + m) dx y_j = d dx sumi + m (dx sum y) = d dx sumi + m s
    s += (float)sumi * (DQ_H2F(a[i].d) * DQ_H2F(b[i].d)) + DQ_H2F(a[i].m) * DQ_H2F(b[i].s);
  }
  return s;
}

static float dot_q5_0_q8_0(int64_t n, const void *w, const void *x) {
  const block_q5_0 *a = w;
  const block_q8_0 *b = x;
  float s = 0;
  for (int64_t i = 0; i < n / QK8_0; i++) {
    const uint32_t qh = dq_load_u32le(a[i].qh);
    int sumi = 0;
    for (int j = 0; j < 16; j++) {
      const int q0 = ((a[i].qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4)) - 16;
      const int q1 = ((a[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
      sumi += q0 * b[i].qs[j] + q1 * b[i].qs[j + 16];
    }
    s += (float)sumi * (DQ_H2F(a[i].d) * DQ_H2F(b[i].d));
  }
  return s;
}

static float dot_q5_1_q8_1(int64_t n, const void *w, const void *x) {
  const block_q5_1 *a = w;
  const block_q8_1 *b = x;
  float s = 0;
  for (int64_t i = 0; i < n / QK8_1; i++) {
    const uint32_t qh = dq_load_u32le(a[i].qh);
    int sumi = 0;
    for (int j = 0; j < 16; j++) {
      const int q0 = (a[i].qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
      const int q1 = (a[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
      sumi += q0 * b[i].qs[j] + q1 * b[i].qs[j + 16];
    }
    s += (float)sumi * (DQ_H2F(a[i].d) * DQ_H2F(b[i].d)) + DQ_H2F(a[i].m) * DQ_H2F(b[i].s);
  }
  return s;
}

static float dot_q8_0_q8_0(int64_t n, const void *w, const void *x) {
  const block_q8_0 *a = w;
  const block_q8_0 *b = x;
  float s = 0;
  for (int64_t i = 0; i < n / QK8_0; i++) {
    int sumi = 0;
    for (int j = 0; j < QK8_0; j++) sumi += a[i].qs[j] * b[i].qs[j];
    s += (float)sumi * (DQ_H2F(a[i].d) * DQ_H2F(b[i].d));
  }
  return s;
}

// q4_K / q5_K: sum_j (d sc_j q - dmin m_j) dy y = d dy sum_j sc_j (q.y)_j - dmin dy sum_j m_j sum(y)_j,
// where sum(y) over a 32-element sub-block is two of q8_K's 16-element bsums.
static float dot_q4_K_q8_K(int64_t n, const void *w, const void *x) {
  const block_q4_K *a = w;
  const block_q8_K *b = x;
  float s = 0;
  for (int64_t i = 0; i < n / QK_K; i++) {
    int sumi = 0, summ = 0;
    const uint8_t *q = a[i].qs;
    const int8_t *y = b[i].qs;
    for (int j = 0; j < 4; j++, q += 32, y += 64) {
      uint8_t sc0, m0, sc1, m1;
      dq_get_scale_min_k4(2 * j, a[i].scales, &sc0, &m0);
      dq_get_scale_min_k4(2 * j + 1, a[i].scales, &sc1, &m1);
      int s0 = 0, s1 = 0;
      for (int l = 0; l < 32; l++) {
        s0 += (q[l] & 0x0F) * y[l];
        s1 += (q[l] >> 4) * y[l + 32];
      }
      sumi += sc0 * s0 + sc1 * s1;
      summ += m0 * (b[i].bsums[4 * j] + b[i].bsums[4 * j + 1]);
      summ += m1 * (b[i].bsums[4 * j + 2] + b[i].bsums[4 * j + 3]);
    }
    s += b[i].d * DQ_H2F(a[i].d) * (float)sumi - b[i].d * DQ_H2F(a[i].dmin) * (float)summ;
  }
  return s;
}

static float dot_q5_K_q8_K(int64_t n, const void *w, const void *x) {
  const block_q5_K *a = w;
  const block_q8_K *b = x;
  float s = 0;
  for (int64_t i = 0; i < n / QK_K; i++) {
    int sumi = 0, summ = 0;
    const uint8_t *q = a[i].qs, *qh = a[i].qh;
    const int8_t *y = b[i].qs;
    for (int j = 0; j < 4; j++, q += 32, y += 64) {
      uint8_t sc0, m0, sc1, m1;
      dq_get_scale_min_k4(2 * j, a[i].scales, &sc0, &m0);
      dq_get_scale_min_k4(2 * j + 1, a[i].scales, &sc1, &m1);
      int s0 = 0, s1 = 0;
      for (int l = 0; l < 32; l++) {
        s0 += ((q[l] & 0x0F) | (((qh[l] >> (2 * j)) & 1) << 4)) * y[l];
        s1 += ((q[l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4)) * y[l + 32];
      }
      sumi += sc0 * s0 + sc1 * s1;
      summ += m0 * (b[i].bsums[4 * j] + b[i].bsums[4 * j + 1]);
      summ += m1 * (b[i].bsums[4 * j + 2] + b[i].bsums[4 * j + 3]);
    }
    s += b[i].d * DQ_H2F(a[i].d) * (float)sumi - b[i].d * DQ_H2F(a[i].dmin) * (float)summ;
  }
  return s;
}

static float dot_q6_K_q8_K(int64_t n, const void *w, const void *x) {
  const block_q6_K *a = w;
  const block_q8_K *b = x;
  float s = 0;
  for (int64_t i = 0; i < n / QK_K; i++) {
    int sumi = 0;
    for (int k = 0; k < 16; k++) {
      int sk = 0;
      for (int l = 16 * k; l < 16 * k + 16; l++) sk += q6_K_code(&a[i], l) * b[i].qs[l];
      sumi += a[i].scales[k] * sk;
    }
    s += b[i].d * DQ_H2F(a[i].d) * (float)sumi;
  }
  return s;
}

dq_dot_fn dq_ref_dot_kernel(uint32_t type) {
  switch (type) {
    case DQ_TYPE_F32: return dot_f32;
    case DQ_TYPE_F16: return dot_f16;
    case DQ_TYPE_BF16: return dot_bf16;
    case DQ_TYPE_Q4_0: return dot_q4_0_q8_0;
    case DQ_TYPE_Q4_1: return dot_q4_1_q8_1;
    case DQ_TYPE_Q5_0: return dot_q5_0_q8_0;
    case DQ_TYPE_Q5_1: return dot_q5_1_q8_1;
    case DQ_TYPE_Q8_0: return dot_q8_0_q8_0;
    case DQ_TYPE_Q4_K: return dot_q4_K_q8_K;
    case DQ_TYPE_Q5_K: return dot_q5_K_q8_K;
    case DQ_TYPE_Q6_K: return dot_q6_K_q8_K;
    default: return NULL;
  }
}
