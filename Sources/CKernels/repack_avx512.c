// r16: k-quant weight matrices repacked once, at load, 16 rows per group, in about their original
// size, for every product with them (a decode step of 1..8 tokens and prefill alike). The file's
// bytes stay the truth for everything else; only the products read these.
//
// Within a group, 32-bit lane r of every vector belongs to row r. The codes keep the file's own
// bit planes, only transposed by dwords: dword c of row r's qs (ql, qh) goes to byte 64c + 4r of
// the plane. One 64-byte load, an and or a shift, gives a vector whose lane r holds 4 codes of row
// r, against which a token's 4 activation bytes are broadcast (vpdpbusd, no horizontal sums);
// a 32-code sub-block's integer sum is then multiplied by its 16 rows' scales at once.
//
// Per super-block and group (bytes), each part where the kernel first reads it, so that a group
// is read as one ascending stream (Q5_K/Q6_K with their qh lines apart from the nibbles they go
// with ran 1 token at half the speed from memory):
//  Q4_K: the file's 12 bytes of 6-bit scales and mins, as 3 dwords transposed, 192 | d[r] 32 |
//        dmin[r] 32 | qs 2048 = 2304 (144 a row, as the file). The kernel unpacks the scales
//        lane-wise, a few operations per super-block for 16 rows (as bytes, 148 a row, the copy
//        was 2.8 % larger than the file, which put peak RSS above llama.cpp's).
//  Q5_K: the same 256 | for k < 8, qs dword k then qh dword k, 1024 | qs dwords 8..32 1536
//        = 2816 (176 a row, as the file).
//  Q6_K: (sc[r][2g], sc[r][2g+1]) pairs 256 | d[r] 32 | 32 zero bytes | per half h: for k < 8,
//        ql dword 16h+k (codes 128h.. and 128h+64..) then qh dword 8h+k, 1024 | ql dwords
//        16h+8..16h+16 512 = 3392 (212 a row; the file has 210): 3360 is not a multiple of 64,
//        and every load should stay on whole lines. (All the group's codes first and the scales
//        after, 210 a row, read at half the speed from L3 or memory.)
//
// Arithmetic, per token and super-block, lane-wise: exact int32 sums (sub-block sums times their
// scale; Q4_K/Q5_K mins times the token's sub-block sums by vpdpwssd; Q6_K's -32 offset as the
// sub-block sum's start value), then fp32: (isum d - msum dmin) dy accumulated over the super-
// blocks in order. Each token's operations are the same whatever the number of tokens in the
// call or its place among them, and each group is computed alone: a (row, token) result has the
// same bits for every call that contains it.
#pragma STDC FP_CONTRACT OFF
#include <stdlib.h>

#include "cpu_features.h"
#include "quants.h"
#include "dq_simd.h"
#include "scratch.h"

enum { R16_ROWS = 16 };
enum { Q4K_SB = 2304, Q5K_SB = 2816, Q6K_SB = 3392 };

// ---- layout (plain C: packing runs once per matrix at load) ---------------------------------

static size_t r16_group_bytes_any(uint32_t type, int64_t n) {
  if (n <= 0 || n % QK_K) return 0;
  const size_t nb = (size_t)(n / QK_K);
  switch (type) {
    case DQ_TYPE_Q4_K: return nb * Q4K_SB;
    case DQ_TYPE_Q5_K: return nb * Q5K_SB;
    case DQ_TYPE_Q6_K: return nb * Q6K_SB;
    default: return 0;
  }
}

// Dword c (of ndw) of each row's plane to bytes 64c + 4r.
static void transpose_dwords(const uint8_t *const src[R16_ROWS], int ndw, uint8_t *dst) {
  for (int c = 0; c < ndw; c++)
    for (int r = 0; r < R16_ROWS; r++) memcpy(dst + 64 * c + 4 * r, src[r] + 4 * c, 4);
}

// Q4_K / Q5_K (hb) super-block i of 16 rows (missing rows: zero blocks).
static void pack_k4(bool hb, const void *const blk[R16_ROWS], uint8_t *out) {
  const uint8_t *qs[R16_ROWS], *qh[R16_ROWS];
  for (int r = 0; r < R16_ROWS; r++) {
    qs[r] = hb ? ((const block_q5_K *)blk[r])->qs : ((const block_q4_K *)blk[r])->qs;
    qh[r] = hb ? ((const block_q5_K *)blk[r])->qh : NULL;
  }
  if (hb) {
    for (int k = 0; k < 8; k++) {
      const uint8_t *l[R16_ROWS], *h[R16_ROWS];
      for (int r = 0; r < R16_ROWS; r++) l[r] = qs[r] + 4 * k, h[r] = qh[r] + 4 * k;
      transpose_dwords(l, 1, out + 256 + 128 * k);
      transpose_dwords(h, 1, out + 256 + 128 * k + 64);
    }
    const uint8_t *rest[R16_ROWS];
    for (int r = 0; r < R16_ROWS; r++) rest[r] = qs[r] + 32;
    transpose_dwords(rest, 24, out + 1280);
  } else {
    transpose_dwords(qs, 32, out + 256);
  }
  const uint8_t *scales[R16_ROWS];
  for (int r = 0; r < R16_ROWS; r++)
    scales[r] = hb ? ((const block_q5_K *)blk[r])->scales : ((const block_q4_K *)blk[r])->scales;
  transpose_dwords(scales, 3, out);
  uint16_t *d = (uint16_t *)(void *)(out + 192);
  for (int r = 0; r < R16_ROWS; r++) {
    d[r] = hb ? ((const block_q5_K *)blk[r])->d : ((const block_q4_K *)blk[r])->d;
    d[16 + r] = hb ? ((const block_q5_K *)blk[r])->dmin : ((const block_q4_K *)blk[r])->dmin;
  }
}

