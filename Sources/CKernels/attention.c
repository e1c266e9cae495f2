// Causal single-head attention over a block of query rows; see dq_attention.h.
// The reference is the textbook loop; the AVX2 twin processes 4 query rows per pass so each
// key and value vector loaded from the cache serves 4 rows.
#include "dq_attention.h"
#include "dq_ops.h"
#include "ckernels.h"

#include "cpu_features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dq_simd.h"
#if DQ_X86_SIMD
#include <immintrin.h>
#endif

// Element loaders: the cache holds fp32 or fp16 values; everything else is the same code.
static inline float load_f32(const void *base, int64_t i) { return ((const float *)base)[i]; }
static inline float load_f16(const void *base, int64_t i) {
  return dq_fp16_to_fp32(((const uint16_t *)base)[i]);
}

static inline __attribute__((always_inline)) void attention_ref(
    float *out, int64_t ldo, const float *q, int64_t ldq, const void *k, const void *v,
    int64_t ldkv, int64_t rows, int64_t head_dim, int64_t visible0, float scale, float *scores,
    float (*load)(const void *, int64_t)) {
  for (int64_t r = 0; r < rows; r++) {
    const int64_t visible = visible0 + r;
    const float *qr = q + r * ldq;
    for (int64_t j = 0; j < visible; j++) {
      float dot = 0;
      for (int64_t i = 0; i < head_dim; i++) dot += qr[i] * load(k, j * ldkv + i);
      scores[j] = dot * scale;
    }
    dq_softmax(scores, visible);
    float *o = out + r * ldo;
    memset(o, 0, (size_t)head_dim * sizeof(float));
    for (int64_t j = 0; j < visible; j++)
      for (int64_t i = 0; i < head_dim; i++) o[i] += scores[j] * load(v, j * ldkv + i);
  }
}

void dq_attention_head_ref(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,
                           const float *v, int64_t ldkv, int64_t rows, int64_t head_dim,
                           int64_t visible0, float scale, float *scores) {
  attention_ref(out, ldo, q, ldq, k, v, ldkv, rows, head_dim, visible0, scale, scores, load_f32);
}

void dq_attention_head_f16_ref(float *out, int64_t ldo, const float *q, int64_t ldq,
                               const uint16_t *k, const uint16_t *v, int64_t ldkv, int64_t rows,
                               int64_t head_dim, int64_t visible0, float scale, float *scores) {
  attention_ref(out, ldo, q, ldq, k, v, ldkv, rows, head_dim, visible0, scale, scores, load_f16);
}

