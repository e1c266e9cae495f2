// One thread's time for the unmerged LoRA kernels (lora.c) over 8 rank-64 adapters' F16 factors
// on all seven projections of SmolLM2-135M's 30 layers (312 MB, far more than the caches: what a
// decode step with 8 sequences on 8 adapters reads), one token each: the down step (u = s A x),
// the up step (y += Bᵀᵀ u), both, or a plain 512-bit read of the A factors for comparison.
// Build: S=Sources/CKernels; clang -O3 -fno-math-errno -I$S -I$S/include $S/*.c scripts/lora_bench.c -o /tmp/lora_bench -lpthread -lm
// Run:   /tmp/lora_bench [mode: 1 down, 2 up, 3 both (default), 4 plain read of A] [layers 30]
#include "ckernels.h"
#include "dq_ops.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx512f"))) static float plain_read(const uint16_t *p, size_t n) {
  __m512 a = _mm512_setzero_ps(), b = a;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a = _mm512_add_ps(a, _mm512_loadu_ps((const float *)(p + i)));
    b = _mm512_add_ps(b, _mm512_loadu_ps((const float *)(p + i + 32)));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a, b));
}
#else
static float plain_read(const uint16_t *p, size_t n) { float s = 0; for (size_t i = 0; i < n; i++) s += p[i]; return s; }
#endif
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static volatile float sink;

int main(int argc, char **argv) {
  const int mode = argc > 1 ? atoi(argv[1]) : 3, layers = argc > 2 ? atoi(argv[2]) : 30;
  const int rank = 64, adapters = 8;
  // (columns, rows) of q, k, v, o, gate, up, down
  const int shapes[7][2] = {{576, 576}, {576, 192}, {576, 192}, {576, 576}, {576, 1536}, {576, 1536}, {1536, 576}};
  size_t total = 0;
  for (int s = 0; s < 7; s++) total += (size_t)rank * (shapes[s][0] + shapes[s][1]);
  total *= (size_t)layers * adapters;
  uint16_t *f = malloc(total * sizeof *f);
  if (!f) return 1;
  for (size_t i = 0; i < total; i++) f[i] = (uint16_t)(0x3c00 ^ (i & 0x3ff));  // finite F16 values
  float x[1536], y[1536] = {0}, u[64] = {0};
  for (int i = 0; i < 1536; i++) x[i] = 1.0f / (float)(i + 1);
  double best = 1e9;
  for (int rep = 0; rep < (layers < 30 ? 200 : 5); rep++) {
    const double t0 = now();
    size_t off = 0;
    for (int l = 0; l < layers; l++)
      for (int s = 0; s < 7; s++)
        for (int a = 0; a < adapters; a++) {
          const int n = shapes[s][0], m = shapes[s][1];
          const uint16_t *A = f + off;
          off += (size_t)rank * n;
          const uint16_t *Bt = f + off;
          off += (size_t)rank * m;
          if (mode & 1) dq_lora_down_f16(u, A, rank, x, n, 0.5f);
          if (mode & 2) dq_lora_up_f16(y, Bt, m, u, rank, m);
          if (mode & 4) sink += plain_read(A, (size_t)rank * n);
        }
    const double t = now() - t0;
    if (t < best) best = t;
  }
  printf("mode %d: %.1f MB of factors, %.2f ms (best of the passes; y[5] %g)\n", mode, total * 2 / 1e6, best * 1e3, y[5]);
  free(f);
  return 0;
}