static void pack_q6_K(const void *const blk[R16_ROWS], uint8_t *out) {
  for (int h = 0; h < 2; h++) {
    const uint8_t *ql[R16_ROWS], *qh[R16_ROWS];
    for (int r = 0; r < R16_ROWS; r++) {
      ql[r] = ((const block_q6_K *)blk[r])->ql + 64 * h;
      qh[r] = ((const block_q6_K *)blk[r])->qh + 32 * h;
    }
    uint8_t *o = out + 320 + 1536 * h;
    for (int k = 0; k < 8; k++) {
      const uint8_t *l[R16_ROWS], *q[R16_ROWS];
      for (int r = 0; r < R16_ROWS; r++) l[r] = ql[r] + 4 * k, q[r] = qh[r] + 4 * k;
      transpose_dwords(l, 1, o + 128 * k);
      transpose_dwords(q, 1, o + 128 * k + 64);
    }
    const uint8_t *ql8[R16_ROWS];
    for (int r = 0; r < R16_ROWS; r++) ql8[r] = ql[r] + 32;
    transpose_dwords(ql8, 8, o + 1024);
  }
  uint8_t *meta = out;
  memset(meta + 288, 0, 32);
  uint16_t *d = (uint16_t *)(void *)(meta + 256);
  for (int r = 0; r < R16_ROWS; r++) {
    const block_q6_K *a = blk[r];
    for (int k = 0; k < 16; k++) meta[32 * (k / 2) + 2 * r + (k & 1)] = (uint8_t)a->scales[k];
    d[r] = a->d;
  }
}

static void r16_pack_group_any(uint32_t type, int64_t n, const void *w, size_t row_stride, int64_t rows,
                               void *out) {
  static const block_q6_K zero;  // the largest of the three; all zero bits are zero blocks of each
  _Static_assert(sizeof zero >= sizeof(block_q5_K) && sizeof zero >= sizeof(block_q4_K), "zero block");
  const size_t bsz = type == DQ_TYPE_Q4_K ? sizeof(block_q4_K)
                     : type == DQ_TYPE_Q5_K ? sizeof(block_q5_K)
                                            : sizeof(block_q6_K);
  const int64_t nb = n / QK_K;
  uint8_t *o = out;
  for (int64_t i = 0; i < nb; i++) {
    const void *blk[R16_ROWS];
    for (int r = 0; r < R16_ROWS; r++)
      blk[r] = r < rows ? (const void *)((const char *)w + (size_t)r * row_stride + (size_t)i * bsz) : (const void *)&zero;
    switch (type) {
      case DQ_TYPE_Q4_K: pack_k4(false, blk, o + (size_t)i * Q4K_SB); break;
      case DQ_TYPE_Q5_K: pack_k4(true, blk, o + (size_t)i * Q5K_SB); break;
      default: pack_q6_K(blk, o + (size_t)i * Q6K_SB); break;
    }
  }
}

#if DQ_X86_SIMD
#include <immintrin.h>

#include "vnni.h"

#define R16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define R16_INLINE R16_TARGET static inline __attribute__((always_inline))
// R16_CODES: bytes of a super-block's decoded codes; R16_PRE_MIN (Q4_K, Q5_K), R16_Q6_PRE_MIN:
// the token count from which a call decodes each group's codes once (below, the 8-token chunks
// unpack them as they go).
// R16_K4_AUX_MIN: the chunk size from which Q4_K/Q5_K take the tokens' sub-block sums prepared
// once per call (k4_r16_aux).
enum { R16_TOK = 8, R16_CODES = 4096, R16_PRE_MIN = 128, R16_Q6_PRE_MIN = 40, R16_K4_AUX_MIN = 7 };