#if DQ_X86_SIMD
static inline float hsum256(__m256 x) __attribute__((target("avx2,fma")));
static inline float hsum256(__m256 x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 8 cache elements (fp32, or fp16 widened by F16C) starting at element i.
static inline __m256 load8(const void *base, int64_t i, int f16) __attribute__((target("avx2,fma,f16c")));
static inline __m256 load8(const void *base, int64_t i, int f16) {
  if (f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
  return _mm256_loadu_ps((const float *)base + i);
}

// Up to 4 query rows (nr) at a time; head_dim is a multiple of 8. `f16` is a constant at each
// call site, so each element type gets its own branch-free copy.
static inline __attribute__((always_inline, target("avx2,fma,f16c"))) void attention_block_avx2(
    float *out, int64_t ldo, const float *q, int64_t ldq, const void *k, const void *v,
    int64_t ldkv, int nr, int64_t head_dim, int64_t visible_first, float scale, float *scores,
    int64_t ld_scores, int f16) {
  const int64_t visible_last = visible_first + nr - 1;
  // scores[r][j] = scale * q_r · k_j, for j < visible_last (entries past a row's own limit
  // are computed and then ignored: it keeps the inner loop branch-free).
  for (int64_t j = 0; j < visible_last; j++) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int64_t i = 0; i < head_dim; i += 8) {
      const __m256 kv = load8(k, j * ldkv + i, f16);
      for (int r = 0; r < nr; r++)
        acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * ldq + i), kv, acc[r]);
    }
    for (int r = 0; r < nr; r++) scores[r * ld_scores + j] = hsum256(acc[r]) * scale;
  }
  for (int r = 0; r < nr; r++) dq_softmax(scores + r * ld_scores, visible_first + r);

  // out_r = sum_j p[r][j] v_j, in register tiles of 32 dims (4 rows x 4 vectors).
  for (int64_t i0 = 0; i0 < head_dim; i0 += 32) {
    const int width = head_dim - i0 >= 32 ? 4 : (int)((head_dim - i0) / 8);
    __m256 acc[4][4];
    for (int r = 0; r < 4; r++)
      for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t j = 0; j < visible_last; j++) {
      __m256 vv[4];
      for (int c = 0; c < width; c++) vv[c] = load8(v, j * ldkv + i0 + 8 * c, f16);
      for (int r = 0; r < nr; r++) {
        // A row that may not see key j multiplies it by 0.
        const float p = j < visible_first + r ? scores[r * ld_scores + j] : 0.0f;
        const __m256 pv = _mm256_set1_ps(p);
        for (int c = 0; c < width; c++) acc[r][c] = _mm256_fmadd_ps(pv, vv[c], acc[r][c]);
      }
    }
    for (int r = 0; r < nr; r++)
      for (int c = 0; c < width; c++) _mm256_storeu_ps(out + r * ldo + i0 + 8 * c, acc[r][c]);
  }
}
#endif

#if DQ_X86_SIMD
#define ATT_512 __attribute__((target("avx512f,avx512vl,avx2,fma,f16c")))

// 16 cache elements (fp32, or fp16 widened) starting at element i.
ATT_512 static inline __m512 load16(const void *base, int64_t i, int f16) {
  if (f16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i)));
  return _mm512_loadu_ps((const float *)base + i);
}

enum { ATT_ROWS_512 = 8 };

// The value pass: out[r] = sum over j < keys of scores[r][j] v_j, in key order, R rows sharing
// each value vector they load (rows' entries past their own limit are zero).
static inline __attribute__((always_inline)) ATT_512 void attention_values_avx512(
    float *out, int64_t ldo, const void *v, int64_t ldkv, int64_t head_dim, int64_t keys,
    const float *scores, int64_t ld_scores, int f16, const int R) {
  for (int64_t i0 = 0; i0 < head_dim; i0 += 32) {
    if (head_dim - i0 >= 32) {
      __m512 acc[R][2];
      for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
      for (int64_t j = 0; j < keys; j++) {
        const __m512 v0 = load16(v, j * ldkv + i0, f16), v1 = load16(v, j * ldkv + i0 + 16, f16);
        for (int r = 0; r < R; r++) {
          const __m512 p = _mm512_set1_ps(scores[r * ld_scores + j]);
          acc[r][0] = _mm512_fmadd_ps(p, v0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps(p, v1, acc[r][1]);
        }
      }
      for (int r = 0; r < R; r++) {
        _mm512_storeu_ps(out + r * ldo + i0, acc[r][0]);
        _mm512_storeu_ps(out + r * ldo + i0 + 16, acc[r][1]);
      }
    } else {
      __m512 acc[R];
      for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
      for (int64_t j = 0; j < keys; j++) {
        const __m512 v0 = load16(v, j * ldkv + i0, f16);
        for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(scores[r * ld_scores + j]), v0, acc[r]);
      }
      for (int r = 0; r < R; r++) _mm512_storeu_ps(out + r * ldo + i0, acc[r]);
    }
  }
}

