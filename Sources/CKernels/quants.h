// Private to CKernels: the ggml block layouts (declared once, sizes asserted), the scalar
// fp16 helpers the kernels share, and the tables of kernel functions the dispatcher picks from.
// Nothing here is visible to Swift; Swift passes raw row pointers and element counts.
#pragma once
#include <stdint.h>
#include <string.h>

#include "ckernels.h"

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef uint16_t dq_half;  // IEEE binary16 bits, little-endian like everything else here

// x = d * (q - 8), q the 4-bit code; element j in the low nibble of qs[j], j+16 in the high.
typedef struct {
  dq_half d;
  uint8_t qs[QK4_0 / 2];
} block_q4_0;
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must be 18 bytes");

// x = d * q + m, q the 4-bit code (same nibble order as q4_0).
typedef struct {
  dq_half d;
  dq_half m;
  uint8_t qs[QK4_1 / 2];
} block_q4_1;
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 must be 20 bytes");

// x = d * (q - 16), q = low nibble from qs (as q4_0) | bit j of the 32-bit little-endian qh << 4.
typedef struct {
  dq_half d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
} block_q5_0;
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 must be 22 bytes");

// x = d * q + m with the 5-bit q of q5_0.
typedef struct {
  dq_half d;
  dq_half m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
} block_q5_1;
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 must be 24 bytes");

// x = d * q.
typedef struct {
  dq_half d;
  int8_t qs[QK8_0];
} block_q8_0;
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must be 34 bytes");

// x = d * q; s = half(d * sum(q)) so a q4_1/q5_1 dot gets its min term without a pass over q.
typedef struct {
  dq_half d;
  dq_half s;
  int8_t qs[QK8_1];
} block_q8_1;
_Static_assert(sizeof(block_q8_1) == 36, "block_q8_1 must be 36 bytes");

// Super-block of 8 sub-blocks of 32: x = d * sc_j * q - dmin * m_j, with 6-bit sc_j, m_j packed
// in `scales` (see dq_get_scale_min_k4) and 4-bit q: sub-block 2i in the low nibbles of
// qs[32i..32i+32), sub-block 2i+1 in the high nibbles.
typedef struct {
  dq_half d;
  dq_half dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
} block_q4_K;
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K must be 144 bytes");

// As q4_K with a fifth bit: element l of sub-block j has its high bit at bit j of qh[l].
typedef struct {
  dq_half d;
  dq_half dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
} block_q5_K;
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K must be 176 bytes");

// 16 sub-blocks of 16: x = d * scales[k] * (q - 32), q 6 bits (4 in ql, 2 in qh).
typedef struct {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  dq_half d;
} block_q6_K;
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K must be 210 bytes");

// Activation super-block for k-quant dots: x = d * q (d is fp32), bsums[k] = sum of qs[16k..16k+16).
typedef struct {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
} block_q8_K;
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K must be 292 bytes");

// 6-bit scale and min of sub-block j (0..7) of a q4_K/q5_K super-block.
static inline void dq_get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (uint8_t)((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

static inline uint32_t dq_load_u32le(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);  // x86-64 and aarch64 are little-endian, as is the file format
  return v;
}

#define DQ_H2F(h) dq_fp16_to_fp32(h)

// K-quant reference quantizers (quants_k_ref.c).
void dq_quantize_row_q4_K(const float *x, void *dst, int64_t n);
void dq_quantize_row_q5_K(const float *x, void *dst, int64_t n);
void dq_quantize_row_q6_K(const float *x, void *dst, int64_t n);

// Kernel signatures shared by the reference and SIMD tables.
typedef float (*dq_dot_fn)(int64_t n, const void *w, const void *x);
typedef void (*dq_dequant_fn)(const void *src, float *dst, int64_t n);
// Two rows at once: y[0] = dot(w0, x), y[1] = dot(w1, x), bit-identical to the one-row kernel.
typedef void (*dq_dot2_fn)(int64_t n, const void *w0, const void *w1, const void *x, float *y);

// Reference kernels (quants_ref.c); NULL entries mean "not supported".
dq_dot_fn dq_ref_dot_kernel(uint32_t type);
dq_dequant_fn dq_ref_dequant_kernel(uint32_t type);
// AVX2/FMA/F16C kernels (quants_avx2.c); NULL where there is no SIMD twin (the reference is used).
dq_dot_fn dq_avx2_dot_kernel(uint32_t type);
dq_dequant_fn dq_avx2_dequant_kernel(uint32_t type);
dq_dot2_fn dq_avx2_dot2_kernel(uint32_t type);
// One weight row against 4 activation rows (x_stride bytes apart): y[j * ldy] for j < 4.
typedef void (*dq_tile4_fn)(int64_t n, const void *w, const void *x, size_t x_stride, float *y,
                            int64_t ldy);
dq_tile4_fn dq_avx2_tile4_kernel(uint32_t type, bool vnni);
// AVX-512 F/BW/VL/VNNI decode kernels (quants_avx512.c): rows consecutive rows (row_stride
// bytes apart) against one activation row, y[r] bit-identical to the one-row dot; NULL where
// there is none (the AVX2 kernels are used).
typedef void (*dq_matvec_fn)(int64_t n, const void *w, size_t row_stride, const void *x, float *y,
                             int64_t rows);
dq_matvec_fn dq_avx512_matvec_kernel(uint32_t type);
// The same kernels against several activation rows (xs bytes apart): y[t * ldy + r] for
// r < rows, t < tokens, each bit-identical to the one-row dot (so to a one-token step), each
// weight row read once for up to 8 tokens; NULL where there is none. Returns false, doing
// nothing, when its scratch cannot be allocated.
typedef bool (*dq_matmul_tokens_fn)(int64_t n, const void *w, size_t row_stride, const void *x, size_t xs,
                                    int64_t tokens, float *y, int64_t ldy, int64_t rows);
dq_matmul_tokens_fn dq_avx512_matvec_tokens_kernel(uint32_t type);
dq_dot_fn dq_avx512_dot_kernel(uint32_t type);
typedef void (*dq_quant_fn)(const float *src, void *dst, int64_t n);
// Activation quantizers (Q8_0, Q8_1, Q8_K) with the reference's exact bytes; NULL for other types.
dq_quant_fn dq_avx2_quant_kernel(uint32_t type);
// The shadow Q4_0 kernel (q4_0_x16.c): rows against up to any number of tokens, NULL where the
// CPU has no AVX-512 VNNI.
dq_matmul_tokens_fn dq_q4_0_x16_tokens_kernel(void);
