// Prefetch policies of the Q4_0x16 one-token decode product (q4_0_x16.c), from memory: a 1 GiB
// matrix of 2048 columns in 2 MiB pages (as the model's repacked copy), each policy's arithmetic
// written out here beside the library kernel and a plain read of the same bytes. Policies and
// threads run interleaved, repeated; prints the median and best GB/s of weights read.
//
// The policies' loops here see one prepared token in a static array, so the compiler keeps
// most of its vectors in registers across rows; the library kernel loads them for every row
// (10 of the 15 vector loads per run), and on an AMD EPYC (Zen 4) that alone costs it about a
// quarter of the one-thread rate (a policy loop reading the token from the heap drops to the
// library's figure). Interleaving 4 rows' runs to share those loads, on the rows as they are
// laid out now, read at a third of the rate: sharing them would take a layout that interleaves
// rows in memory.
//
// What this does not show: on one wide matrix the L1 policy beat the L2 requests at one thread;
// in the model it won at 1.7B (rows of 2048 and 8192 columns) but lost on the narrower files
// (360M and 135M Q4_0, rows of 960 and 576 columns, one thread: 86 -> 72 and 220 -> 170 tok/s),
// so the kernel takes it from 2048 columns only.
// Build: S=Sources/CKernels; clang -O3 -fno-math-errno -I$S -I$S/include $S/*.c scripts/x16_prefetch_bench.c -o /tmp/x16_prefetch_bench -lpthread -lm
// Run:   flock /work/bench.lock /tmp/x16_prefetch_bench [threads (2)] [repetitions (9)]
#define _GNU_SOURCE
#include "ckernels.h"
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
enum { COLUMNS = 2048, RUNS = COLUMNS / 512, RUN_BYTES = 288, ROW_BYTES = RUNS * RUN_BYTES, PREP = 640 };
enum { NONE, L2_16K, L1_384, LIBRARY, PLAIN_READ, POLICIES };
static const char *names[POLICIES] = {"no requests", "L2, 16 KiB ahead", "L1, 384 B ahead", "library kernel", "plain read"};

static uint8_t *w;
static int64_t rows;
static float *y;
static uint8_t prep[RUNS * PREP] __attribute__((aligned(64)));  // a prepared token (values do not matter)
static char xq[4096];                                            // the same token as Q8_0, for the library

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// One run of 16 blocks against the prepared token, after the policy's requests.
T512 static inline __attribute__((always_inline)) __m512 run(const uint8_t *r, const uint8_t *o, __m512 acc, int policy) {
  for (int l = 0; l < 5; l++) {
    if (policy == L2_16K) _mm_prefetch((const char *)r + 16384 + 64 * l, _MM_HINT_T1);
    if (policy == L1_384) _mm_prefetch((const char *)r + 384 + 64 * l, _MM_HINT_T0);
  }
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)r));
  __m512i s0 = _mm512_load_si512((const void *)(o + 512)), s1 = _mm512_setzero_si512();
  for (int j = 0; j < 4; j++) {
    const __m512i c = _mm512_loadu_si512((const void *)(r + 32 + 64 * j));
    s0 = _mm512_dpbusd_epi32(s0, _mm512_and_si512(c, m4), _mm512_load_si512((const void *)(o + 128 * j)));
    s1 = _mm512_dpbusd_epi32(s1, _mm512_and_si512(_mm512_srli_epi16(c, 4), m4),
                             _mm512_load_si512((const void *)(o + 128 * j + 64)));
  }
  const __m512 sc = _mm512_mul_ps(d, _mm512_load_ps((const void *)(o + 576)));
  return _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc);
}

T512 static inline __attribute__((always_inline)) void rows_with(int policy, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    __m512 acc = _mm512_setzero_ps();
    for (int g = 0; g < RUNS; g++) acc = run(w + r * ROW_BYTES + g * RUN_BYTES, prep + g * PREP, acc, policy);
    y[r] = _mm512_reduce_add_ps(acc);
  }
}

