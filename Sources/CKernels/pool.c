// Thread pool: a generation counter publishes each job; workers spin on it for a short while,
// then block on a condition variable. Completion is an atomic count the caller spins on.
#define _GNU_SOURCE
#include "dq_pool.h"
#include "ckernels.h"
#include "dq_ops.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "dq_simd.h"
#if DQ_X86_SIMD
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

// Spinners yield the CPU every YIELD_EVERY pauses: with more runnable threads than cores
// (oversubscription, or other work on the machine), a pure spin keeps the thread that still
// has to finish its part off the CPU until the scheduler preempts the spinner, milliseconds
// per job.
enum { SPIN_ITERATIONS = 200000, YIELD_EVERY = 64 };

struct dq_pool {
  int n_threads;
  pthread_t *threads;
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  _Atomic uint64_t generation;  // bumped once per job
  _Atomic int pending;          // workers still running the current job
  _Atomic bool stopping;
  dq_pool_fn fn;
  void *ctx;
};

typedef struct {
  dq_pool *pool;
  int ith;
} worker_arg;

static void *worker_main(void *p) {
  worker_arg arg = *(worker_arg *)p;
  free(p);
  dq_pool *pool = arg.pool;
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen;
    int spins = 0;
    while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
           !atomic_load_explicit(&pool->stopping, memory_order_acquire)) {
      if (++spins < SPIN_ITERATIONS) {
        cpu_relax();
        // Let a descheduled thread of this pool run when there are more threads than cores.
        if (spins % YIELD_EVERY == 0) sched_yield();
        continue;
      }
      pthread_mutex_lock(&pool->mutex);
      while (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen &&
             !atomic_load_explicit(&pool->stopping, memory_order_acquire))
        pthread_cond_wait(&pool->wake, &pool->mutex);
      pthread_mutex_unlock(&pool->mutex);
      spins = 0;
    }
    if (atomic_load_explicit(&pool->stopping, memory_order_acquire)) return NULL;
    seen = gen;
    pool->fn(pool->ctx, arg.ith, pool->n_threads);
    atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
  }
}

dq_pool *dq_pool_create(int n_threads) {
  if (n_threads < 1) n_threads = 1;
  dq_pool *pool = calloc(1, sizeof(dq_pool));
  if (!pool) return NULL;
  pool->n_threads = n_threads;
  pthread_mutex_init(&pool->mutex, NULL);
  pthread_cond_init(&pool->wake, NULL);
  atomic_init(&pool->generation, 0);
  atomic_init(&pool->pending, 0);
  atomic_init(&pool->stopping, false);
  pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
  if (!pool->threads) {
    free(pool);
    return NULL;
  }
  for (int i = 1; i < n_threads; i++) {
    worker_arg *arg = malloc(sizeof(worker_arg));
    if (arg) *arg = (worker_arg){pool, i};
    if (!arg || pthread_create(&pool->threads[i], NULL, worker_main, arg) != 0) {
      free(arg);
      pool->n_threads = i;  // destroy joins only the threads that started
      dq_pool_destroy(pool);
      return NULL;
    }
  }
  return pool;
}

void dq_pool_destroy(dq_pool *pool) {
  if (!pool) return;
  pthread_mutex_lock(&pool->mutex);
  atomic_store_explicit(&pool->stopping, true, memory_order_release);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->mutex);
  for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
  pthread_cond_destroy(&pool->wake);
  pthread_mutex_destroy(&pool->mutex);
  free(pool->threads);
  free(pool);
}

int dq_pool_threads(const dq_pool *pool) { return pool->n_threads; }

void dq_pool_run(dq_pool *pool, dq_pool_fn fn, void *ctx) {
  if (pool->n_threads == 1) {
    fn(ctx, 0, 1);
    return;
  }
  pool->fn = fn;
  pool->ctx = ctx;
  atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_release);
  pthread_mutex_lock(&pool->mutex);
  atomic_fetch_add_explicit(&pool->generation, 1, memory_order_acq_rel);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->mutex);
  fn(ctx, 0, pool->n_threads);
  for (int spins = 1; atomic_load_explicit(&pool->pending, memory_order_acquire) != 0; spins++) {
    cpu_relax();
    if (spins % YIELD_EVERY == 0) sched_yield();
  }
}

