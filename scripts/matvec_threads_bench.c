// One-token decode products over a 1 GiB matrix from memory: one thread, two threads each on a
// half, and two threads claiming row chunks as the pool does; GB/s of weights read (wall
// clock). Q4_0 runs as the Q4_0x16 rows a model builds at load, Q4_K and Q6_K as r16 groups.
// Shows how far two threads of the decode kernels get against scripts/membw.c on the machine.
// Build: S=Sources/CKernels; clang -O3 -fno-math-errno -I$S -I$S/include $S/*.c scripts/matvec_threads_bench.c -o /tmp/matvec_threads_bench -lpthread -lm
// Run:   flock /work/bench.lock /tmp/matvec_threads_bench [Q4_0|Q4_K|Q6_K] [rows per claimed chunk, 256]
#include "ckernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static float frand(void) { return (float)rand() / (float)RAND_MAX * 2 - 1; }

static const int n = 2048;
static uint32_t type;  // DQ_TYPE_Q4_0_X16 or an r16 type
static int64_t rows, chunk = 256;
static size_t rs, xs, gb;
static char *w, *x;
static float *y;
static bool halves;
static atomic_long next;

// rows [b, e) (b a multiple of 16) against the one token
static void product(int64_t b, int64_t e) {
  if (type == DQ_TYPE_Q4_0_X16) dq_matvec_rows(type, n, w, rs, x, y, b, e);
  else dq_r16_matmul(type, n, w + (size_t)(b / 16) * gb, x, xs, 1, y + b, rows, e - b);
}

static void *run(void *arg) {
  const long id = (long)arg;
  if (halves) {
    const int64_t h = rows / 2 / 16 * 16;
    product(id ? h : 0, id ? rows : h);
    return NULL;
  }
  for (;;) {
    const int64_t b = atomic_fetch_add(&next, 1) * chunk;
    if (b >= rows) break;
    product(b, b + chunk < rows ? b + chunk : rows);
  }
  return NULL;
}

static double two_threads(bool by_halves) {
  halves = by_halves;
  atomic_store(&next, 0);
  pthread_t th[2];
  const double t0 = now();
  for (long i = 0; i < 2; i++) pthread_create(&th[i], NULL, run, (void *)i);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  return now() - t0;
}

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "Q4_0";
  if (argc > 2) chunk = atoi(argv[2]);
  const uint32_t qt = !strcmp(name, "Q4_K") ? DQ_TYPE_Q4_K : !strcmp(name, "Q6_K") ? DQ_TYPE_Q6_K : DQ_TYPE_Q4_0;
  type = qt == DQ_TYPE_Q4_0 ? DQ_TYPE_Q4_0_X16 : qt;
  if (qt != DQ_TYPE_Q4_0 && !dq_r16_supported(qt)) { printf("%s: no r16 here\n", name); return 0; }
  dq_set_weights_stream_from_memory(true);
  rs = dq_row_size(qt, n);
  const uint32_t dt = dq_vec_dot_type(type);
  xs = dq_row_size(dt, n);
  rows = (int64_t)1024 * 1048576 / (int64_t)rs / 16 * 16;
  char *plain = malloc(rs * rows);
  float *f = malloc(sizeof(float) * n);
  for (int r = 0; r < 256; r++) {
    for (int i = 0; i < n; i++) f[i] = frand();
    dq_quantize_row(qt, f, plain + r * rs, n);
  }
  for (int64_t r = 256; r < rows; r++) memcpy(plain + r * rs, plain + (r % 256) * rs, rs);
  if (type == DQ_TYPE_Q4_0_X16) {
    w = malloc(rs * rows);
    dq_q4_0_x16_pack_rows(plain, w, n, rows);
  } else {
    gb = dq_r16_group_bytes(qt, n);
    w = aligned_alloc(64, gb * (size_t)(rows / 16));
    for (int64_t g = 0; g < rows / 16; g++) dq_r16_pack_group(qt, n, plain + (size_t)g * 16 * rs, rs, 16, w + (size_t)g * gb);
  }
  free(plain);
  x = malloc(xs);
  y = malloc(sizeof(float) * rows);
  for (int i = 0; i < n; i++) f[i] = frand();
  dq_quantize_row(dt, f, x, n);
  const double gbytes = (double)rs * rows / 1e9;
  for (int rep = 0; rep < 3; rep++) {
    const double t0 = now();
    product(0, rows);
    const double one = now() - t0, h = two_threads(true), c = two_threads(false);
    printf("%s: 1 thread %.1f GB/s; 2 threads on halves %.1f GB/s; 2 threads claiming %lld-row chunks %.1f GB/s\n", name,
           gbytes / one, gbytes / h, (long long)chunk, gbytes / c);
  }
  return 0;
}