// Prefetching, measured on one thread from memory (384-512 MiB of 2048, 5632 and 8192 columns,
// thread CPU time, variants alternated in one process). From 3 tokens the kernels, slower per
// byte, need their lines requested into L2 16 KiB ahead on the group stream (Q4_K 8 tokens
// 90 -> 47 ms, Q6_K 80 -> 37; 4 KiB ahead: 20-40 % slower at 3-4 tokens). At 1 token that costs
// 20-40 %, and lines requested into L1 only 384 bytes ahead do best (1 KiB ahead lost up to 30 %
// on Q4_K); at 2 tokens both requests together were best or near it (L2 alone lost up to 25 %,
// L1 alone up to 40 %). With no requests at all, 1 token ran at 0.6-1.2x depending on what ran
// before (the hardware prefetchers alone). The super-block's lines (36, 44 or 53) are spread
// evenly over its 8 sub-block steps.
enum { R16_PF_L2 = 16384, R16_PF_L1 = 384 };
R16_INLINE void r16_prefetch(int T, const uint8_t *sb, int lines, int step) {
  const int first = lines * step / 8, end = lines * (step + 1) / 8;
  for (int l = first; l < end; l++) {
    if (T <= 2) _mm_prefetch((const char *)sb + R16_PF_L1 + 64 * l, _MM_HINT_T0);
    if (T >= 2) _mm_prefetch((const char *)sb + R16_PF_L2 + 64 * l, _MM_HINT_T1);
  }
}

R16_INLINE __m512i bcast32(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// vpshufb control that zero-extends byte a of each dword to its low int16 half, and byte b (if
// b >= 0) to its high half.
R16_INLINE __m512i lane_bytes(int a, int b) {
  int32_t c[4];
  for (int k = 0; k < 4; k++) c[k] = (4 * k + a) | 0x8000 | (b < 0 ? 0x80 : 4 * k + b) << 16 | (int32_t)0x80000000;
  return _mm512_set4_epi32(c[3], c[2], c[1], c[0]);
}

// The file's 6-bit scales (SC) or mins (MN) of a Q4_K/Q5_K super-block (get_scale_min_k4),
// lane-wise: lane r of [0] holds row r's bytes for sub-blocks 0..3, of [1] for 4..7.
R16_INLINE void k4_scales(const uint8_t *p, __m512i SC[2]) {
  const __m512i D0 = _mm512_load_si512((const void *)p), D2 = _mm512_load_si512((const void *)(p + 128));
  SC[0] = _mm512_and_si512(D0, _mm512_set1_epi8(0x3F));
  SC[1] = _mm512_or_si512(_mm512_and_si512(D2, _mm512_set1_epi8(0x0F)),
                          _mm512_and_si512(_mm512_srli_epi32(D0, 2), _mm512_set1_epi8(0x30)));
}
R16_INLINE void k4_mins_bytes(const uint8_t *p, __m512i MN[2]) {
  const __m512i D1 = _mm512_load_si512((const void *)(p + 64)), D2 = _mm512_load_si512((const void *)(p + 128));
  MN[0] = _mm512_and_si512(D1, _mm512_set1_epi8(0x3F));
  MN[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(D2, 4), _mm512_set1_epi8(0x0F)),
                          _mm512_and_si512(_mm512_srli_epi32(D1, 2), _mm512_set1_epi8(0x30)));
}

// Q4_K/Q5_K super-block i's mins times dmin for T tokens (mt): lane r of M[p] holds (m[r][2p],
// m[r][2p+1]) as int16, against the token's two 32-code sums (bsums pairs added) as one int16
// pair; with split, as two chains of two (exact integer sums: the order does not change the bits).
R16_INLINE void k4_mins(int T, bool split, const uint8_t *p, const block_q8_K *const b[], const int32_t *ax,
                        int64_t nb, int64_t i, __m512 mt[]) {
  __m512i MN[2], M[4];
  k4_mins_bytes(p, MN);
  for (int q = 0; q < 4; q++) M[q] = _mm512_shuffle_epi8(MN[q / 2], lane_bytes(2 * (q & 1), 2 * (q & 1) + 1));
  const __m512 mv = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(const void *)(p + 224)));
  for (int t = 0; t < T; t++) {
    __m512i P[4];
    if (ax && T >= R16_K4_AUX_MIN) {
      const int32_t *a = ax + ((size_t)t * (size_t)nb + (size_t)i) * 4;
      for (int q = 0; q < 4; q++) P[q] = _mm512_set1_epi32(a[q]);
    } else {
      const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(const void *)b[t][i].bsums),
                                        _mm_loadu_si128((const __m128i *)(const void *)(b[t][i].bsums + 8)));
      // the pairs broadcast by shuffles, not stored and reloaded: with the store the kernels' speed
      // hung on the stack's offset within 4 KiB against the group's loads (Q5_K in cache, 8 tokens
      // 160-172 GMAC/s, 6 tokens 148-165, across offsets)
      const __m512i B = _mm512_broadcast_i32x4(bs);
      P[0] = _mm512_shuffle_epi32(B, 0x00), P[1] = _mm512_shuffle_epi32(B, 0x55);
      P[2] = _mm512_shuffle_epi32(B, 0xAA), P[3] = _mm512_shuffle_epi32(B, 0xFF);
    }
    __m512i m;
    if (split) {
      const __m512i m0 = dq_dpwssd_kept(_mm512_madd_epi16(M[0], P[0]), M[1], P[1]);
      const __m512i m1 = dq_dpwssd_kept(_mm512_madd_epi16(M[2], P[2]), M[3], P[3]);
      m = _mm512_add_epi32(m0, m1);
    } else {
      m = _mm512_setzero_si512();
      for (int q = 0; q < 4; q++) m = dq_dpwssd_kept(m, M[q], P[q]);
    }
    mt[t] = _mm512_mul_ps(_mm512_cvtepi32_ps(m), mv);
  }
}