int64_t dq_pool_claim(int64_t *counter, int64_t step) {
  return __atomic_fetch_add(counter, step, __ATOMIC_RELAXED);
}

typedef struct {
  uint32_t type;
  int64_t n;
  const void *w;
  size_t row_stride;
  const void *x;
  float *y;
  int64_t rows;
} matvec_job;

void dq_pool_matvec(dq_pool *pool, uint32_t type, int64_t n, const void *w, size_t row_stride,
                    const void *x, float *y, int64_t rows) {
  const dq_matvec_target t = {type, w, row_stride, y, rows};
  dq_pool_matvec_many(pool, n, x, &t, 1);
}

// Decode products split their rows into pieces of MANY_PIECE_ROWS (a multiple of 16: each
// thread's writes to y on their own cache lines), and the pieces into one contiguous share per
// thread. A thread claims its own share from the front, up to MANY_OWNER_PIECES at a time, so
// its weights stream as one sequence from memory (a jump far away restarts the hardware
// prefetchers and wastes the requests past the claim's end). A thread done with its own share
// takes pieces from the back of another's, leaving that owner's stream whole. Near a share's
// end both take at most half of what is left, so the last claims are single pieces and the
// threads finish close together instead of one idling through the other's last 256 rows.
enum { MANY_PIECE_ROWS = 64, MANY_OWNER_PIECES = 4, MANY_MAX_SHARES = 64 };

typedef struct {
  _Alignas(64) uint64_t range;  // (end << 32) | next: the share's pieces not yet claimed
} matvec_share;

typedef struct {
  int64_t n;
  const void *x;
  const dq_matvec_target *targets;
  int count;
  int64_t pieces;
  matvec_share *shares;
  int n_shares;
} matvec_many_job;

static int64_t pieces_of(const dq_matvec_target *t) { return (t->rows + MANY_PIECE_ROWS - 1) / MANY_PIECE_ROWS; }

// Pieces [first, last) of the job (global indices over the targets in order).
static void matvec_many_pieces(const matvec_many_job *job, int64_t first, int64_t last) {
  int64_t k_first = 0;  // piece index where target k starts
  for (int k = 0; k < job->count && first < last; k++) {
    const dq_matvec_target *t = &job->targets[k];
    const int64_t k_end = k_first + pieces_of(t);
    if (first < k_end) {
      const int64_t begin = (first - k_first) * MANY_PIECE_ROWS;
      const int64_t stop = last < k_end ? last : k_end;
      const int64_t end = (stop - k_first) * MANY_PIECE_ROWS < t->rows ? (stop - k_first) * MANY_PIECE_ROWS : t->rows;
      dq_matvec_rows(t->type, job->n, t->w, t->row_stride, job->x, t->y + begin, begin, end);
      first = stop;
    }
    k_first = k_end;
  }
}