// R (8, 4, 2 or 1) query rows per pass with 512-bit vectors (head_dim a multiple of 16): each
// key and value vector loaded serves R rows. A row's arithmetic does not depend on R, so a row
// gets the same bits whichever pass it falls in (a batch gives a sequence's rows the bits they
// get alone). scores: R rows of ld_scores; after the softmax each row's entries past its own
// limit are zeroed, so the value pass needs no mask.
static inline __attribute__((always_inline)) ATT_512 void attention_block_avx512(
    float *out, int64_t ldo, const float *q, int64_t ldq, const void *k, const void *v,
    int64_t ldkv, int64_t head_dim, int64_t visible_first, float scale, float *scores,
    int64_t ld_scores, int f16, const int R) {
  const int64_t visible_last = visible_first + R - 1;
  for (int64_t j = 0; j < visible_last; j++) {
    __m512 acc[R];
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < head_dim; i += 16) {
      const __m512 kv = load16(k, j * ldkv + i, f16);
      for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(q + r * ldq + i), kv, acc[r]);
    }
    for (int r = 0; r < R; r++) scores[r * ld_scores + j] = _mm512_reduce_add_ps(acc[r]) * scale;
  }
  for (int r = 0; r < R; r++) {
    dq_softmax(scores + r * ld_scores, visible_first + r);
    for (int64_t j = visible_first + r; j < visible_last; j++) scores[r * ld_scores + j] = 0.0f;
  }
  attention_values_avx512(out, ldo, v, ldkv, head_dim, visible_last, scores, ld_scores, f16, R);
}

// The 8-row score rows, per thread (the caller's scratch holds 4); grown, never shrunk.
static _Thread_local float *att_scores;
static _Thread_local int64_t att_scores_cap;

static float *att_scores_for(int64_t count) {
  if (att_scores_cap >= count) return att_scores;
  float *p = malloc((size_t)count * sizeof(float));
  if (!p) return NULL;
  free(att_scores);
  att_scores = p;
  att_scores_cap = count;
  return p;
}

#define ATT_BLOCK_512(R)                                                                         \
  (f16 ? attention_block_avx512(out + r * ldo, ldo, q + r * ldq, ldq, k, v, ldkv, head_dim,       \
                                visible0 + r, scale, scores, ld_scores, 1, R)                     \
       : attention_block_avx512(out + r * ldo, ldo, q + r * ldq, ldq, k, v, ldkv, head_dim,       \
                                visible0 + r, scale, scores, ld_scores, 0, R))

// All rows, 8 at a time, the tail 4, 2, 1; false (nothing done) when it cannot get its scratch.
ATT_512 static bool attention_avx512(float *out, int64_t ldo, const float *q, int64_t ldq,
                                     const void *k, const void *v, int64_t ldkv, int64_t rows,
                                     int64_t head_dim, int64_t visible0, float scale, int f16) {
  const int64_t ld_scores = visible0 + rows - 1;
  float *scores = att_scores_for(ATT_ROWS_512 * ld_scores);
  if (!scores) return false;
  int64_t r = 0;
  for (; r + 8 <= rows; r += 8) ATT_BLOCK_512(8);
  if (r + 4 <= rows) { ATT_BLOCK_512(4); r += 4; }
  if (r + 2 <= rows) { ATT_BLOCK_512(2); r += 2; }
  if (r < rows) ATT_BLOCK_512(1);
  return true;
}
#endif

// Decode rows, their scores split by keys (see dq_attention.h): chunks of at least 32 keys, at
// most 16 of them.
enum { DECODE_CHUNK_KEYS = 32, DECODE_CHUNKS_MAX = 16 };

int64_t dq_attention_decode_chunks(int64_t visible) {
  const int64_t chunks = (visible + DECODE_CHUNK_KEYS - 1) / DECODE_CHUNK_KEYS;
  return chunks < 1 ? 1 : chunks < DECODE_CHUNKS_MAX ? chunks : DECODE_CHUNKS_MAX;
}

bool dq_attention_decode_available(int64_t head_dim) {
#if DQ_X86_SIMD
  return dq_cpu_has_avx512f() && head_dim % 16 == 0;
#else
  (void)head_dim;
  return false;
#endif
}