// Q4_K (hb false) / Q5_K: T tokens (q8_K rows x, xs apart) against one group of nb super-blocks;
// with pre, its codes come decoded from `codes` (k4_r16_decode), the rest from the group.
// With 8 tokens the mins' product goes first in each super-block (spilled where registers run
// out), as two chains of two: at the end of the super-block, behind the 64 dpbusd, as one chain
// of four vpdpwssd, it held every token's last FMAs back (Q4_K prefill in cache 165 -> 177
// GMAC/s, Q5_K 161 -> 171). With fewer tokens, at the end as before: first, it lost up to 7 %.
// ax: k4_r16_aux's pairs for these tokens, or NULL.
R16_INLINE void k4_r16(int T, bool hb, bool pre, const uint8_t *codes, const int32_t *ax, int64_t nb,
                       const uint8_t *grp, const char *x, size_t xs, float *y, int64_t ldy, __mmask16 keep) {
  const size_t sbb = hb ? Q5K_SB : Q4K_SB;
  const block_q8_K *b[R16_TOK];
  for (int t = 0; t < T; t++) b[t] = (const block_q8_K *)(const void *)(x + (size_t)t * xs);
  __m512 fs[R16_TOK];
  for (int t = 0; t < T; t++) fs[t] = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0F), bit5 = _mm512_set1_epi8(0x10);
  const bool early = T == R16_TOK;
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *p = grp + (size_t)i * sbb;
    // qs dword c at qs + 64 c (Q5_K: c < 8 at p + 256 + 128 c, then qs + 64 c), qh dword k at
    // p + 320 + 128 k
    const uint8_t *qs = p + (hb ? 768 : 256);
    __m512i SC[2];
    k4_scales(p, SC);
    __m512 mt[R16_TOK];  // the mins' sum times dmin
    if (early) k4_mins(T, true, p, b, ax, nb, i, mt);
    __m512i isum[R16_TOK];
    for (int t = 0; t < T; t++) isum[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
      // sub-block j: low nibbles of qs dwords 8(j/2).. for even j, high ones for odd j
      __m512i W[8];
      for (int k = 0; k < 8 && pre; k++) W[k] = _mm512_load_si512((const void *)(codes + R16_CODES * i + 64 * (8 * j + k)));
      for (int k = 0; k < 8 && !pre; k++) {
        const int c = 8 * (j / 2) + k;
        const __m512i v = _mm512_load_si512((const void *)(hb && c < 8 ? p + 256 + 128 * c : qs + 64 * c));
        W[k] = _mm512_and_si512(j & 1 ? _mm512_srli_epi16(v, 4) : v, m4);
        if (hb) {  // bit j of the qh bytes is this sub-block's fifth bit
          const __m512i h = _mm512_load_si512((const void *)(p + 320 + 128 * k));
          const __m512i hs = j <= 4 ? _mm512_slli_epi16(h, 4 - j) : _mm512_srli_epi16(h, j - 4);
          W[k] = _mm512_or_si512(W[k], _mm512_and_si512(hs, bit5));
        }
      }
      if (!pre) r16_prefetch(T, p, hb ? 44 : 36, j);
      const __m512i sc = _mm512_shuffle_epi8(SC[j / 4], lane_bytes(j % 4, -1));
      for (int t = 0; t < T; t++) {
        const int8_t *q = b[t][i].qs + 32 * j;
        __m512i a = _mm512_dpbusd_epi32(_mm512_setzero_si512(), W[0], bcast32(q));
        for (int k = 1; k < 8; k++) a = _mm512_dpbusd_epi32(a, W[k], bcast32(q + 4 * k));
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(a, sc));
      }
    }
    if (!early) k4_mins(T, false, p, b, ax, nb, i, mt);
    const __m512 dv = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(const void *)(p + 192)));
    for (int t = 0; t < T; t++) {
      const __m512 tmp = _mm512_fmsub_ps(_mm512_cvtepi32_ps(isum[t]), dv, mt[t]);
      fs[t] = _mm512_fmadd_ps(tmp, _mm512_set1_ps(b[t][i].d), fs[t]);
    }
  }
  for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, keep, fs[t]);
}

