// Private to CKernels: the batched-product (tile) kernels of tiles_avx2.c and tiles_avx512.c and
// the few AVX2 helpers whose exact operation order they must share with the one-row dot kernels
// of quants_avx2.c (a tile gives each token exactly the bits of dq_vec_dot, so its horizontal
// sums and scale products must be the dot kernels' own).
#pragma once
#include "quants.h"

// AVX2 tiles (one weight row x 4 tokens) for the types quants_avx2.c has no tile for: Q4_0,
// Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. NULL for other types. vnni: use AVX-VNNI's dpbusd.
dq_tile4_fn dq_avx2_tile4_more(uint32_t type, bool vnni);
// AVX-512 BW/VL (+VNNI when vnni) tiles for the k-quants; NULL for other types.
dq_tile4_fn dq_avx512_tile4_kernel(uint32_t type, bool vnni);

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define TILE_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TILE_AVX2_VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))

// The same operations, in the same order, as quants_avx2.c's hsum_ps and h2f.
TILE_AVX2 static inline float tile_hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

TILE_AVX2 static inline float tile_h2f(dq_half h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)h)));
}

// Sub-block scales and mins of a q4_K/q5_K super-block.
static inline void tile_k4_scales(const uint8_t *scales, int32_t sc[8], int32_t m[8]) {
  for (int j = 0; j < 8; j++) {
    uint8_t s, mm;
    dq_get_scale_min_k4(j, scales, &s, &mm);
    sc[j] = s;
    m[j] = mm;
  }
}
#endif
