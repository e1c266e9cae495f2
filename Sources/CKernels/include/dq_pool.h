// A fixed pool of compute threads for data-parallel kernels. The caller takes part as
// thread 0; workers spin briefly between jobs (a decode step runs hundreds of short jobs,
// each far too short to pay for a sleep/wake) and then sleep on a condition variable.
#pragma once
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dq_pool dq_pool;
// fn(ctx, ith, nth) runs once on each of nth threads; ith in [0, nth).
typedef void (*dq_pool_fn)(void *ctx, int ith, int nth);

// n_threads >= 1 counts the caller. Returns NULL if a thread could not be started.
dq_pool *dq_pool_create(int n_threads);
void dq_pool_destroy(dq_pool *pool);
int dq_pool_threads(const dq_pool *pool);
// Runs fn on every thread and returns when all have finished. Not reentrant: one job at a time
// per pool (the owner serialises calls).
void dq_pool_run(dq_pool *pool, dq_pool_fn fn, void *ctx);

// Returns *counter and adds step to it, atomically (relaxed): threads of one job claiming work
// items as they go, so a thread that is descheduled leaves its items to the others.
int64_t dq_pool_claim(int64_t *counter, int64_t step);

// y[r] = W[r,:] · x for r in [0, rows), rows split across the pool's threads in contiguous
// chunks. x is already quantized to dq_vec_dot_type(type).
void dq_pool_matvec(dq_pool *pool, uint32_t type, int64_t n, const void *w, size_t row_stride,
                    const void *x, float *y, int64_t rows);

// One matrix of a fused matvec: y[r] = W[r,:] · x for r in [0, rows).
typedef struct {
  uint32_t type;
  const void *w;
  size_t row_stride;
  float *y;
  int64_t rows;
} dq_matvec_target;

// Several matvecs on the same activation x (already quantized to the dot type they share,
// e.g. q/k/v or gate/up) in one pool job: one dispatch and one barrier instead of one each.
// Threads claim chunks of rows as they go, so a descheduled thread leaves its share to others.
void dq_pool_matvec_many(dq_pool *pool, int64_t n, const void *x, const dq_matvec_target *targets,
                         int count);

// y[t * ldy + r] = W[r,:] · x_t for r in [0, rows), t in [0, tokens). x holds `tokens`
// activation rows, each x_stride bytes, already quantized to dq_vec_dot_type(type). Threads
// take contiguous row ranges; within one, a block of rows stays in L1 while every token's
// activation streams past it, so weights are read from memory once per batch.
void dq_pool_matmul(dq_pool *pool, uint32_t type, int64_t n, const void *w, size_t row_stride,
                    const void *x, size_t x_stride, int64_t tokens, float *y, int64_t ldy,
                    int64_t rows);

// An unmerged LoRA update in F16 factors, added to a projection: y += scale · B (A x).
typedef struct {
  const uint16_t *a;   // rank x n, row-major (A)
  const uint16_t *bt;  // rank x rows, row-major (B transposed)
  int64_t rank;
  float scale;
} dq_lora_f16;

// dq_pool_matvec plus an unmerged LoRA update in the same pool job (one dispatch instead of
// three): threads first claim chunks of u = scale · A x_f32 (ranks) until none are left, then
// compute their rows of W x, wait until all of u is in, and add their rows of Bᵀᵀ u. x_f32 is
// the fp32 input (x its quantized copy); u is caller scratch of lora->rank floats.
void dq_pool_matvec_lora(dq_pool *pool, uint32_t type, int64_t n, const void *w, size_t row_stride,
                         const void *x, const float *x_f32, float *y, int64_t rows,
                         const dq_lora_f16 *lora, float *u);

// One adapter's token rows in a multi-row product: rows [first, first + count) of x and y take
// the update `lora`.
typedef struct {
  dq_lora_f16 lora;
  int64_t first;
  int64_t count;
} dq_lora_rows;

// dq_pool_matmul plus the unmerged updates of several adapters, each on its own token rows, in
// one pool job (S-LoRA/Punica's grouped low-rank product on a CPU, one dispatch per projection
// instead of three per adapter). Each thread computes its contiguous slice of output rows of
// W x, then claims (adapter, chunk of ranks) items of u_t = scale · A x_f32[t] for all of that
// adapter's rows (a chunk of A is read once for all of them), waits until every u is in, and
// adds Bᵀᵀ u_t to its slice for each adapter's rows. With at least as many adapters as threads,
// each thread instead takes whole adapters (both steps over all rows, after every thread's
// slice of W x is in), so each factor matrix is read front to back by one thread. w == NULL
// skips the base product (y already holds it). x_f32 has rows of n floats; u is caller scratch of tokens x ldu floats,
// ldu >= every rank. Slices are multiples of 32 rows, as the single-adapter paths.
void dq_pool_matmul_lora(dq_pool *pool, uint32_t type, int64_t n, const void *w, size_t row_stride,
                         const void *x, size_t x_stride, const float *x_f32, int64_t tokens,
                         float *y, int64_t ldy, int64_t rows, const dq_lora_rows *groups,
                         int group_count, float *u, int64_t ldu);

#ifdef __cplusplus
}
#endif