// Q6_K: T tokens against one group (with pre, its codes from q6_K_r16_decode; ax: q6_K_r16_aux's
// start values for these tokens, or NULL).
R16_INLINE void q6_K_r16(int T, bool pre, const uint8_t *codes, const int32_t *ax, int64_t nb, const uint8_t *grp,
                         const char *x, size_t xs, float *y, int64_t ldy, __mmask16 keep) {
  const block_q8_K *b[R16_TOK];
  for (int t = 0; t < T; t++) b[t] = (const block_q8_K *)(const void *)(x + (size_t)t * xs);
  __m512 fs[R16_TOK];
  for (int t = 0; t < T; t++) fs[t] = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *p = grp + (size_t)i * Q6K_SB, *meta = p;
    // per token, -32 times each 16-code sum: where a sub-block's integer sum starts
    int32_t off[R16_TOK][16];
    const int32_t *ot[R16_TOK];
    for (int t = 0; t < T; t++) {
      if (ax) {
        ot[t] = ax + ((size_t)t * (size_t)nb + (size_t)i) * 16;
        continue;
      }
      const __m512i bs = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)b[t][i].bsums));
      _mm512_storeu_si512((void *)off[t], _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(bs, 5)));
      ot[t] = off[t];
    }
    __m512i isum[R16_TOK];
    for (int t = 0; t < T; t++) isum[t] = _mm512_setzero_si512();
#pragma GCC unroll 8  // constant shifts and offsets (not unrolled, clang chose variable shifts)
    for (int g = 0; g < 8; g++) {
      // 32-code group g = 4h + f: ql dwords 16h + 8(f & 1).., low nibbles for f < 2; 2-bit field f of
      // qh dwords 8h.. (as the file's q6_K)
      const int h = g / 4, f = g % 4;
      __m512i W[8];
      for (int k = 0; k < 8 && pre; k++) W[k] = _mm512_load_si512((const void *)(codes + R16_CODES * i + 64 * (8 * g + k)));
      for (int k = 0; k < 8 && !pre; k++) {
        const uint8_t *hk = p + 320 + 1536 * h;
        const __m512i l = _mm512_load_si512((const void *)(f & 1 ? hk + 1024 + 64 * k : hk + 128 * k));
        const __m512i q = _mm512_load_si512((const void *)(hk + 128 * k + 64));
        const __m512i lo = _mm512_and_si512(f < 2 ? l : _mm512_srli_epi16(l, 4), m4);
        const __m512i hs = f == 0 ? _mm512_slli_epi16(q, 4) : f == 1 ? _mm512_slli_epi16(q, 2) : f == 2 ? q : _mm512_srli_epi16(q, 2);
        W[k] = _mm512_or_si512(lo, _mm512_and_si512(hs, m30));
      }
      if (!pre) r16_prefetch(T, p, 53, g);
      const __m512i P = _mm512_cvtepi8_epi16(_mm256_load_si256((const __m256i *)(const void *)(meta + 32 * g)));
      const __m512i s0 = _mm512_srai_epi32(_mm512_slli_epi32(P, 16), 16), s1 = _mm512_srai_epi32(P, 16);
      for (int t = 0; t < T; t++) {
        const int8_t *q = b[t][i].qs + 32 * g;
        __m512i a0 = _mm512_set1_epi32(ot[t][2 * g]), a1 = _mm512_set1_epi32(ot[t][2 * g + 1]);
        for (int k = 0; k < 4; k++) a0 = _mm512_dpbusd_epi32(a0, W[k], bcast32(q + 4 * k));
        for (int k = 4; k < 8; k++) a1 = _mm512_dpbusd_epi32(a1, W[k], bcast32(q + 4 * k));
        isum[t] = _mm512_add_epi32(isum[t], _mm512_add_epi32(_mm512_mullo_epi32(a0, s0), _mm512_mullo_epi32(a1, s1)));
      }
    }
    const __m512 dv = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(const void *)(meta + 256)));
    for (int t = 0; t < T; t++)
      fs[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(isum[t]), dv), _mm512_set1_ps(b[t][i].d), fs[t]);
  }
  for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, keep, fs[t]);
}

// ---- prefill: a group's codes decoded once per call ------------------------------------------
// Past 8 tokens a group meets several 8-token chunks, and each would unpack the codes again
// (Q5_K, Q6_K: about 5 vector ops per vector of codes, against 8 dpbusd a token). From
// R16_PRE_MIN tokens (Q6_K: R16_Q6_PRE_MIN) they are unpacked once per group and call into a
// per-thread buffer of plain bytes (16 n: 32 KiB at 2048 columns, kept in L2), in the kernels'
// order: super-block i at R16_CODES i, the vector of sub-block (32-code group) j and dword k at
// + 64 (8 j + k). The chunks then compute exactly as from the group: the same integer operands,
// the same operations per token, so the same bits. What it pays (one thread, 256 rows in cache, 2048 and 5632 columns):
// Q4_K, Q5_K 3-4 % from 128 tokens, nothing at 64-96 (their 8-token chunks unpack the codes on
// ALU ports the dpbusd leave free: on Zen 4 dpbusd, vpmulld, vpdpwssd and FMA share one 512-bit
// op a cycle, and/or/shift/add/cvt issue beside them); Q6_K, whose codes take more unpacking,
// 2 % at 40 tokens, 4 % at 64, 6-8 % from 96. Below that the unpacking's 64-byte stores (4 KiB a
// super-block) cost more than they save: 13 % at 9 tokens.
static _Thread_local dq_scratch r16_codes;