#if DQ_X86_SIMD
// Keys [j0, j1) for every head, keys outer: each cached key row is read once, whole, in order,
// so a chunk's rows stream (a head at a time, each read was a 128-byte piece of its own 4 KiB
// row; asking for rows ahead in software made that slower, not faster). Each score is
// attention_block_avx512's (R = 1): the same dot, in the same order, scaled the same way.
static inline __attribute__((always_inline)) ATT_512 void attention_decode_scores_avx512(
    float *scores, const float *q, const void *k, int64_t ldkv, int64_t heads, int64_t group,
    int64_t head_dim, int64_t visible, int64_t j0, int64_t j1, float scale, int f16) {
  for (int64_t j = j0; j < j1; j++) {
    for (int64_t h = 0; h < heads; h++) {
      const int64_t kv = j * ldkv + h / group * head_dim;
      __m512 acc = _mm512_setzero_ps();
      for (int64_t i = 0; i < head_dim; i += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + h * head_dim + i), load16(k, kv + i, f16), acc);
      scores[h * visible + j] = _mm512_reduce_add_ps(acc) * scale;
    }
  }
}

// Every head's softmax, then its values keys outer: each cached value row read once, whole, in
// order, by one thread (two threads each reading half of every row ran slower than one reading
// all of it). Per element the same fma chain over the keys as attention_values_avx512 (R = 1),
// with the accumulators in `out` (in L1; a row's heads are too many for registers): same bits.
static inline __attribute__((always_inline)) ATT_512 void attention_decode_values_avx512(
    float *out, float *scores, const void *v, int64_t ldkv, int64_t heads, int64_t group,
    int64_t head_dim, int64_t visible, int f16) {
  for (int64_t h = 0; h < heads; h++) dq_softmax(scores + h * visible, visible);
  memset(out, 0, (size_t)(heads * head_dim) * sizeof(float));
  for (int64_t j = 0; j < visible; j++) {
    for (int64_t h = 0; h < heads; h++) {
      const int64_t kv = j * ldkv + h / group * head_dim;
      const __m512 p = _mm512_set1_ps(scores[h * visible + j]);
      float *o = out + h * head_dim;
      for (int64_t i = 0; i < head_dim; i += 16)
        _mm512_storeu_ps(o + i, _mm512_fmadd_ps(p, load16(v, kv + i, f16), _mm512_loadu_ps(o + i)));
    }
  }
}

ATT_512 static void attention_decode_scores_512(float *scores, const float *q, const void *k,
                                                int64_t ldkv, int64_t heads, int64_t group,
                                                int64_t head_dim, int64_t visible, int64_t chunk,
                                                float scale, bool f16) {
  const int64_t chunks = dq_attention_decode_chunks(visible);
  const int64_t j0 = chunk * visible / chunks, j1 = (chunk + 1) * visible / chunks;
  if (f16) attention_decode_scores_avx512(scores, q, k, ldkv, heads, group, head_dim, visible, j0, j1, scale, 1);
  else attention_decode_scores_avx512(scores, q, k, ldkv, heads, group, head_dim, visible, j0, j1, scale, 0);
}

ATT_512 static void attention_decode_values_512(float *out, float *scores, const void *v, int64_t ldkv,
                                                int64_t heads, int64_t group, int64_t head_dim,
                                                int64_t visible, bool f16) {
  if (f16) attention_decode_values_avx512(out, scores, v, ldkv, heads, group, head_dim, visible, 1);
  else attention_decode_values_avx512(out, scores, v, ldkv, heads, group, head_dim, visible, 0);
}
#endif

