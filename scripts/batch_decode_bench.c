// Batched decode products (a few tokens against a large matrix, as a batched decode step does)
// on one thread: dq_matmul_rows with the matvec-tokens kernels (each weight row read once for all
// tokens, a token's bits those of dq_vec_dot), the same call with them off (the tiles / packed
// kernels), and one dq_matvec_rows per token. The matrix is `mib` MiB of repeated rows, so with
// more than the last-level cache it streams from memory as a real model's weights do.
// Q4_0x16 (the Q4_0 shadow a model builds at load on AVX-512 VNNI machines) runs its own kernel in
// every column but the second, which is plain Q4_0 as main runs it (the tokens kernel up to 7
// tokens, the packed kernels from 8), the baseline it replaces.
// Build: S=Sources/CKernels; clang -O3 -fno-math-errno -I$S -I$S/include $S/*.c scripts/batch_decode_bench.c -o /tmp/batch_decode_bench -lpthread -lm
// Run:   /tmp/batch_decode_bench [columns 2048] [MiB 512] [reps 3] [types, e.g. q4_K,q6_K]
#include "ckernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static float frand(void) { return (float)rand() / (float)RAND_MAX * 2 - 1; }
// name is one of the comma-separated entries of list
static int listed(const char *list, const char *name) {
  const size_t k = strlen(name);
  for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
    if (strncmp(p, name, k) == 0 && (p[k] == ',' || p[k] == 0)) return 1;
  return 0;
}
int main(int argc, char **argv) {
  const uint32_t all[] = {DQ_TYPE_Q4_K, DQ_TYPE_Q6_K, DQ_TYPE_Q5_K, DQ_TYPE_Q4_0, DQ_TYPE_Q8_0,
                          DQ_TYPE_Q5_0, DQ_TYPE_Q4_1, DQ_TYPE_Q5_1, DQ_TYPE_Q4_0_X16};
  const int n = argc > 1 ? atoi(argv[1]) : 2048, mib = argc > 2 ? atoi(argv[2]) : 512, reps = argc > 3 ? atoi(argv[3]) : 3;
  const char *want = argc > 4 ? argv[4] : NULL;
  setvbuf(stdout, 0, _IONBF, 0);
  dq_set_weights_stream_from_memory(true);  // these matrices are larger than the cache, as a model's weights
  printf("columns %d, matrix %d MiB (repeated rows), best of %d, one thread; ms per step (all tokens)\n", n, mib, reps);
  printf("%-7s %3s %10s %10s %10s %8s %8s  %s\n", "type", "tok", "tokens-mv", "tiles", "mv x tok", "tiles/", "mv/", "bits");
  for (size_t ti = 0; ti < sizeof all / sizeof all[0]; ti++) {
    const uint32_t type = all[ti];
    const bool x16 = type == DQ_TYPE_Q4_0_X16;
    const uint32_t qt = x16 ? DQ_TYPE_Q4_0 : type;  // the type quantized to
    const char *name = x16 ? "Q4_0x16" : dq_type_name(type);
    if (want && !listed(want, name)) continue;
    const uint32_t dt = dq_vec_dot_type(type);
    const size_t rs = dq_row_size(qt, n), xs = dq_row_size(dt, n);
    const int64_t rows = (int64_t)mib * 1048576 / (int64_t)rs / 16 * 16;
    char *w = malloc(rs * rows), *x = malloc(xs * 16);
    float *f = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * rows * 16), *z = malloc(sizeof(float) * rows * 16);
    for (int r = 0; r < 256; r++) {
      for (int i = 0; i < n; i++) f[i] = frand();
      dq_quantize_row(qt, f, w + r * rs, n);
    }
    for (int64_t r = 256; r < rows; r++) memcpy(w + r * rs, w + (r % 256) * rs, rs);
    char *plain = NULL;  // Q4_0x16: the plain rows, w the shadow
    if (x16) {
      plain = w;
      w = malloc(rs * rows);
      dq_q4_0_x16_pack_rows(plain, w, n, rows);
    }
    for (int t = 0; t < 16; t++) {
      for (int i = 0; i < n; i++) f[i] = frand();
      dq_quantize_row(dt, f, x + t * xs, n);
    }
    const int toks[] = {1, 2, 3, 4, 6, 8, 12, 16};
    for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++) {
      const int T = toks[k];
      double best[3] = {1e9, 1e9, 1e9};
      for (int rep = 0; rep < reps; rep++) {
        double t0 = now();
        dq_set_matvec_tokens_max(16);
        dq_matmul_rows(type, n, w, rs, x, xs, T, y, rows, 0, rows);
        double t1 = now();
        dq_set_matvec_tokens_max(x16 ? -1 : 0);
        dq_matmul_rows(qt, n, x16 ? plain : w, rs, x, xs, T, z, rows, 0, rows);
        double t2 = now();
        for (int t = 0; t < T; t++) dq_matvec_rows(type, n, w, rs, x + t * xs, z + t * rows, 0, rows);
        double t3 = now();
        if (t1 - t0 < best[0]) best[0] = t1 - t0;
        if (t2 - t1 < best[1]) best[1] = t2 - t1;
        if (t3 - t2 < best[2]) best[2] = t3 - t2;
      }
      dq_set_matvec_tokens_max(-1);
      // bits: the tokens kernel against dq_vec_dot (z holds the per-token matvec now)
      int64_t differ = 0;
      for (int t = 0; t < T; t++)
        for (int64_t r = 0; r < rows; r += 97) {
          const float a = y[t * rows + r], b = dq_vec_dot(type, n, w + r * rs, x + t * xs);
          if (memcmp(&a, &b, 4) != 0) differ++;
        }
      printf("%-7s %3d %10.2f %10.2f %10.2f %7.2fx %7.2fx  %s\n", name, T, best[0] * 1e3, best[1] * 1e3,
             best[2] * 1e3, best[1] / best[0], best[2] / best[0], differ ? "DIFFER" : "same");
    }
    free(plain); free(w); free(x); free(f); free(y); free(z);
  }
  return 0;
}