R16_INLINE void k4_r16_decode(bool hb, int64_t nb, const uint8_t *grp, uint8_t *out) {
  const size_t sbb = hb ? Q5K_SB : Q4K_SB;
  const __m512i m4 = _mm512_set1_epi8(0x0F), bit5 = _mm512_set1_epi8(0x10);
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *p = grp + (size_t)i * sbb, *qs = p + (hb ? 768 : 256);
    uint8_t *o = out + R16_CODES * i;
#pragma GCC unroll 32
    for (int c = 0; c < 32; c++) {  // qs dword c: sub-block 2 (c / 8) low nibbles, the next high ones
      const int j = 2 * (c / 8), k = c % 8;
      if (k == 0) r16_prefetch(8, p, hb ? 44 : 36, c / 4), r16_prefetch(8, p, hb ? 44 : 36, c / 4 + 1);
      const __m512i v = _mm512_load_si512((const void *)(hb && c < 8 ? p + 256 + 128 * c : qs + 64 * c));
      __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      if (hb) {
        const __m512i h = _mm512_load_si512((const void *)(p + 320 + 128 * k));
        const __m512i h0 = j <= 4 ? _mm512_slli_epi16(h, 4 - j) : _mm512_srli_epi16(h, j - 4);
        const __m512i h1 = j + 1 <= 4 ? _mm512_slli_epi16(h, 3 - j) : _mm512_srli_epi16(h, j - 3);
        lo = _mm512_or_si512(lo, _mm512_and_si512(h0, bit5));
        hi = _mm512_or_si512(hi, _mm512_and_si512(h1, bit5));
      }
      _mm512_store_si512((void *)(o + 64 * (8 * j + k)), lo);
      _mm512_store_si512((void *)(o + 64 * (8 * j + 8 + k)), hi);
    }
  }
}

R16_INLINE void q6_K_r16_decode(int64_t nb, const uint8_t *grp, uint8_t *out) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *p = grp + (size_t)i * Q6K_SB;
    uint8_t *o = out + R16_CODES * i;
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
      const uint8_t *hk = p + 320 + 1536 * h;
      r16_prefetch(8, p, 53, 4 * h), r16_prefetch(8, p, 53, 4 * h + 1);
      r16_prefetch(8, p, 53, 4 * h + 2), r16_prefetch(8, p, 53, 4 * h + 3);
#pragma GCC unroll 8
      for (int k = 0; k < 8; k++) {  // groups 4h + f, f = 0..3: as q6_K_r16 unpacks them
        const __m512i l0 = _mm512_load_si512((const void *)(hk + 128 * k));
        const __m512i l1 = _mm512_load_si512((const void *)(hk + 1024 + 64 * k));
        const __m512i q = _mm512_load_si512((const void *)(hk + 128 * k + 64));
        const __m512i W0 = _mm512_or_si512(_mm512_and_si512(l0, m4), _mm512_and_si512(_mm512_slli_epi16(q, 4), m30));
        const __m512i W1 = _mm512_or_si512(_mm512_and_si512(l1, m4), _mm512_and_si512(_mm512_slli_epi16(q, 2), m30));
        const __m512i W2 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l0, 4), m4), _mm512_and_si512(q, m30));
        const __m512i W3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l1, 4), m4),
                                           _mm512_and_si512(_mm512_srli_epi16(q, 2), m30));
        _mm512_store_si512((void *)(o + 64 * (8 * (4 * h) + k)), W0);
        _mm512_store_si512((void *)(o + 64 * (8 * (4 * h + 1) + k)), W1);
        _mm512_store_si512((void *)(o + 64 * (8 * (4 * h + 2) + k)), W2);
        _mm512_store_si512((void *)(o + 64 * (8 * (4 * h + 3) + k)), W3);
      }
    }
  }
}

// Q6_K: per token and super-block, -32 times each 16-code sum (where a sub-block's integer sum
// starts), once per call from 4 tokens (tokens x 64 bytes a super-block), rather than stored on
// the stack and reloaded per group and chunk: in cache 4-7 tokens +7-29 % (7 tokens had run at
// 123 GMAC/s against 158 at 8), from memory (2048 columns) 5-7 tokens 1.06-1.33x; at 3 tokens
// from memory it lost 7 %, so 1-3 tokens keep the stack. The same integers either way.
static _Thread_local dq_scratch r16_aux;
R16_TARGET static const int32_t *q6_K_r16_aux(int64_t nb, const char *x, size_t xs, int64_t tokens) {
  int32_t *o = (int32_t *)(void *)dq_scratch_reserve(&r16_aux, (size_t)tokens * (size_t)nb * 64);
  if (!o) return NULL;
  for (int64_t t = 0; t < tokens; t++) {
    const block_q8_K *b = (const block_q8_K *)(const void *)(x + (size_t)t * xs);
    for (int64_t i = 0; i < nb; i++) {
      const __m512i bs = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)b[i].bsums));
      _mm512_store_si512((void *)(o + (t * nb + i) * 16), _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(bs, 5)));
    }
  }
  return o;
}

