// bf16 matrix products for training's frozen projections (opt-in: `--compute-type bf16`):
// both operands rounded to bf16 (nearest even), products summed in fp32 by AVX512-BF16
// `vdpbf16ps`, which does two multiply-adds per fp32 lane, so twice the fp32 FMA rate.
//
// Layout. The product is C[i][j] (+)= sum_k A[i][k] * B[k][j] with k taken in pairs:
// - A (the activations) is packed by dq_bf16_pack_a in panels of DQ_GEMM_BF16_ROWS rows:
//   pair p of row i, (A[i][2p], A[i][2p+1]), is the uint32
//   packed[((i / ROWS) * pairs + p) * ROWS + i % ROWS], rows past the end zero, so the kernel
//   reads one panel front to back and loads 16 rows of a pair with one vector load.
// - B (the weights) is any array of uint32 bf16 pairs: pair p of column j is
//   b[p * ldb_pair + j * ldb_column], element 2p in the low half. A row-major weight row in
//   bf16 (forward, k along the row) is ldb_pair = 1, ldb_column = k/2; two weight rows
//   interleaved by dq_bf16_interleave_rows (backward, k down the rows) is ldb_pair = n,
//   ldb_column = 1.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { DQ_GEMM_BF16_ROWS = 32 };

// AVX512F + AVX512-BF16 (the only machines dq_gemm_bf16 runs on).
bool dq_cpu_has_avx512bf16(void);

// rows rounded up to a multiple of DQ_GEMM_BF16_ROWS.
int64_t dq_bf16_padded_rows(int64_t rows);

// Packs rows x (2 * pairs) fp32 (row stride lda) as described above; packed holds
// pairs * dq_bf16_padded_rows(rows) uint32.
void dq_bf16_pack_a(uint32_t *packed, const float *a, int64_t lda, int64_t rows, int64_t pairs);

// out[j] = bf16(x[j]) for j < n.
void dq_bf16_convert(uint16_t *out, const float *x, int64_t n);

// out[2j] = bf16(row0[j]), out[2j + 1] = bf16(row1[j]) for j < n.
void dq_bf16_interleave_rows(uint16_t *out, const float *row0, const float *row1, int64_t n);

// c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0) + sum_p A-pair(p, i) · B-pair(p, j)
// for i < rows, j < columns, p < pairs; a_packed from dq_bf16_pack_a(rows, pairs).
// Without AVX512-BF16 it runs _ref, the scalar twin (same rounding and order, far slower: the
// trainer refuses bf16 on such CPUs).
void dq_gemm_bf16(float *c, int64_t ldc, const uint32_t *a_packed, int64_t rows,
                  const uint32_t *b, int64_t ldb_pair, int64_t ldb_column, int64_t columns,
                  int64_t pairs, bool accumulate);
void dq_gemm_bf16_ref(float *c, int64_t ldc, const uint32_t *a_packed, int64_t rows,
                      const uint32_t *b, int64_t ldb_pair, int64_t ldb_column, int64_t columns,
                      int64_t pairs, bool accumulate);

#ifdef __cplusplus
}
#endif
