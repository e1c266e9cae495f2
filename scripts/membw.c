// STREAM-like read bandwidth probe: each thread streams through its own share of a buffer much
// larger than the caches with 512/256-bit loads and sums it, the access pattern of a decode
// matvec (weights read once per token, nothing written). Prints the best of several passes in
// GB/s (10^9 bytes/s) as JSON.  Build: cc -O2 -march=native -pthread membw.c -o membw
//   membw [threads (1)] [MiB (1024)] [passes (10)]
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  const float *p;
  size_t n;
  pthread_barrier_t *bar;
  double sum;
} job;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static double stream(const float *p, size_t n) {
#if defined(__AVX512F__)
  __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a = _mm512_add_ps(a, _mm512_load_ps(p + i));
    b = _mm512_add_ps(b, _mm512_load_ps(p + i + 16));
    c = _mm512_add_ps(c, _mm512_load_ps(p + i + 32));
    d = _mm512_add_ps(d, _mm512_load_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
#else
  __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    a = _mm256_add_ps(a, _mm256_load_ps(p + i));
    b = _mm256_add_ps(b, _mm256_load_ps(p + i + 8));
    c = _mm256_add_ps(c, _mm256_load_ps(p + i + 16));
    d = _mm256_add_ps(d, _mm256_load_ps(p + i + 24));
  }
  float s[8];
  _mm256_storeu_ps(s, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
#endif
}

static void *run(void *arg) {
  job *j = arg;
  pthread_barrier_wait(j->bar);
  j->sum += stream(j->p, j->n);
  pthread_barrier_wait(j->bar);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
  int passes = argc > 3 ? atoi(argv[3]) : 10;
  if (threads < 1 || threads > 256 || mib < 1 || passes < 1) return 2;
  size_t n = mib * 1024 * 1024 / sizeof(float);
  n -= n % (64 * (size_t)threads);
  float *buf = aligned_alloc(64, n * sizeof(float));
  if (!buf) return 1;
  for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);  // touch every page
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
  job *jobs = calloc((size_t)threads, sizeof(job));
  double best = 0, check = 0;
  for (int pass = 0; pass < passes; pass++) {
    pthread_t *tid = calloc((size_t)threads, sizeof(pthread_t));
    for (int t = 0; t < threads; t++) {
      jobs[t] = (job){buf + n / threads * t, n / threads, &bar, 0};
      pthread_create(&tid[t], NULL, run, &jobs[t]);
    }
    pthread_barrier_wait(&bar);
    double t0 = now();
    pthread_barrier_wait(&bar);
    double dt = now() - t0;
    for (int t = 0; t < threads; t++) {
      pthread_join(tid[t], NULL);
      check += jobs[t].sum;
    }
    free(tid);
    double gbs = n * sizeof(float) / dt / 1e9;
    if (gbs > best) best = gbs;
  }
  printf("{\"threads\": %d, \"mib\": %zu, \"passes\": %d, \"read_gb_per_s\": %.2f, \"check\": %.0f}\n",
         threads, mib, passes, best, check);
  return 0;
}