// Q4_K/Q5_K: per token and super-block, the 8 32-code sums as int16 pairs (4 dwords), once per
// call, for chunks of 7-8 tokens, rather than added and shuffled per group and chunk: in cache
// 7 and 8 tokens +1-2.5 % (Q5_K), 6 tokens lost 2 % (Q4_K, Q5_K), 4-5 up to 6 %.
R16_TARGET static const int32_t *k4_r16_aux(int64_t nb, const char *x, size_t xs, int64_t tokens) {
  int32_t *o = (int32_t *)(void *)dq_scratch_reserve(&r16_aux, (size_t)tokens * (size_t)nb * 16);
  if (!o) return NULL;
  for (int64_t t = 0; t < tokens; t++) {
    const block_q8_K *b = (const block_q8_K *)(const void *)(x + (size_t)t * xs);
    for (int64_t i = 0; i < nb; i++)
      _mm_store_si128((__m128i *)(void *)(o + (t * nb + i) * 4),
                      _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(const void *)b[i].bsums),
                                     _mm_loadu_si128((const __m128i *)(const void *)(b[i].bsums + 8))));
  }
  return o;
}

#define R16_CASES(CALL) \
  switch (T) {          \
    case 8: CALL(8); break; \
    case 7: CALL(7); break; \
    case 6: CALL(6); break; \
    case 5: CALL(5); break; \
    case 4: CALL(4); break; \
    case 3: CALL(3); break; \
    case 2: CALL(2); break; \
    default: CALL(1); break; \
  }

// The tokens go 8 at a time; a remainder of 1-3 past 8 goes with the last 8 as two chunks of
// about half (9: 5 + 4, not 8 + 1: a chunk of 1-3 tokens unpacks the codes for little work, and
// its dpbusd chains wait on themselves; in cache Q5_K ran 75, 119, 140 GMAC/s at 1, 2, 3 tokens
// against 155-170 at 4-8). From R16_PRE_MIN (Q6_K: R16_Q6_PRE_MIN) tokens the group's codes are
// decoded once (when the buffer can be had) and the 8-token chunks read them; from AUX_MIN
// tokens the activations' sub-block sums are prepared once per call (k4_r16_aux, q6_K_r16_aux;
// without the buffer, the kernels make them as they go).
// Lines [L t0 / tokens, L t1 / tokens) of the L lines at p into L2.
R16_INLINE void r16_prefetch_share(const uint8_t *p, size_t bytes, int64_t t0, int64_t t1, int64_t tokens) {
  const size_t lines = bytes / 64, from = lines * (size_t)t0 / (size_t)tokens, to = lines * (size_t)t1 / (size_t)tokens;
  for (size_t l = from; l < to; l++) _mm_prefetch((const char *)p + 64 * l, _MM_HINT_T1);
}
R16_INLINE int r16_chunk(int64_t tokens, int64_t t0) {
  const int64_t left = tokens - t0;
  if (left >= 12 || left <= R16_TOK) return left >= R16_TOK ? R16_TOK : (int)left;
  return (int)(left + 1) / 2;  // 9-11 left: two chunks
}
#define R16_ENTRY(NAME, CALL, DECODE, PRE_MIN, AUX, AUXW, AUX_MIN)                                     \
  R16_TARGET static void NAME(int64_t n, const uint8_t *packed, size_t gbytes, const char *x, size_t xs, \
                              int64_t tokens, float *y, int64_t ldy, int64_t rows) {                   \
    const int64_t nb = n / QK_K;                                                                       \
    uint8_t *codes = tokens >= (PRE_MIN) ? dq_scratch_reserve(&r16_codes, (size_t)nb * R16_CODES) : NULL; \
    const int32_t *aux = tokens >= (AUX_MIN) ? AUX(nb, x, xs, tokens) : NULL;                          \
    for (int64_t r0 = 0; r0 < rows; r0 += R16_ROWS) {                                                  \
      const uint8_t *grp = packed + (size_t)(r0 / R16_ROWS) * gbytes;                                  \
      const __mmask16 keep = rows - r0 >= R16_ROWS ? (__mmask16)0xFFFF : (__mmask16)((1u << (rows - r0)) - 1); \
      if (codes) DECODE;                                                                               \
      for (int64_t t0 = 0; t0 < tokens;) {                                                             \
        const int T = r16_chunk(tokens, t0);                                                           \
        const char *xt = x + (size_t)t0 * xs;                                                          \
        const int32_t *axt = aux ? aux + (size_t)t0 * (size_t)nb * (AUXW) : NULL;                      \
        (void)axt;                                                                                     \
        float *yt = y + t0 * ldy + r0;                                                                 \
        t0 += T;                                                                                       \
        if (codes && r0 + R16_ROWS < rows) /* the next group to L2, a share after each chunk */      \
          r16_prefetch_share(grp + gbytes, gbytes, t0 - T, t0, tokens);                                \
        if (codes && T == R16_TOK) {                                                                   \
          CALL##_PRE(R16_TOK);                                                                         \
        } else {                                                                                       \
          R16_CASES(CALL)                                                                              \
        }                                                                                              \
      }                                                                                                \
    }                                                                                                  \
  }
