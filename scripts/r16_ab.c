// dq_r16_matmul against another revision's (base_r16_matmul) on the same packed bytes, in one
// process, calls alternated, best of reps, thread CPU time; and whether the two give the same
// bits (they should while the arithmetic is unchanged). Separate processes differed by up to
// 15 % from run to run here (memory shared with other jobs, and where the stack falls within
// 4 KiB: STACKOFF=bytes moves it), alternating in one process much less.
//  prefill: `rows` rows against each token count of TOKS (default 9,16,37,64,128,256,512);
//  decode (with a MiB argument): that many MiB of rows from memory against 1..8 tokens.
// Build (the baseline from a commit; the layout, dq_r16_group_bytes, must be the same):
//   S=Sources/CKernels; git show REV:$S/repack_avx512.c > /tmp/repack_base.c
//   clang -O3 -fno-math-errno -I$S -I$S/include -Ddq_r16_matmul=base_r16_matmul \
//     -Ddq_r16_supported=base_r16_supported -Ddq_r16_group_bytes=base_r16_group_bytes \
//     -Ddq_r16_pack_group=base_r16_pack_group -c /tmp/repack_base.c -o /tmp/repack_base.o
//   clang -O3 -fno-math-errno -I$S -I$S/include $S/*.c /tmp/repack_base.o scripts/r16_ab.c -o /tmp/r16_ab -lpthread -lm
// Run: flock /work/bench.lock /tmp/r16_ab columns rows reps types [decode MiB]
//   e.g. /tmp/r16_ab 2048 256 3 Q5_K,Q6_K 512; TOKS=8,64 /tmp/r16_ab 5632 1024 3 Q5_K
#include "ckernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void base_r16_matmul(uint32_t type, int64_t n, const void *packed, const void *x, size_t x_stride, int64_t tokens,
                     float *y, int64_t ldy, int64_t rows);
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static float frand(void) { return (float)rand() / (float)RAND_MAX * 2 - 1; }

typedef void (*r16_fn)(uint32_t, int64_t, const void *, const void *, size_t, int64_t, float *, int64_t, int64_t);

// Best of reps for both, alternated: a[0] base, a[1] this tree's.
static void race(int reps, uint32_t type, int n, const uint8_t *pk, const char *x, size_t xs, int T, float *y, float *z,
                 int64_t rows, double best[2]) {
  const r16_fn f[2] = {base_r16_matmul, dq_r16_matmul};
  float *out[2] = {y, z};
  best[0] = best[1] = 1e9;
  for (int rep = 0; rep < reps; rep++)
    for (int k = 0; k < 2; k++) {
      const double a = now();
      f[k](type, n, pk, x, xs, T, out[k], rows, rows);
      const double d = now() - a;
      if (d < best[k]) best[k] = d;
    }
}

__attribute__((noinline)) static int run(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: r16_ab columns rows reps types [decode MiB]\n");
    return 2;
  }
  const int n = atoi(argv[1]), prow = atoi(argv[2]), reps = atoi(argv[3]), mib = argc > 5 ? atoi(argv[5]) : 0;
  const char *want = argv[4];
  int tl[32], ntl = 0;
  for (const char *e = getenv("TOKS") ? getenv("TOKS") : "9,16,37,64,128,256,512"; *e && ntl < 32;) {
    tl[ntl++] = atoi(e);
    while (*e && *e != ',') e++;
    if (*e) e++;
  }
  const uint32_t all[] = {DQ_TYPE_Q4_K, DQ_TYPE_Q6_K, DQ_TYPE_Q5_K};
  setvbuf(stdout, 0, _IONBF, 0);
  dq_set_weights_stream_from_memory(true);
  for (int ti = 0; ti < 3; ti++) {
    const uint32_t type = all[ti];
    if (!strstr(want, dq_type_name(type)) || !dq_r16_supported(type)) continue;
    const size_t rs = dq_row_size(type, n), xs = dq_row_size(DQ_TYPE_Q8_K, n), gb = dq_r16_group_bytes(type, n);
    int64_t rows = mib ? (int64_t)mib * 1048576 / (int64_t)rs / 16 * 16 : prow;
    if (rows < prow) rows = prow;
    const int64_t groups = (rows + 15) / 16;
    int maxt = 8;
    for (int k = 0; k < ntl; k++) maxt = tl[k] > maxt ? tl[k] : maxt;
    const size_t ny = (size_t)(rows > prow ? rows : prow) * (size_t)maxt;
    char *w = malloc(rs * rows), *x = malloc(xs * maxt);
    uint8_t *pk = aligned_alloc(64, gb * groups);
    float *f = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * ny), *z = malloc(sizeof(float) * ny);
    memset(y, 0, sizeof(float) * ny), memset(z, 0, sizeof(float) * ny);  // touched: placed before the timing
    for (int64_t r = 0; r < 256 && r < rows; r++) {
      for (int i = 0; i < n; i++) f[i] = frand();
      dq_quantize_row(type, f, w + r * rs, n);
    }
    for (int64_t r = 256; r < rows; r++) memcpy(w + r * rs, w + (r % 256) * rs, rs);
    for (int t = 0; t < maxt; t++) {
      for (int i = 0; i < n; i++) f[i] = frand();
      dq_quantize_row(DQ_TYPE_Q8_K, f, x + t * xs, n);
    }
    for (int64_t g = 0; g < groups; g++)
      dq_r16_pack_group(type, n, w + (size_t)g * 16 * rs, rs, rows - 16 * g < 16 ? rows - 16 * g : 16, pk + (size_t)g * gb);
    double best[2];
    if (mib) {
      printf("%s %d columns, decode from memory, %d MiB: ms base / this\n", dq_type_name(type), n, mib);
      for (int T = 1; T <= 8; T++) {
        race(reps, type, n, pk, x, xs, T, y, z, rows, best);
        printf("  %d tokens %8.2f %8.2f (%.3fx)%s\n", T, best[0] * 1e3, best[1] * 1e3, best[0] / best[1],
               memcmp(y, z, sizeof(float) * rows * T) ? " BITS DIFFER" : "");
      }
    }
    for (int k = 0; k < ntl; k++) {
      const int T = tl[k];
      race(reps, type, n, pk, x, xs, T, y, z, prow, best);
      const double mac = (double)n * prow * T;
      printf("%s %d columns, %d rows x %3d tokens: base %6.1f this %6.1f GMAC/s (%.3fx)%s\n", dq_type_name(type), n,
             prow, T, mac / best[0] * 1e-9, mac / best[1] * 1e-9, best[0] / best[1],
             memcmp(y, z, sizeof(float) * prow * T) ? " BITS DIFFER" : "");
    }
    free(w); free(x); free(pk); free(f); free(y); free(z);
  }
  return 0;
}

int main(int argc, char **argv) {
  volatile char *pad = __builtin_alloca(getenv("STACKOFF") ? (size_t)atoi(getenv("STACKOFF")) + 1 : 1);
  pad[0] = 0;
  return run(argc, argv);
}
