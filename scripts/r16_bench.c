// The r16 layout (dq_r16_*) against today's kernels on one thread, in the same run:
//  decode: `mib` MiB of rows (2048 columns: larger than the cache, as a model's weights) against
//          T = 1..8 tokens: dq_matmul_rows with the matvec-tokens kernels (as batch_decode_bench's
//          tokens-mv column) and dq_r16_matmul on the packed copy, interleaved, best of reps;
//  prefill: 256 rows in cache against 64 tokens (as tile_bench): dq_matmul_rows (the tiles /
//          packed kernels) and dq_r16_matmul, GMAC/s;
//  and the packing speed (dq_r16_pack_group over the whole matrix, once).
// Build: S=Sources/CKernels; clang -O3 -fno-math-errno -I$S -I$S/include $S/*.c scripts/r16_bench.c -o /tmp/r16_bench -lpthread -lm
// Run:   flock /work/bench.lock /tmp/r16_bench [columns 2048] [MiB 512] [reps 5] [types Q4_K,Q6_K] [decode token counts 12345678]
#include "ckernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
// The thread's CPU time, not the wall clock: on a machine shared with other jobs, time spent
// descheduled is not the kernel's (memory bandwidth taken by the others still is).
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static float frand(void) { return (float)rand() / (float)RAND_MAX * 2 - 1; }

int main(int argc, char **argv) {
  const uint32_t all[] = {DQ_TYPE_Q4_K, DQ_TYPE_Q6_K, DQ_TYPE_Q5_K};
  const int n = argc > 1 ? atoi(argv[1]) : 2048, mib = argc > 2 ? atoi(argv[2]) : 512, reps = argc > 3 ? atoi(argv[3]) : 5;
  const char *want = argc > 4 ? argv[4] : NULL, *toks = argc > 5 ? argv[5] : "12345678";
  setvbuf(stdout, 0, _IONBF, 0);
  dq_set_weights_stream_from_memory(true);
  printf("columns %d, matrix %d MiB of the file's bytes (repeated rows), best of %d, one thread, ms of thread CPU time\n", n, mib, reps);
  for (size_t ti = 0; ti < sizeof all / sizeof all[0]; ti++) {
    const uint32_t type = all[ti];
    if (want && !strstr(want, dq_type_name(type))) continue;
    if (!dq_r16_supported(type)) { printf("%s: no r16 here\n", dq_type_name(type)); continue; }
    const size_t rs = dq_row_size(type, n), xs = dq_row_size(DQ_TYPE_Q8_K, n), gb = dq_r16_group_bytes(type, n);
    const int64_t rows = (int64_t)mib * 1048576 / (int64_t)rs / 16 * 16, groups = rows / 16;
    char *w = malloc(rs * rows), *x = malloc(xs * 64);
    uint8_t *pk = aligned_alloc(64, gb * groups);
    float *f = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * rows * 64), *z = malloc(sizeof(float) * rows * 64);
    for (int r = 0; r < 256; r++) {
      for (int i = 0; i < n; i++) f[i] = frand();
      dq_quantize_row(type, f, w + r * rs, n);
    }
    for (int64_t r = 256; r < rows; r++) memcpy(w + r * rs, w + (r % 256) * rs, rs);
    for (int t = 0; t < 64; t++) {
      for (int i = 0; i < n; i++) f[i] = frand();
      dq_quantize_row(DQ_TYPE_Q8_K, f, x + t * xs, n);
    }
    double t0 = now();
    for (int64_t g = 0; g < groups; g++) dq_r16_pack_group(type, n, w + (size_t)g * 16 * rs, rs, 16, pk + (size_t)g * gb);
    const double tp = now() - t0;
    printf("%s: r16 %zu bytes a group and super-block (%.1f a row; file %zu); packing %.0f MB/s of the file's bytes\n",
           dq_type_name(type), gb / (n / 256), gb / (n / 256) / 16.0, rs / (n / 256), rs * rows / tp * 1e-6);
    printf("%-5s %3s %10s %10s %8s %9s\n", "type", "tok", "tokens-mv", "r16", "speedup", "r16 GB/s");
    for (int T = 1; T <= 8; T++) {
      if (!strchr(toks, '0' + T)) continue;
      double best[2] = {1e9, 1e9};
      for (int rep = 0; rep < reps; rep++) {
        double a = now();
        dq_set_matvec_tokens_max(16);
        if (!strchr(toks, 'r')) dq_matmul_rows(type, n, w, rs, x, xs, T, y, rows, 0, rows);  // 'r': r16 alone
        double b = now();
        dq_r16_matmul(type, n, pk, x, xs, T, z, rows, rows);
        double c = now();
        if (b - a < best[0]) best[0] = b - a;
        if (c - b < best[1]) best[1] = c - b;
      }
      dq_set_matvec_tokens_max(-1);
      double maxd = 0, maxv = 0;  // r16 against the tokens kernel (both near the exact value)
      for (int t = 0; t < T; t++)
        for (int64_t r = 0; r < rows; r += 97) {
          maxd = fmax(maxd, fabs((double)y[t * rows + r] - z[t * rows + r]));
          maxv = fmax(maxv, fabs((double)y[t * rows + r]));
        }
      printf("%-5s %3d %10.2f %10.2f %7.2fx %9.1f  max|diff| %.2g of max %.3g\n", dq_type_name(type), T, best[0] * 1e3,
             best[1] * 1e3, best[0] / best[1], gb * groups / best[1] * 1e-9, maxd, maxv);
    }
    // prefill in cache: the first 256 rows, 64 tokens
    const int pr = 256, ptok = 64;
    double best[2] = {1e9, 1e9};
    for (int rep = 0; rep < reps; rep++) {
      double a = now();
      dq_matmul_rows(type, n, w, rs, x, xs, ptok, y, pr, 0, pr);
      double b = now();
      dq_r16_matmul(type, n, pk, x, xs, ptok, z, pr, pr);
      double c = now();
      if (b - a < best[0]) best[0] = b - a;
      if (c - b < best[1]) best[1] = c - b;
    }
    const double mac = (double)n * pr * ptok;
    printf("%-5s prefill %d rows x %d tokens in cache: matmul_rows %.1f GMAC/s, r16 %.1f GMAC/s (%.2fx)\n",
           dq_type_name(type), pr, ptok, mac / best[0] * 1e-9, mac / best[1] * 1e-9, best[0] / best[1]);
    free(w); free(x); free(pk); free(f); free(y); free(z);
  }
  return 0;
}