#define Q4_K_CALL(TT) k4_r16(TT, false, false, NULL, axt, nb, grp, xt, xs, yt, ldy, keep)
#define Q4_K_CALL_PRE(TT) k4_r16(TT, false, true, codes, axt, nb, grp, xt, xs, yt, ldy, keep)
#define Q5_K_CALL(TT) k4_r16(TT, true, false, NULL, axt, nb, grp, xt, xs, yt, ldy, keep)
#define Q5_K_CALL_PRE(TT) k4_r16(TT, true, true, codes, axt, nb, grp, xt, xs, yt, ldy, keep)
#define Q6_K_CALL(TT) q6_K_r16(TT, false, NULL, axt, nb, grp, xt, xs, yt, ldy, keep)
#define Q6_K_CALL_PRE(TT) q6_K_r16(TT, true, codes, axt, nb, grp, xt, xs, yt, ldy, keep)
R16_ENTRY(q4_K_r16_matmul, Q4_K_CALL, k4_r16_decode(false, nb, grp, codes), R16_PRE_MIN, k4_r16_aux, 4, R16_K4_AUX_MIN)
R16_ENTRY(q5_K_r16_matmul, Q5_K_CALL, k4_r16_decode(true, nb, grp, codes), R16_PRE_MIN, k4_r16_aux, 4, R16_K4_AUX_MIN)
R16_ENTRY(q6_K_r16_matmul, Q6_K_CALL, q6_K_r16_decode(nb, grp, codes), R16_Q6_PRE_MIN, q6_K_r16_aux, 16, 4)

bool dq_r16_supported(uint32_t type) {
  if (!(type == DQ_TYPE_Q4_K || type == DQ_TYPE_Q5_K || type == DQ_TYPE_Q6_K)) return false;
  return dq_cpu_has_avx512_int8() && dq_cpu_has_avx512vnni();
}

size_t dq_r16_group_bytes(uint32_t type, int64_t n) {
  return dq_r16_supported(type) ? r16_group_bytes_any(type, n) : 0;
}

void dq_r16_pack_group(uint32_t type, int64_t n, const void *w, size_t row_stride, int64_t rows, void *out) {
  if (dq_r16_group_bytes(type, n) == 0 || rows <= 0) return;
  r16_pack_group_any(type, n, w, row_stride, rows > R16_ROWS ? R16_ROWS : rows, out);
}

void dq_r16_matmul(uint32_t type, int64_t n, const void *packed, const void *x, size_t x_stride, int64_t tokens,
                   float *y, int64_t ldy, int64_t rows) {
  const size_t gb = dq_r16_group_bytes(type, n);
  if (gb == 0 || tokens <= 0 || rows <= 0) return;
  switch (type) {
    case DQ_TYPE_Q4_K: q4_K_r16_matmul(n, packed, gb, x, x_stride, tokens, y, ldy, rows); break;
    case DQ_TYPE_Q5_K: q5_K_r16_matmul(n, packed, gb, x, x_stride, tokens, y, ldy, rows); break;
    case DQ_TYPE_Q6_K: q6_K_r16_matmul(n, packed, gb, x, x_stride, tokens, y, ldy, rows); break;
    default: break;
  }
}

#else

// No AVX-512 VNNI kernels in this build: no r16 layout.
bool dq_r16_supported(uint32_t type) { (void)type; return false; }
size_t dq_r16_group_bytes(uint32_t type, int64_t n) { (void)type; (void)n; return 0; }
void dq_r16_pack_group(uint32_t type, int64_t n, const void *w, size_t row_stride, int64_t rows, void *out) {
  (void)type; (void)n; (void)w; (void)row_stride; (void)rows; (void)out;
  (void)r16_pack_group_any;
}
void dq_r16_matmul(uint32_t type, int64_t n, const void *packed, const void *x, size_t x_stride, int64_t tokens,
                   float *y, int64_t ldy, int64_t rows) {
  (void)type; (void)n; (void)packed; (void)x; (void)x_stride; (void)tokens; (void)y; (void)ldy; (void)rows;
}

#endif
