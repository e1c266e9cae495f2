// Tests of the r16 layout (dq_r16_*): random k-quant rows (counts not multiples of 16, several
// groups) packed and multiplied with q8_K activations, every result against dq_vec_dot_ref within
// the summation tolerance the tile tests use ((n/256 + 16) 2^-23 sum|w x|), and the bit identity
// of each (row, token) across token counts 1..9, 16, 17, 37, 64, 128, 130 (from 128 the
// codes are decoded once per group: another path), the token's offset among them, and
// group-aligned row ranges. Exit status 1 on any failure.
// Build: S=Sources/CKernels; clang -O3 -fno-math-errno -I$S -I$S/include $S/*.c scripts/r16_test.c -o /tmp/r16_test -lpthread -lm
// Run:   /tmp/r16_test
#include "ckernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((rng >> 11) * 0x1p-53 * 2 - 1);
}

static int failures;
#define CHECK(cond, ...)                  \
  do {                                    \
    if (!(cond)) {                        \
      if (failures++ < 20) printf(__VA_ARGS__); \
    }                                     \
  } while (0)

static void run(uint32_t type, int n, int rows, int tokens) {
  const size_t rs = (size_t)dq_row_size(type, n), xs = (size_t)dq_row_size(DQ_TYPE_Q8_K, n);
  const size_t gb = dq_r16_group_bytes(type, n);
  const int groups = (rows + 15) / 16;
  char *w = malloc(rs * rows), *x = malloc(xs * tokens);
  float *f = malloc(sizeof(float) * n), *fw = malloc(sizeof(float) * n * rows), *fx = malloc(sizeof(float) * n * tokens);
  for (int r = 0; r < rows; r++) {
    // rows of different magnitudes, some with a large offset (non-zero mins)
    const float scale = 0.01f + 4 * fabsf(frand()), off = (r % 3 == 0) ? 0.5f * frand() : 0;
    for (int i = 0; i < n; i++) f[i] = scale * (frand() + off);
    dq_quantize_row(type, f, w + r * rs, n);
    dq_dequantize_row_ref(type, w + r * rs, fw + (size_t)r * n, n);
  }
  for (int t = 0; t < tokens; t++) {
    const float scale = 0.1f + 3 * fabsf(frand());
    for (int i = 0; i < n; i++) f[i] = scale * frand() * (i % 17 == 0 ? 5 : 1);
    dq_quantize_row(DQ_TYPE_Q8_K, f, x + t * xs, n);
    dq_dequantize_row_ref(DQ_TYPE_Q8_K, x + t * xs, fx + (size_t)t * n, n);
  }
  uint8_t *packed = aligned_alloc(64, gb * groups);
  memset(packed, 0xA5, gb * groups);
  for (int g = 0; g < groups; g++)
    dq_r16_pack_group(type, n, w + (size_t)g * 16 * rs, rs, rows - 16 * g < 16 ? rows - 16 * g : 16, packed + g * gb);
  const int ldy = rows + 3;
  float *y = malloc(sizeof(float) * ldy * tokens), *z = malloc(sizeof(float) * ldy * tokens);
  for (int i = 0; i < ldy * tokens; i++) y[i] = NAN;
  dq_r16_matmul(type, n, packed, x, xs, tokens, y, ldy, rows);
  double worst = 0;
  for (int t = 0; t < tokens; t++) {
    for (int r = rows; r < ldy; r++) CHECK(isnan(y[t * ldy + r]), "%s wrote past rows (row %d token %d)\n", dq_type_name(type), r, t);
    for (int r = 0; r < rows; r++) {
      const float got = y[t * ldy + r], ref = dq_vec_dot_ref(type, n, w + r * rs, x + t * xs);
      double mag = 0;
      for (int i = 0; i < n; i++) mag += fabs((double)fw[(size_t)r * n + i] * fx[(size_t)t * n + i]);
      const double tol = (n / 256 + 16) * 0x1p-23 * mag + 1e-30, err = fabs((double)got - ref);
      if (err / tol > worst) worst = err / tol;
      CHECK(err <= tol, "%s n=%d rows=%d row %d token %d: %.9g vs ref %.9g (tol %.3g)\n", dq_type_name(type), n, rows, r,
            t, got, ref, tol);
    }
  }
  // bit identity: every sub-call (token count T at offset t0, group-aligned row range) must give
  // the full call's bits
  const int counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 37, 64, 128, 130};
  int differ = 0, checked = 0;
  for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
    const int T = counts[c];
    if (T > tokens) continue;
    for (int t0 = 0; t0 + T <= tokens; t0 += (T == 1 ? 1 : T / 2 + 1)) {
      const int g0 = (t0 + T) % groups, g1 = groups;  // rows [16 g0, rows)
      const int r0 = 16 * g0, nr = rows - r0;
      for (int i = 0; i < ldy * tokens; i++) z[i] = NAN;
      dq_r16_matmul(type, n, packed + (size_t)g0 * gb, x + (size_t)t0 * xs, xs, T, z, ldy, nr);
      (void)g1;
      for (int t = 0; t < T; t++)
        for (int r = 0; r < nr; r++) {
          checked++;
          if (memcmp(&z[t * ldy + r], &y[(t0 + t) * ldy + r0 + r], 4) != 0) differ++;
        }
    }
  }
  CHECK(differ == 0, "%s n=%d rows=%d: %d of %d results differ in bits across calls\n", dq_type_name(type), n, rows, differ,
        checked);
  printf("%-5s n=%5d rows=%3d tokens=%2d: worst err/tol %.3f, %d sub-call results bit-identical%s\n", dq_type_name(type), n,
         rows, tokens, worst, checked - differ, differ ? " (DIFFER)" : "");
  free(w); free(x); free(f); free(fw); free(fx); free(packed); free(y); free(z);
}

int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  const uint32_t types[] = {DQ_TYPE_Q4_K, DQ_TYPE_Q6_K, DQ_TYPE_Q5_K};
  for (size_t k = 0; k < 3; k++) {
    const uint32_t type = types[k];
    if (!dq_r16_supported(type)) {
      printf("%s: r16 not supported here (group bytes %zu)\n", dq_type_name(type), dq_r16_group_bytes(type, 256));
      CHECK(dq_r16_group_bytes(type, 256) == 0, "unsupported type with group bytes\n");
      continue;
    }
    CHECK(dq_r16_group_bytes(type, 300) == 0, "n not a multiple of 256 accepted\n");
    printf("%s: %zu bytes per group of 16 rows and super-block (%.1f a row)\n", dq_type_name(type),
           dq_r16_group_bytes(type, 256 * 8) / 8, dq_r16_group_bytes(type, 256 * 8) / 8 / 16.0);
    run(type, 256, 16, 37);
    run(type, 256, 5, 9);
    run(type, 768, 37, 37);
    run(type, 2048, 48, 37);
    run(type, 4096, 21, 12);
    run(type, 1280, 33, 17);
    // from 128 tokens the codes are decoded once per group (another path, the same bits)
    run(type, 512, 21, 130);
    run(type, 2048, 37, 136);
  }
  printf(failures ? "FAILED (%d)\n" : "all passed\n", failures);
  return failures != 0;
}