bool dq_attention_decode_scores(float *scores, const float *q, const void *k, bool f16, int64_t ldkv,
                                int64_t heads, int64_t group, int64_t head_dim, int64_t visible,
                                int64_t chunk, float scale) {
  if (!dq_attention_decode_available(head_dim) || visible < 1 || group < 1) return false;
#if DQ_X86_SIMD
  attention_decode_scores_512(scores, q, k, ldkv, heads, group, head_dim, visible, chunk, scale, f16);
#endif
  return true;
}

bool dq_attention_decode_values(float *out, float *scores, const void *v, bool f16, int64_t ldkv,
                                int64_t heads, int64_t group, int64_t head_dim, int64_t visible) {
  if (!dq_attention_decode_available(head_dim) || visible < 1 || group < 1) return false;
#if DQ_X86_SIMD
  attention_decode_values_512(out, scores, v, ldkv, heads, group, head_dim, visible, f16);
#endif
  return true;
}

#if DQ_X86_SIMD
// Whole groups of 8; returns how many were converted (the caller finishes the tail).
__attribute__((target("avx2,fma,f16c"))) static int64_t fp32_to_fp16_avx2(uint16_t *dst, const float *src,
                                                                        int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  return i;
}

__attribute__((target("avx2,fma,f16c"))) static void attention_avx2(
    float *out, int64_t ldo, const float *q, int64_t ldq, const void *k, const void *v,
    int64_t ldkv, int64_t rows, int64_t head_dim, int64_t visible0, float scale, float *scores,
    int f16) {
  const int64_t ld_scores = visible0 + rows - 1;
  for (int64_t r = 0; r < rows; r += 4) {
    const int nr = rows - r >= 4 ? 4 : (int)(rows - r);
    if (f16)
      attention_block_avx2(out + r * ldo, ldo, q + r * ldq, ldq, k, v, ldkv, nr, head_dim,
                           visible0 + r, scale, scores, ld_scores, 1);
    else
      attention_block_avx2(out + r * ldo, ldo, q + r * ldq, ldq, k, v, ldkv, nr, head_dim,
                           visible0 + r, scale, scores, ld_scores, 0);
  }
}
#endif

void dq_attention_head(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,
                       const float *v, int64_t ldkv, int64_t rows, int64_t head_dim,
                       int64_t visible0, float scale, float *scores) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx512f() && head_dim % 16 == 0 &&
      attention_avx512(out, ldo, q, ldq, k, v, ldkv, rows, head_dim, visible0, scale, 0))
    return;
  if (dq_cpu_has_avx2() && head_dim % 8 == 0) {
    attention_avx2(out, ldo, q, ldq, k, v, ldkv, rows, head_dim, visible0, scale, scores, 0);
    return;
  }
#endif
  dq_attention_head_ref(out, ldo, q, ldq, k, v, ldkv, rows, head_dim, visible0, scale, scores);
}

void dq_attention_head_f16(float *out, int64_t ldo, const float *q, int64_t ldq, const uint16_t *k,
                           const uint16_t *v, int64_t ldkv, int64_t rows, int64_t head_dim,
                           int64_t visible0, float scale, float *scores) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx512f() && head_dim % 16 == 0 &&
      attention_avx512(out, ldo, q, ldq, k, v, ldkv, rows, head_dim, visible0, scale, 1))
    return;
  if (dq_cpu_has_avx2() && head_dim % 8 == 0) {
    attention_avx2(out, ldo, q, ldq, k, v, ldkv, rows, head_dim, visible0, scale, scores, 1);
    return;
  }
#endif
  dq_attention_head_f16_ref(out, ldo, q, ldq, k, v, ldkv, rows, head_dim, visible0, scale, scores);
}

void dq_fp32_to_fp16_row(uint16_t *dst, const float *src, int64_t n) {
  int64_t i = 0;
#if DQ_X86_SIMD
  if (dq_cpu_has_avx2()) {
    i = fp32_to_fp16_avx2(dst, src, n);
  }
#endif
  for (; i < n; i++) dst[i] = dq_fp32_to_fp16(src[i]);
}