T512 static void product(int policy, int64_t r0, int64_t r1) {
  if (policy == LIBRARY) {
    dq_matvec_rows(DQ_TYPE_Q4_0_X16, COLUMNS, w, ROW_BYTES, xq, y + r0, r0, r1);
    return;
  }
  if (policy == PLAIN_READ) {
    const float *p = (const float *)(w + r0 * ROW_BYTES);
    const size_t n = (size_t)(r1 - r0) * ROW_BYTES / 4;
    __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
    for (size_t i = 0; i + 64 <= n; i += 64) {
      a = _mm512_add_ps(a, _mm512_load_ps(p + i));
      b = _mm512_add_ps(b, _mm512_load_ps(p + i + 16));
      c = _mm512_add_ps(c, _mm512_load_ps(p + i + 32));
      d = _mm512_add_ps(d, _mm512_load_ps(p + i + 48));
    }
    y[r0] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
    return;
  }
  switch (policy) {  // one loop per policy, with no branch on it inside
    case NONE: rows_with(NONE, r0, r1); break;
    case L2_16K: rows_with(L2_16K, r0, r1); break;
    default: rows_with(L1_384, r0, r1); break;
  }
}

static int threads, policy;
static pthread_barrier_t start, done;

static void *worker(void *arg) {
  const long id = (long)arg;
  for (;;) {
    pthread_barrier_wait(&start);
    if (policy < 0) return NULL;
    product(policy, rows * id / threads / 16 * 16, id + 1 == threads ? rows : rows * (id + 1) / threads / 16 * 16);
    pthread_barrier_wait(&done);
  }
}

static int by_value(const void *a, const void *b) {
  const double x = *(const double *)a, z = *(const double *)b;
  return x < z ? -1 : x > z;
}

int main(int argc, char **argv) {
  threads = argc > 1 ? atoi(argv[1]) : 2;
  const int reps = argc > 2 ? atoi(argv[2]) : 9;
  if (threads < 1 || threads > 64 || reps < 1 || reps > 100) return 2;
  if (!dq_q4_0_x16_available()) {
    printf("no AVX-512 VNNI here\n");
    return 0;
  }
  const size_t huge = (size_t)2 << 20;
  rows = ((int64_t)1 << 30) / ROW_BYTES / 16 * 16;
  const size_t bytes = (size_t)rows * ROW_BYTES;
  uint8_t *map = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return 1;
  w = (uint8_t *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1));
  madvise(w, bytes / huge * huge, MADV_HUGEPAGE);
  uint64_t s = 88172645463325252ull;  // random codes; scales kept finite
  for (size_t i = 0; i < bytes / 8; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    ((uint64_t *)w)[i] = s & 0x3bff3bff3bff3bffull;
  }
  for (size_t i = 0; i < sizeof prep; i++) prep[i] = (uint8_t)(i * 7);
  for (int g = 0; g < RUNS; g++)
    for (int l = 0; l < 16; l++) ((float *)(prep + g * PREP + 576))[l] = 0.01f;
  float x[COLUMNS];
  for (int i = 0; i < COLUMNS; i++) x[i] = (float)(i % 17) - 8;
  dq_quantize_row(DQ_TYPE_Q8_0, x, xq, COLUMNS);
  y = calloc((size_t)rows, sizeof(float));

  pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
  pthread_barrier_init(&done, NULL, (unsigned)threads + 1);
  pthread_t tid[64];
  for (long i = 0; i < threads; i++) pthread_create(&tid[i], NULL, worker, (void *)i);
  double t[POLICIES][100];
  for (int rep = 0; rep < reps; rep++)
    for (policy = 0; policy < POLICIES; policy++) {
      const double t0 = now();
      pthread_barrier_wait(&start);
      pthread_barrier_wait(&done);
      t[policy][rep] = now() - t0;
    }
  policy = -1;
  pthread_barrier_wait(&start);
  for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
  printf("%d thread(s), %d repetitions, 1 GiB of Q4_0x16 rows, 2048 columns:\n", threads, reps);
  for (int p = 0; p < POLICIES; p++) {
    qsort(t[p], (size_t)reps, sizeof(double), by_value);
    printf("  %-18s median %5.1f GB/s, best %5.1f\n", names[p], bytes / t[p][reps / 2] / 1e9, bytes / t[p][0] / 1e9);
  }
  return 0;
}
