// Reference quantizers for the K-quant weight types (Q4_K, Q5_K, Q6_K), following the search
// that ggml's `quantize_row_q{4,5,6}_K_ref` perform when no importance matrix is given:
// per sub-block, a weighted least-squares fit of scale (and min) over a small grid of inverse
// scales; then the sub-block scales are themselves quantized to 6 bits (int8 for Q6_K) against
// one fp16 super-block scale, and the codes are recomputed with the rounded scales.
//
// Used for merges into K-quant bases and for making test data. The fp32 operations follow
// ggml's order, but ggml's own output depends on whether its compiler contracts a*b+c into FMA,
// so bit-identity with a given llama.cpp build is not claimed (and not tested: the independent
// gguf package cannot quantize K-quants). What is tested: the layout (via the gguf-checked
// dequantizers) and the reconstruction error.
#pragma STDC FP_CONTRACT OFF
#include <math.h>

#include "quants.h"

#define GROUP_MAX_EPS 1e-15f

// Round half to even, for |x| < 2^22 (ggml's nearest_int); saturates outside that range.
static inline int round_even(float x) {
  if (!(fabsf(x) <= 4194303.0f)) return x > 0 ? 4194303 : -4194303;
  return (int)lrintf(x);
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Fit x[i] ~ scale * L[i] - neg_min with L in [0, nmax] and neg_min >= 0, minimising
// sum w[i] (fit - x[i])^2. Starts from the min/max fit, then tries inverse scales
// (rmin + rdelta*k + nmax) / (max - min), k = 0..nstep, each with the closed-form
// least-squares scale and min for its codes. Returns the scale; *neg_min receives -min.
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *neg_min, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; i++) L[i] = 0;
    *neg_min = -min;
    return 0.0f;
  }
  float iscale = (float)nmax / (max - min);
  float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; i++) {
    L[i] = (uint8_t)clampi(round_even(iscale * (x[i] - min)), 0, nmax);
    const float diff = scale * (float)L[i] + min - x[i];
    best += w[i] * (diff * diff);
  }
  uint8_t trial[32];
  for (int k = 0; k <= nstep; k++) {
    iscale = (rmin + rdelta * (float)k + (float)nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      const int l = clampi(round_even(iscale * (x[i] - min)), 0, nmax);
      trial[i] = (uint8_t)l;
      sum_l += w[i] * (float)l;
      sum_l2 += w[i] * (float)l * (float)l;
      sum_xl += w[i] * (float)l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float s = (sum_w * sum_xl - sum_x * sum_l) / D;
      float m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (m > 0) {  // the model only has non-positive mins
        m = 0;
        s = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; i++) {
        const float diff = s * (float)trial[i] + m - x[i];
        err += w[i] * (diff * diff);
      }
      if (err < best) {
        memcpy(L, trial, (size_t)n);
        best = err;
        scale = s;
        min = m;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): 8 sub-blocks of 32 with 6-bit scales and mins.
// Fills L (codes, 0..nmax) and the block's d, dmin and packed scales.
static void quantize_k4_superblock(const float *x, int nmax, float rmin, float rdelta, int nstep,
                                   dq_half *d_out, dq_half *dmin_out, uint8_t packed[K_SCALE_SIZE],
                                   uint8_t L[QK_K]) {
  float scales[8], mins[8], w[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; j++) {
    const float *xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
    const float av_x = sqrtf(sum_x2 / 32);
    for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
    scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, rdelta, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  memset(packed, 0, K_SCALE_SIZE);
  for (int j = 0; j < 8; j++) {
    const int ls = clampi(round_even(inv_scale * scales[j]), 0, 63);
    const int lm = clampi(round_even(inv_min * mins[j]), 0, 63);
    if (j < 4) {  // low 6 bits in bytes 0..3 (scale) and 4..7 (min)
      packed[j] |= (uint8_t)ls;
      packed[j + 4] |= (uint8_t)lm;
    } else {      // low 4 bits in bytes 8..11, top 2 bits in the spare bits of bytes 0..7
      packed[j + 4] = (uint8_t)((ls & 0x0F) | ((lm & 0x0F) << 4));
      packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
      packed[j] |= (uint8_t)((lm >> 4) << 6);
    }
  }
  *d_out = dq_fp32_to_fp16(max_scale / 63.0f);
  *dmin_out = dq_fp32_to_fp16(max_min / 63.0f);
  // recompute the codes against the scales as they will be read back
  const float d = dq_fp16_to_fp32(*d_out), dmin = dq_fp16_to_fp32(*dmin_out);
  for (int j = 0; j < 8; j++) {
    uint8_t sc, m;
    dq_get_scale_min_k4(j, packed, &sc, &m);
    const float ds = d * (float)sc;
    if (ds == 0.0f) continue;  // keep the fit's codes; they multiply a zero scale anyway
    const float dm = dmin * (float)m;
    for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)clampi(round_even((x[32 * j + l] + dm) / ds), 0, nmax);
  }
}

void dq_quantize_row_q4_K(const float *x, void *dst, int64_t n) {
  block_q4_K *b = dst;
  uint8_t L[QK_K];
  for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
    quantize_k4_superblock(x, 15, -1.0f, 0.1f, 20, &b[i].d, &b[i].dmin, b[i].scales, L);
    for (int j = 0; j < 4; j++) {
      for (int l = 0; l < 32; l++) b[i].qs[32 * j + l] = (uint8_t)(L[64 * j + l] | (L[64 * j + 32 + l] << 4));
    }
  }
}

void dq_quantize_row_q5_K(const float *x, void *dst, int64_t n) {
  block_q5_K *b = dst;
  uint8_t L[QK_K];
  for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
    quantize_k4_superblock(x, 31, -0.5f, 0.1f, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
    memset(b[i].qh, 0, sizeof b[i].qh);
    for (int j = 0; j < 4; j++) {
      for (int l = 0; l < 32; l++) {
        const int lo = L[64 * j + l], hi = L[64 * j + 32 + l];
        b[i].qs[32 * j + l] = (uint8_t)((lo & 0x0F) | ((hi & 0x0F) << 4));
        b[i].qh[l] |= (uint8_t)(((lo >> 4) << (2 * j)) | ((hi >> 4) << (2 * j + 1)));
      }
    }
  }
}

// Symmetric fit x[i] ~ scale * (L[i] - nmax), L - nmax in [-nmax, nmax - 1], weights x[i]^2:
// start from the extreme value mapping to -nmax, try 18 nearby inverse scales, keep the one
// with the best least-squares fit (ggml's make_qx_quants, rmse_type 1). Returns the scale.
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++) {
    const float ax = fabsf(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (int i = 0; i < n; i++) L[i] = 0;
    return 0.0f;
  }
  float iscale = (float)(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    const int l = clampi(round_even(iscale * x[i]), -nmax, nmax - 1);
    L[i] = (int8_t)(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * (float)l;
    suml2 += w * (float)l * (float)l;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int k = -9; k <= 9; k++) {
    if (k == 0) continue;
    iscale = -((float)nmax + 0.1f * (float)k) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      const int l = clampi(round_even(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * (float)l;
      suml2 += w * (float)l * (float)l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(round_even(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void dq_quantize_row_q6_K(const float *x, void *dst, int64_t n) {
  block_q6_K *b = dst;
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
    float max_scale = 0, max_abs = 0;
    for (int k = 0; k < QK_K / 16; k++) {
      scales[k] = fit_scale_sym(16, 32, x + 16 * k, L + 16 * k);
      if (fabsf(scales[k]) > max_abs) {
        max_abs = fabsf(scales[k]);
        max_scale = scales[k];
      }
    }
    if (max_abs < GROUP_MAX_EPS) {
      memset(&b[i], 0, sizeof b[i]);  // all codes 0 with d = 0: the block reads as zeros
      continue;
    }
    const float iscale = -128.0f / max_scale;
    b[i].d = dq_fp32_to_fp16(1 / iscale);
    for (int k = 0; k < QK_K / 16; k++) {
      const int s = round_even(iscale * scales[k]);
      b[i].scales[k] = (int8_t)(s > 127 ? 127 : s);
    }
    const float d = dq_fp16_to_fp32(b[i].d);
    for (int k = 0; k < QK_K / 16; k++) {
      const float dk = d * (float)b[i].scales[k];
      if (dk == 0.0f) continue;
      for (int l = 0; l < 16; l++) L[16 * k + l] = (int8_t)(32 + clampi(round_even(x[16 * k + l] / dk), -32, 31));
    }
    // element 128h + 32q + l: low nibble in ql[64h + 32(q&1) + l] (low half for q<2, high for
    // q>=2), top 2 bits at bit 2q of qh[32h + l]
    for (int h = 0; h < 2; h++) {
      const int8_t *Lh = L + 128 * h;
      for (int l = 0; l < 32; l++) {
        const int q0 = Lh[l], q1 = Lh[l + 32], q2 = Lh[l + 64], q3 = Lh[l + 96];
        b[i].ql[64 * h + l] = (uint8_t)((q0 & 0x0F) | ((q2 & 0x0F) << 4));
        b[i].ql[64 * h + 32 + l] = (uint8_t)((q1 & 0x0F) | ((q3 & 0x0F) << 4));
        b[i].qh[32 * h + l] = (uint8_t)((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
      }
    }
  }
}
