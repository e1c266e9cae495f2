// bf16 products (see dq_gemm_bf16.h). The kernel keeps a 32-row x up-to-12-column block of C
// in 24 zmm accumulators: per pair of k it loads the panel's two vectors of 16 A-pairs and
// broadcasts each column's B-pair from memory, 24 vdpbf16ps per 2 loads. Accumulators run down
// the rows, so the finished block is transposed through a small buffer on its way into C
// (once per block, against 24 x pairs dot instructions).
#include "dq_gemm_bf16.h"

#include "ckernels.h"
#include "cpu_features.h"

#include "dq_simd.h"
#if DQ_X86_SIMD
#include <immintrin.h>
#endif

enum { ROWS = DQ_GEMM_BF16_ROWS, MAX_COLUMNS = 12 };

int64_t dq_bf16_padded_rows(int64_t rows) { return (rows + ROWS - 1) / ROWS * ROWS; }

static inline uint32_t bf16_pair(float low, float high) {
  return (uint32_t)dq_fp32_to_bf16(low) | ((uint32_t)dq_fp32_to_bf16(high) << 16);
}

// Writes pair p of `row` to out[p * ROWS] for p < pairs (one row of an A panel).
typedef void (*pack_row_fn)(uint32_t *out, const float *row, int64_t pairs);

static void pack_panels(uint32_t *packed, const float *a, int64_t lda, int64_t rows, int64_t pairs,
                        pack_row_fn pack_row) {
  const int64_t padded = dq_bf16_padded_rows(rows);
  for (int64_t panel = 0; panel < padded; panel += ROWS) {
    uint32_t *out = packed + panel * pairs;
    for (int64_t i = 0; i < ROWS; i++) {
      if (panel + i < rows) {
        pack_row(out + i, a + (panel + i) * lda, pairs);
      } else {
        for (int64_t p = 0; p < pairs; p++) out[p * ROWS + i] = 0;
      }
    }
  }
}

static void pack_row_scalar(uint32_t *out, const float *row, int64_t pairs) {
  for (int64_t p = 0; p < pairs; p++) out[p * ROWS] = bf16_pair(row[2 * p], row[2 * p + 1]);
}

static void convert_scalar(uint16_t *out, const float *x, int64_t n) {
  for (int64_t j = 0; j < n; j++) out[j] = dq_fp32_to_bf16(x[j]);
}

static void interleave_scalar(uint16_t *out, const float *row0, const float *row1, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    out[2 * j] = dq_fp32_to_bf16(row0[j]);
    out[2 * j + 1] = dq_fp32_to_bf16(row1[j]);
  }
}

#if DQ_X86_SIMD
// vcvtne2ps2bf16 rounds to nearest even like dq_fp32_to_bf16 (it flushes fp32 denormals to
// zero, which no weight or activation here is).
#define BF16_TARGET __attribute__((target("avx512f,avx512bf16")))

BF16_TARGET static inline __m512i convert32(const float *x) {
  return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
}

// 16 pairs of the row at a time, scattered down 16 slots of the panel.
BF16_TARGET static void pack_row_avx512(uint32_t *out, const float *row, int64_t pairs) {
  const int64_t wide = pairs / 16 * 16;
  const __m512i stride = _mm512_mullo_epi32(
      _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(ROWS));
  for (int64_t p = 0; p < wide; p += 16)
    _mm512_i32scatter_epi32(out + p * ROWS, stride, convert32(row + 2 * p), 4);
  pack_row_scalar(out + wide * ROWS, row + 2 * wide, pairs - wide);
}

BF16_TARGET static void convert_avx512(uint16_t *out, const float *x, int64_t n) {
  const int64_t wide = n / 32 * 32;
  for (int64_t j = 0; j < wide; j += 32) _mm512_storeu_si512(out + j, convert32(x + j));
  convert_scalar(out + wide, x + wide, n - wide);
}

BF16_TARGET static void interleave_avx512(uint16_t *out, const float *row0, const float *row1,
                                          int64_t n) {
  const int64_t wide = n / 16 * 16;
  for (int64_t j = 0; j < wide; j += 16) {
    const __m512i low = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(row0 + j)));
    const __m512i high = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(row1 + j)));
    _mm512_storeu_si512(out + 2 * j, _mm512_or_si512(low, _mm512_slli_epi32(high, 16)));
  }
  interleave_scalar(out + 2 * wide, row0 + wide, row1 + wide, n - wide);
}
#endif

void dq_bf16_pack_a(uint32_t *packed, const float *a, int64_t lda, int64_t rows, int64_t pairs) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx512bf16()) return pack_panels(packed, a, lda, rows, pairs, pack_row_avx512);
#endif
  pack_panels(packed, a, lda, rows, pairs, pack_row_scalar);
}

void dq_bf16_convert(uint16_t *out, const float *x, int64_t n) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx512bf16()) return convert_avx512(out, x, n);
#endif
  convert_scalar(out, x, n);
}

void dq_bf16_interleave_rows(uint16_t *out, const float *row0, const float *row1, int64_t n) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx512bf16()) return interleave_avx512(out, row0, row1, n);
#endif
  interleave_scalar(out, row0, row1, n);
}

// vdpbf16ps's order: the high products first, then the low, each rounded to fp32 (the
// products of two bf16 are exact in fp32).
static inline float dot_pair(float acc, uint32_t a, uint32_t b) {
  acc += dq_bf16_to_fp32((uint16_t)(a >> 16)) * dq_bf16_to_fp32((uint16_t)(b >> 16));
  acc += dq_bf16_to_fp32((uint16_t)a) * dq_bf16_to_fp32((uint16_t)b);
  return acc;
}

