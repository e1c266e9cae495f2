// A per-thread working buffer for the kernels that prepare operands or repack rows per call:
// grown to the largest size asked, kept, 64-byte aligned. Private to CKernels.
#ifndef DQ_SCRATCH_H
#define DQ_SCRATCH_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
  uint8_t *buf;
  size_t cap;
} dq_scratch;

// s->buf holding at least `bytes`, or NULL when that memory cannot be had (s unchanged).
static inline uint8_t *dq_scratch_reserve(dq_scratch *s, size_t bytes) {
  if (s->cap >= bytes) return s->buf;
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes) != 0) return NULL;
  free(s->buf);
  s->buf = p;
  s->cap = bytes;
  return s->buf;
}
#endif
