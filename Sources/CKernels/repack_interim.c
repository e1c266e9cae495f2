// INTERIM (plumbing only, replaced by the real r16 kernels before merging): a "group" is 16
// plain rows copied contiguously, and the products run the ordinary kernels on them, so every
// result keeps today's bits while the load-time repacking and the dispatch are tested.
#include <string.h>
#include "ckernels.h"

bool dq_r16_supported(uint32_t type) {
  return type == DQ_TYPE_Q4_K || type == DQ_TYPE_Q5_K || type == DQ_TYPE_Q6_K;
}

size_t dq_r16_group_bytes(uint32_t type, int64_t n) { return 16 * (size_t)dq_row_size(type, n); }

void dq_r16_pack_group(uint32_t type, int64_t n, const void *w, size_t row_stride, int64_t rows, void *out) {
  const size_t rs = (size_t)dq_row_size(type, n);
  memset(out, 0, 16 * rs);
  for (int64_t r = 0; r < rows; r++) memcpy((char *)out + r * rs, (const char *)w + r * row_stride, rs);
}

void dq_r16_matmul(uint32_t type, int64_t n, const void *packed, const void *x, size_t x_stride,
                   int64_t tokens, float *y, int64_t ldy, int64_t rows) {
  const size_t rs = (size_t)dq_row_size(type, n);
  if (tokens == 1)
    dq_matvec_rows(type, n, packed, rs, x, y, 0, rows);
  else
    dq_matmul_rows(type, n, packed, rs, x, x_stride, tokens, y, ldy, 0, rows);
}