void dq_gemm_bf16_ref(float *c, int64_t ldc, const uint32_t *a_packed, int64_t rows,
                      const uint32_t *b, int64_t ldb_pair, int64_t ldb_column, int64_t columns,
                      int64_t pairs, bool accumulate) {
  for (int64_t i = 0; i < rows; i++) {
    const uint32_t *panel = a_packed + (i / ROWS) * ROWS * pairs + i % ROWS;
    for (int64_t j = 0; j < columns; j++) {
      float sum = 0;
      for (int64_t p = 0; p < pairs; p++)
        sum = dot_pair(sum, panel[p * ROWS], b[p * ldb_pair + j * ldb_column]);
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum;
    }
  }
}

#if DQ_X86_SIMD
// One block: 32 rows (one A panel) x `width` columns starting at b. `width` is a constant at
// every call site, so the accumulator arrays live in registers.
BF16_TARGET __attribute__((always_inline)) static inline void block(
    float *c, int64_t ldc, const uint32_t *panel, int64_t valid_rows, const uint32_t *b,
    int64_t ldb_pair, int64_t ldb_column, const int width, int64_t pairs, bool accumulate) {
  __m512 low[MAX_COLUMNS], high[MAX_COLUMNS];
  for (int j = 0; j < width; j++) low[j] = high[j] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; p++) {
    const __m512bh a0 = (__m512bh)_mm512_loadu_si512(panel + p * ROWS);
    const __m512bh a1 = (__m512bh)_mm512_loadu_si512(panel + p * ROWS + 16);
    const uint32_t *bp = b + p * ldb_pair;
    for (int j = 0; j < width; j++) {
      const __m512bh bj = (__m512bh)_mm512_set1_epi32((int)bp[j * ldb_column]);
      low[j] = _mm512_dpbf16_ps(low[j], a0, bj);
      high[j] = _mm512_dpbf16_ps(high[j], a1, bj);
    }
  }
  float out[MAX_COLUMNS][ROWS];
  for (int j = 0; j < width; j++) {
    _mm512_storeu_ps(out[j], low[j]);
    _mm512_storeu_ps(out[j] + 16, high[j]);
  }
  for (int64_t i = 0; i < valid_rows; i++) {
    float *ci = c + i * ldc;
    if (accumulate)
      for (int j = 0; j < width; j++) ci[j] += out[j][i];
    else
      for (int j = 0; j < width; j++) ci[j] = out[j][i];
  }
}

// The column tail (fewer than 12 left), each width its own unrolled copy.
BF16_TARGET static void tail_block(float *c, int64_t ldc, const uint32_t *panel, int64_t valid_rows,
                                   const uint32_t *b, int64_t ldb_pair, int64_t ldb_column,
                                   int width, int64_t pairs, bool accumulate) {
  switch (width) {
#define TAIL(w) \
  case w: block(c, ldc, panel, valid_rows, b, ldb_pair, ldb_column, w, pairs, accumulate); break;
    TAIL(1) TAIL(2) TAIL(3) TAIL(4) TAIL(5) TAIL(6) TAIL(7) TAIL(8) TAIL(9) TAIL(10) TAIL(11)
#undef TAIL
    default: break;
  }
}

// Bytes of A kept in L2 while the column panels pass over them.
enum { A_BLOCK_BYTES = 256 * 1024 };

// Row blocks of A sized for L2, outermost; within one, column-panel outer and row-panel inner:
// a panel of 12 columns of B (12 x pairs pairs) stays in L1 while the block's A panels stream
// past it from L2. (Without the row blocks, a long A — thousands of tokens — would stream from
// memory once per 12 columns.)
BF16_TARGET static void gemm_avx512(float *c, int64_t ldc, const uint32_t *a_packed, int64_t rows,
                                    const uint32_t *b, int64_t ldb_pair, int64_t ldb_column,
                                    int64_t columns, int64_t pairs, bool accumulate) {
  int64_t block_rows = A_BLOCK_BYTES / (4 * pairs) / ROWS * ROWS;
  if (block_rows < ROWS) block_rows = ROWS;
  for (int64_t first = 0; first < rows; first += block_rows) {
    const int64_t last = rows - first < block_rows ? rows : first + block_rows;
    for (int64_t j = 0; j < columns; j += MAX_COLUMNS) {
      const int width = columns - j < MAX_COLUMNS ? (int)(columns - j) : MAX_COLUMNS;
      const uint32_t *bj = b + j * ldb_column;
      for (int64_t i = first; i < last; i += ROWS) {
        const uint32_t *panel = a_packed + i * pairs;
        const int64_t valid = rows - i < ROWS ? rows - i : ROWS;
        float *cij = c + i * ldc + j;
        if (width == MAX_COLUMNS)
          block(cij, ldc, panel, valid, bj, ldb_pair, ldb_column, MAX_COLUMNS, pairs, accumulate);
        else
          tail_block(cij, ldc, panel, valid, bj, ldb_pair, ldb_column, width, pairs, accumulate);
      }
    }
  }
}
#endif

void dq_gemm_bf16(float *c, int64_t ldc, const uint32_t *a_packed, int64_t rows,
                  const uint32_t *b, int64_t ldb_pair, int64_t ldb_column, int64_t columns,
                  int64_t pairs, bool accumulate) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx512bf16()) {
    gemm_avx512(c, ldc, a_packed, rows, b, ldb_pair, ldb_column, columns, pairs, accumulate);
    return;
  }
#endif
  dq_gemm_bf16_ref(c, ldc, a_packed, rows, b, ldb_pair, ldb_column, columns, pairs, accumulate);
}
