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

// y[r] = W[r,:] · x for r in [0, rows), rows split across the pool's threads in contiguous
// chunks. x is already quantized to dq_vec_dot_type(type).
void dq_pool_matvec(dq_pool *pool, uint32_t type, int64_t n, const void *w, size_t row_stride,
                    const void *x, float *y, int64_t rows);

#ifdef __cplusplus
}
#endif