// Claims pieces of `share`: from the front for its owner, from the back for anyone else.
// Returns false when none are left; else [*first, *last).
static bool claim_pieces(matvec_share *share, bool owner, int64_t *first, int64_t *last) {
  uint64_t range = __atomic_load_n(&share->range, __ATOMIC_RELAXED);
  for (;;) {
    const int64_t next = (int64_t)(range & 0xffffffffu), end = (int64_t)(range >> 32);
    const int64_t left = end - next;
    if (left <= 0) return false;
    // the owner rounds half up, a thief down (at least one): with one piece left, either takes it
    int64_t take = owner ? (left + 1) / 2 : (left / 2 > 0 ? left / 2 : 1);
    if (take > MANY_OWNER_PIECES) take = MANY_OWNER_PIECES;
    const uint64_t claimed = owner ? ((uint64_t)end << 32) | (uint64_t)(next + take)
                                   : ((uint64_t)(end - take) << 32) | (uint64_t)next;
    if (__atomic_compare_exchange_n(&share->range, &range, claimed, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      *first = owner ? next : end - take;
      *last = owner ? next + take : end;
      return true;
    }
  }
}

static void matvec_many_part(void *p, int ith, int nth) {
  (void)nth;
  matvec_many_job *job = p;
  // own share first, then the others' in turn
  for (int i = 0; i < job->n_shares; i++) {
    matvec_share *share = &job->shares[(ith + i) % job->n_shares];
    int64_t first, last;
    while (claim_pieces(share, i == 0 && ith < job->n_shares, &first, &last)) matvec_many_pieces(job, first, last);
  }
}

void dq_pool_matvec_many(dq_pool *pool, int64_t n, const void *x, const dq_matvec_target *targets,
                         int count) {
  matvec_share shares[MANY_MAX_SHARES];
  const int threads = dq_pool_threads(pool);
  matvec_many_job job = {n, x, targets, count, 0, shares, threads < MANY_MAX_SHARES ? threads : MANY_MAX_SHARES};
  for (int k = 0; k < count; k++) job.pieces += pieces_of(&targets[k]);
  for (int i = 0; i < job.n_shares; i++) {
    const uint64_t first = (uint64_t)(job.pieces * i / job.n_shares), end = (uint64_t)(job.pieces * (i + 1) / job.n_shares);
    shares[i].range = (end << 32) | first;
  }
  dq_pool_run(pool, matvec_many_part, &job);
}

typedef struct {
  matvec_job mv;
  const float *x_f32;
  dq_lora_f16 lora;
  float *u;
  _Atomic int64_t next_k;  // first rank of u not yet claimed by a thread
  _Atomic int64_t done_k;  // ranks of u written
} matvec_lora_job;

enum { LORA_RANK_CHUNK = 4 };

// Spins (yielding now and then) until *counter reaches target.
static void wait_until(_Atomic int64_t *counter, int64_t target) {
  for (int spins = 1; atomic_load_explicit(counter, memory_order_acquire) < target; spins++) {
    cpu_relax();
    if (spins % YIELD_EVERY == 0) sched_yield();
  }
}

static void matvec_lora_part(void *p, int ith, int nth) {
  matvec_lora_job *job = p;
  const matvec_job *mv = &job->mv;
  const dq_lora_f16 *lora = &job->lora;
  // u = scale · A x, claimed in chunks of ranks before anything else: a thread that starts
  // late (woken late, or descheduled on a busy machine) mostly finds u already claimed by the
  // others, so they wait for it below only if it is descheduled inside a chunk it claimed.
  for (;;) {
    const int64_t k0 = atomic_fetch_add_explicit(&job->next_k, LORA_RANK_CHUNK, memory_order_relaxed);
    if (k0 >= lora->rank) break;
    const int64_t k1 = k0 + LORA_RANK_CHUNK < lora->rank ? k0 + LORA_RANK_CHUNK : lora->rank;
    dq_lora_down_f16(job->u + k0, lora->a + k0 * mv->n, k1 - k0, job->x_f32, mv->n, lora->scale);
    atomic_fetch_add_explicit(&job->done_k, k1 - k0, memory_order_release);
  }
  // Chunks in multiples of 32 rows: own cache lines of y, and the vector path of the up kernel.
  const int64_t per = ((mv->rows + nth - 1) / nth + 31) & ~(int64_t)31;
  const int64_t begin = per * ith < mv->rows ? per * ith : mv->rows;
  const int64_t end = begin + per < mv->rows ? begin + per : mv->rows;
  if (begin >= end) return;
  dq_matvec_rows(mv->type, mv->n, mv->w, mv->row_stride, mv->x, mv->y + begin, begin, end);
  wait_until(&job->done_k, lora->rank);
  dq_lora_up_f16(mv->y + begin, lora->bt + begin, mv->rows, job->u, lora->rank, end - begin);
}

void dq_pool_matvec_lora(dq_pool *pool, uint32_t type, int64_t n, const void *w, size_t row_stride,
                         const void *x, const float *x_f32, float *y, int64_t rows,
                         const dq_lora_f16 *lora, float *u) {
  matvec_lora_job job = {{type, n, w, row_stride, x, y, rows}, x_f32, *lora, u, 0, 0};
  dq_pool_run(pool, matvec_lora_part, &job);
}

typedef struct {
  uint32_t type;
  int64_t n;
  const char *w;
  size_t row_stride;
  const char *x;
  size_t x_stride;
  int64_t tokens;
  float *y;
  int64_t ldy;
  int64_t rows;
} matmul_job;

enum { MATMUL_BLOCK_ROWS = 16 };

static void matmul_part(void *p, int ith, int nth) {
  const matmul_job *job = p;
  int64_t per = ((job->rows + nth - 1) / nth + MATMUL_BLOCK_ROWS - 1) & ~(int64_t)(MATMUL_BLOCK_ROWS - 1);
  int64_t begin = per * ith;
  int64_t end = begin + per < job->rows ? begin + per : job->rows;
  // dq_matmul_rows blocks the rows for the cache itself (and repacks them where that pays).
  if (begin < end)
    dq_matmul_rows(job->type, job->n, job->w, job->row_stride, job->x, job->x_stride,
                   job->tokens, job->y + begin, job->ldy, begin, end);
}

void dq_pool_matmul(dq_pool *pool, uint32_t type, int64_t n, const void *w, size_t row_stride,
                    const void *x, size_t x_stride, int64_t tokens, float *y, int64_t ldy,
                    int64_t rows) {
  matmul_job job = {type, n, w, row_stride, x, x_stride, tokens, y, ldy, rows};
  dq_pool_run(pool, matmul_part, &job);
}

typedef struct {
  uint32_t type;
  int64_t n;
  const char *w;  // NULL: y already holds the base product
  size_t row_stride;
  const char *x;
  size_t x_stride;
  const float *x_f32;
  int64_t tokens;
  float *y;
  int64_t ldy;
  int64_t rows;
  const dq_lora_rows *groups;
  int group_count;
  float *u;
  int64_t ldu;
  int64_t items;           // (group, chunk of ranks) items of the down step
  int64_t ranks;           // sum of the groups' ranks
  int64_t next_item;       // first item not yet claimed
  _Atomic int64_t done_k;  // ranks whose u is written for all of their group's rows
  _Atomic int64_t based;   // threads whose slice of the base product is done (by adapter)
} matmul_lora_job;

// With at least as many adapters as threads, each thread takes whole adapters (g = ith, ith +
// nth, ...): their down and up steps read every factor matrix front to back, one sequential
// stream each, and a thread needs no one else's u. Splitting every adapter's output rows across
// the threads instead cut each row of Bᵀ into short stretches (96-768 rows), which the hardware
// prefetchers do not follow. With fewer adapters (one adapter's rows, the common case) the work
// is split within each adapter as before.
static bool by_adapter(const matmul_lora_job *job, int nth) { return job->group_count >= nth; }

static void matmul_lora_part(void *p, int ith, int nth) {
  matmul_lora_job *job = p;
  const int64_t n = job->n;
  // Slices in multiples of 32 rows: own cache lines of y, and the up kernel's vector width.
  const int64_t per = ((job->rows + nth - 1) / nth + 31) & ~(int64_t)31;
  const int64_t begin = per * ith < job->rows ? per * ith : job->rows;
  const int64_t end = begin + per < job->rows ? begin + per : job->rows;
  // The base product first (measured: 3-5 % faster at 8 rank-64 adapters than the down step
  // first). Requesting the factors during it (prefetches spread over its rows) was measured
  // twice and lost both times: all at once on an Intel Xeon, a share every 32 rows on the AMD
  // EPYC once the factors were walked by adapter (8 rank-64 adapters 77-84 % of one adapter
  // with it, 86-91 % without).
  if (begin < end && job->w)
    dq_matmul_rows(job->type, n, job->w, job->row_stride, job->x, job->x_stride, job->tokens, job->y + begin,
                   job->ldy, begin, end);
  if (by_adapter(job, nth)) {
    for (int g = ith; g < job->group_count; g += nth) {
      const dq_lora_rows *group = &job->groups[g];
      for (int64_t t = group->first; t < group->first + group->count; t++)
        dq_lora_down_f16(job->u + t * job->ldu, group->lora.a, group->lora.rank, job->x_f32 + t * n, n,
                         group->lora.scale);
    }
    // Every row of y holds its base product before any update is added to it.
    atomic_fetch_add_explicit(&job->based, 1, memory_order_acq_rel);
    wait_until(&job->based, nth);
    for (int g = ith; g < job->group_count; g += nth) {
      const dq_lora_rows *group = &job->groups[g];
      for (int64_t t = group->first; t < group->first + group->count; t++)
        dq_lora_up_f16(job->y + t * job->ldy, group->lora.bt, job->rows, job->u + t * job->ldu, group->lora.rank,
                       job->rows);
    }
    return;
  }
  // The down step: claimed items, as in matvec_lora_part, so a late thread leaves them to others.
  int g = 0;
  int64_t g_first = 0;  // item index where group g starts
  for (;;) {
    const int64_t item = dq_pool_claim(&job->next_item, 1);
    if (item >= job->items) break;
    while (item >= g_first + (job->groups[g].lora.rank + LORA_RANK_CHUNK - 1) / LORA_RANK_CHUNK) {
      g_first += (job->groups[g].lora.rank + LORA_RANK_CHUNK - 1) / LORA_RANK_CHUNK;
      g++;
    }
    const dq_lora_rows *group = &job->groups[g];
    const int64_t k0 = (item - g_first) * LORA_RANK_CHUNK;
    const int64_t k1 = k0 + LORA_RANK_CHUNK < group->lora.rank ? k0 + LORA_RANK_CHUNK : group->lora.rank;
    for (int64_t t = group->first; t < group->first + group->count; t++)
      dq_lora_down_f16(job->u + t * job->ldu + k0, group->lora.a + k0 * n, k1 - k0, job->x_f32 + t * n, n,
                       group->lora.scale);
    atomic_fetch_add_explicit(&job->done_k, k1 - k0, memory_order_release);
  }
  wait_until(&job->done_k, job->ranks);
  if (begin >= end) return;
  for (int i = 0; i < job->group_count; i++) {
    const dq_lora_rows *group = &job->groups[i];
    for (int64_t t = group->first; t < group->first + group->count; t++)
      dq_lora_up_f16(job->y + t * job->ldy + begin, group->lora.bt + begin, job->rows, job->u + t * job->ldu,
                     group->lora.rank, end - begin);
  }
}

void dq_pool_matmul_lora(dq_pool *pool, uint32_t type, int64_t n, const void *w, size_t row_stride,
                         const void *x, size_t x_stride, const float *x_f32, int64_t tokens,
                         float *y, int64_t ldy, int64_t rows, const dq_lora_rows *groups,
                         int group_count, float *u, int64_t ldu) {
  matmul_lora_job job = {type, n, w, row_stride, x, x_stride, x_f32, tokens, y, ldy, rows, groups,
                         group_count, u, ldu, 0, 0, 0, 0, 0};
  for (int g = 0; g < group_count; g++) {
    job.items += (groups[g].lora.rank + LORA_RANK_CHUNK - 1) / LORA_RANK_CHUNK;
    job.ranks += groups[g].lora.rank;
  }
  dq_pool_run(pool, matmul_lora_part, &job);
}
