// Single-thread matvec throughput of the decode kernels, AVX-512 against AVX2, on 2048-wide
// rows of every type that has an AVX-512 kernel (the README's kernel figures). Build and run:
//   S=Sources/CKernels; cc -O2 -std=gnu11 -I$S -I$S/include scripts/matvec_bench.c \
//     $S/quants_avx512.c $S/dispatch.c $S/cpu_features.c $S/quants_ref.c $S/quants_k_ref.c \
//     $S/quants_avx2.c $S/types.c $S/fp16.c $S/tiles_avx2.c $S/tiles_avx512.c -lm \
//     -o /tmp/matvec_bench && /tmp/matvec_bench 8192
// (arguments: rows [columns, default 2048]; 256 rows stay in cache, 8192 stream 10-40 MB from
// the caches of a large-L3 server, 262144 (300-550 MB) from memory).
#include "quants.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc, char **argv){
  uint32_t types[] = {DQ_TYPE_Q4_0, DQ_TYPE_Q4_1, DQ_TYPE_Q5_0, DQ_TYPE_Q5_1, DQ_TYPE_Q8_0, DQ_TYPE_Q4_K, DQ_TYPE_Q5_K, DQ_TYPE_Q6_K};
  const char *names[] = {"q4_0","q4_1","q5_0","q5_1","q8_0","q4_K","q5_K","q6_K"};
  int n = 2048, rows = 2048;
  if (argc > 1) rows = atoi(argv[1]);
  if (argc > 2) n = atoi(argv[2]);
  for (int t = 0; t < 8; t++) {
    uint32_t ty = types[t];
    int64_t bs, ts; dq_type_info(ty, &bs, &ts);
    size_t rs = n / bs * ts;
    char *w = malloc(rs * (size_t)rows); float *f = malloc(n*4);
    for (int i = 0; i < n; i++) f[i] = (float)rand()/(float)RAND_MAX - 0.5f;
    // quantize up to 1024 distinct rows, then repeat them: a large matrix streams from memory
    for (int r = 0; r < rows; r++) {
      if (r < 1024) { for (int i = 0; i < n; i++) f[i] = (float)rand()/(float)RAND_MAX - 0.5f; dq_quantize_row(ty, f, w + r*rs, n); }
      else memcpy(w + (size_t)r*rs, w + (size_t)(r % 1024)*rs, rs);
    }
    uint32_t at = dq_vec_dot_type(ty); int64_t abs_, ats; dq_type_info(at, &abs_, &ats);
    char *x = malloc(n/abs_*ats); dq_quantize_row(at, f, x, n);
    float *y = malloc(rows*4);
    double best[2] = {1e9,1e9};
    for (int m = 0; m < 2; m++) { dq_force_avx2_dots(m == 1);
      for (int it = 0; it < (rows > 100000 ? 4 : 20); it++) { double t0 = now(); dq_matvec_rows(ty, n, w, rs, x, y, 0, rows); double dt = now()-t0; if (dt < best[m]) best[m] = dt; } }
    printf("%s %d rows: avx512 %.1f GB/s  avx2 %.1f GB/s  (%.2fx) y0=%g\n", names[t], rows, rs*rows/best[0]/1e9, rs*rows/best[1]/1e9, best[1]/best[0], y[0]);
    free(w); free(f); free(x); free(y);
  }
}
