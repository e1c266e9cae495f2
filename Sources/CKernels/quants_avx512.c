// AVX-512 (F/BW/VL/VNNI) matvec kernels for single-token decode: several weight rows against one
// quantized activation row per pass, so the activation loads, its per-block constants and the
// scale shuffles are shared by the rows. Two 32-element blocks (or one 64-element slice of a
// super-block) fill one 512-bit vector; integer dots use VNNI dpbusd (u8 x s8) or
// maddubs + dpwssd (when the products need a 16-bit scale per sub-block).
//
// Each row's arithmetic does not depend on how many rows share a pass (the one-row kernel is
// the same code with R = 1), so a matvec gives the bits of dq_vec_dot per row. Within a block
// the integer sum is exact, as in the references (quants_ref.c, quants_k_ref.c); only the fp32
// accumulation order differs. dispatch.c calls these only when the CPU reports the features.
#pragma STDC FP_CONTRACT OFF
#include "quants.h"
#include "scratch.h"

#include "dq_simd.h"
#if DQ_X86_SIMD
#include <immintrin.h>

#include "vnni.h"

#define TARGET512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE512 TARGET512 static inline __attribute__((always_inline))
enum { MAX_ROWS = 4 };

// The batched kernels (one row against several tokens) request the same stretch of a row at
// least PREFETCH_BYTES ahead (rows are contiguous) while they work on this one's: the next row
// for rows that long, else the row that many bytes on (measured on one thread, 1 GiB of 2048- and
// 8192-column Q4_K/Q6_K: one row ahead loses 15 % on 1152-byte rows, four lose 15 % on 4608-byte
// rows). The kernels take that distance in place of the row stride.
#ifndef PREFETCH_BYTES
#define PREFETCH_BYTES 4096
#endif
INLINE512 void prefetch_span(const char *p, size_t bytes) {
  for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
  _mm_prefetch(p + bytes - 1, _MM_HINT_T0);
}

// The k-quant batched kernels (q4_K, q5_K, q6_K) request further ahead, PREFETCH_BYTES_K, and
// into L2 only (prefetcht1): once their arithmetic got cheaper, lines requested into L1 4 KiB
// ahead left them bound by the misses (one thread, 512 MiB from memory, T = 1, medians of
// interleaved runs: Q4_K 2048 / 8192 columns 19.3 / 19.5 -> 22.3 / 24.1 GB/s, Q6_K 19.4 /
// 17.6 -> 21.4 / 22.1; 8-32 KiB ahead all did better than 4, 16 best overall; the same
// distance into L1 did not). Q8_0, whose kernel is as cheap per byte, too: 512 MiB of 2048
// columns from memory, T = 1 25.5-26.6 -> 21.8-23.9 ms, T = 2-4 10-15 % faster, T = 6 level
// within the noise. Q4_0/Q4_1 are bound by their arithmetic there and gained nothing.
#ifndef PREFETCH_BYTES_K
#define PREFETCH_BYTES_K 16384
#endif
// One request per 64 bytes of a contiguous stream of blocks: bytes 63, 127, .. and the last
// one of each block cover every line it touches, its first line being either the previous
// block's last or the line of byte 63 (a block starting on a line boundary); one request fewer
// per block than a request at byte 0 as well.
INLINE512 void prefetch_span_l2(const char *p, size_t bytes) {
  for (size_t o = 63; o < bytes - 1; o += 64) _mm_prefetch(p + o, _MM_HINT_T1);
  _mm_prefetch(p + bytes - 1, _MM_HINT_T1);
}

// Pairs of blocks past the end of an odd-length row: zero scales and codes add exactly 0.
static const block_q4_0 zero_q4_0;
static const block_q4_1 zero_q4_1;
static const block_q8_0 zero_q8_0;
static const block_q8_1 zero_q8_1;

// [h0 x 8, h1 x 8]: two fp16 values, each spread over one 256-bit half.
INLINE512 __m512 halves_pair(dq_half h0, dq_half h1) {
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)h0 | (uint32_t)h1 << 16)));
  return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                               _mm512_castps128_ps512(f));
}

// Two blocks' 32 signed activation codes: block 0 in bytes 0..31, block 1 in 32..63.
INLINE512 __m512i load_pair(const int8_t *q0, const int8_t *q1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)q0)),
                            _mm256_loadu_si256((const __m256i *)q1), 1);
}

// Two blocks' 4-bit codes in element order (low nibbles = elements 0..15, high = 16..31).
INLINE512 __m512i nibbles_pair(const uint8_t *qs0, const uint8_t *qs1) {
  const __m256i b = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qs0)), _mm_loadu_si128((const __m128i *)qs1), 1);
  const __m512i z = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), _mm512_castsi256_si512(b));
  const __m512i shift = _mm512_set_epi64(0x0004000400040004LL, 0x0004000400040004LL, 0, 0,
                                         0x0004000400040004LL, 0x0004000400040004LL, 0, 0);
  return _mm512_and_si512(_mm512_srlv_epi16(z, shift), _mm512_set1_epi8(0x0F));
}

// The same stretch of the next group of rows (the R rows after these, contiguous in memory) is
// requested while this group computes: a row is 1-5 KB, too short a stream for the hardware
// prefetchers to ramp up, so without it each row's cache misses are paid in series with its
// arithmetic. A hint only: it changes no result, and past the matrix's end it cannot fault.
INLINE512 void prefetch_ahead(const void *p, size_t ahead, size_t bytes) {
  const char *q = (const char *)p + ahead;
  for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(q + o, _MM_HINT_T0);
}

// ---- q4_0 x q8_0: sum d dx sum (q - 8) y ---------------------------------------------------
INLINE512 void q4_0_rows(int R, int64_t n, const char *w, size_t stride, const void *x, float *y) {
  const block_q8_0 *b = x;
  const int64_t nb = n / QK8_0;
  __m512 acc[MAX_ROWS];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; i += 2) {
    const block_q8_0 *b1 = i + 1 < nb ? &b[i + 1] : &zero_q8_0;
    const __m512i xv = load_pair(b[i].qs, b1->qs);
    // -8 sum y per group of four, so dpbusd's lanes sum to sum (q - 8) y per block
    const __m512i bias = _mm512_sub_epi32(_mm512_setzero_si512(),
                                          _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), xv));
    const __m512 dx = halves_pair(b[i].d, b1->d);
    for (int r = 0; r < R; r++) {
      const block_q4_0 *a = (const block_q4_0 *)(w + (size_t)r * stride);
      prefetch_ahead(&a[i], (size_t)R * stride, 2 * sizeof(block_q4_0));
      const block_q4_0 *a1 = i + 1 < nb ? &a[i + 1] : &zero_q4_0;
      const __m512i p = _mm512_dpbusd_epi32(bias, nibbles_pair(a[i].qs, a1->qs), xv);
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(halves_pair(a[i].d, a1->d), dx), _mm512_cvtepi32_ps(p), acc[r]);
    }
  }
  for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(acc[r]);
}

// ---- q4_1 x q8_1: sum d dx (q.y) + m s -----------------------------------------------------
INLINE512 void q4_1_rows(int R, int64_t n, const char *w, size_t stride, const void *x, float *y) {
  const block_q8_1 *b = x;
  const int64_t nb = n / QK8_1;
  __m512 acc[MAX_ROWS];
  __m128 accm[MAX_ROWS];  // lanes 1 and 3: m s
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps(), accm[r] = _mm_setzero_ps();
  const __m512i lanes = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
  for (int64_t i = 0; i < nb; i += 2) {
    const block_q8_1 *b1 = i + 1 < nb ? &b[i + 1] : &zero_q8_1;
    const __m512i xv = load_pair(b[i].qs, b1->qs);
    uint32_t x0, x1;
    memcpy(&x0, &b[i].d, 4);
    memcpy(&x1, &b1->d, 4);
    const __m128 fx = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)x0 | (uint64_t)x1 << 32)));
    for (int r = 0; r < R; r++) {
      const block_q4_1 *a = (const block_q4_1 *)(w + (size_t)r * stride);
      prefetch_ahead(&a[i], (size_t)R * stride, 2 * sizeof(block_q4_1));
      const block_q4_1 *a1 = i + 1 < nb ? &a[i + 1] : &zero_q4_1;
      uint32_t w0, w1;
      memcpy(&w0, &a[i].d, 4);
      memcpy(&w1, &a1->d, 4);
      // d0 dx0, m0 s0, d1 dx1, m1 s1
      const __m128 sc = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)w0 | (uint64_t)w1 << 32))), fx);
      const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles_pair(a[i].qs, a1->qs), xv);
      acc[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(lanes, _mm512_castps128_ps512(sc)), _mm512_cvtepi32_ps(p), acc[r]);
      accm[r] = _mm_add_ps(accm[r], sc);
    }
  }
  for (int r = 0; r < R; r++) {
    const __m128 m = _mm_add_ps(accm[r], _mm_movehl_ps(accm[r], accm[r]));
    y[r] = _mm512_reduce_add_ps(acc[r]) + _mm_cvtss_f32(_mm_shuffle_ps(m, m, 1));
  }
}

// ---- q5_0 x q8_0 and q5_1 x q8_1: the fifth bits of two blocks are one 64-bit byte mask -----
INLINE512 __m512i fifth_bits_pair(const uint8_t *qh0, const uint8_t *qh1) {
  const __mmask64 m = (__mmask64)dq_load_u32le(qh0) | (__mmask64)dq_load_u32le(qh1) << 32;
  return _mm512_maskz_mov_epi8(m, _mm512_set1_epi8(0x10));
}

static const block_q5_0 zero_q5_0;
static const block_q5_1 zero_q5_1;

// sum d dx sum (q - 16) y, the -16 sum y folded into dpbusd's accumulator as for q4_0
INLINE512 void q5_0_rows(int R, int64_t n, const char *w, size_t stride, const void *x, float *y) {
  const block_q8_0 *b = x;
  const int64_t nb = n / QK8_0;
  __m512 acc[MAX_ROWS];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; i += 2) {
    const block_q8_0 *b1 = i + 1 < nb ? &b[i + 1] : &zero_q8_0;
    const __m512i xv = load_pair(b[i].qs, b1->qs);
    const __m512i bias = _mm512_sub_epi32(_mm512_setzero_si512(),
                                          _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(16), xv));
    const __m512 dx = halves_pair(b[i].d, b1->d);
    for (int r = 0; r < R; r++) {
      const block_q5_0 *a = (const block_q5_0 *)(w + (size_t)r * stride);
      prefetch_ahead(&a[i], (size_t)R * stride, 2 * sizeof(block_q5_0));
      const block_q5_0 *a1 = i + 1 < nb ? &a[i + 1] : &zero_q5_0;
      const __m512i q = _mm512_or_si512(nibbles_pair(a[i].qs, a1->qs), fifth_bits_pair(a[i].qh, a1->qh));
      const __m512i p = _mm512_dpbusd_epi32(bias, q, xv);
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(halves_pair(a[i].d, a1->d), dx), _mm512_cvtepi32_ps(p), acc[r]);
    }
  }
  for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(acc[r]);
}

// sum d dx (q.y) + m s, as q4_1 with the fifth bit
INLINE512 void q5_1_rows(int R, int64_t n, const char *w, size_t stride, const void *x, float *y) {
  const block_q8_1 *b = x;
  const int64_t nb = n / QK8_1;
  __m512 acc[MAX_ROWS];
  __m128 accm[MAX_ROWS];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps(), accm[r] = _mm_setzero_ps();
  const __m512i lanes = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
  for (int64_t i = 0; i < nb; i += 2) {
    const block_q8_1 *b1 = i + 1 < nb ? &b[i + 1] : &zero_q8_1;
    const __m512i xv = load_pair(b[i].qs, b1->qs);
    uint32_t x0, x1;
    memcpy(&x0, &b[i].d, 4);
    memcpy(&x1, &b1->d, 4);
    const __m128 fx = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)x0 | (uint64_t)x1 << 32)));
    for (int r = 0; r < R; r++) {
      const block_q5_1 *a = (const block_q5_1 *)(w + (size_t)r * stride);
      prefetch_ahead(&a[i], (size_t)R * stride, 2 * sizeof(block_q5_1));
      const block_q5_1 *a1 = i + 1 < nb ? &a[i + 1] : &zero_q5_1;
      uint32_t w0, w1;
      memcpy(&w0, &a[i].d, 4);
      memcpy(&w1, &a1->d, 4);
      const __m128 sc = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)w0 | (uint64_t)w1 << 32))), fx);
      const __m512i q = _mm512_or_si512(nibbles_pair(a[i].qs, a1->qs), fifth_bits_pair(a[i].qh, a1->qh));
      const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, xv);
      acc[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(lanes, _mm512_castps128_ps512(sc)), _mm512_cvtepi32_ps(p), acc[r]);
      accm[r] = _mm_add_ps(accm[r], sc);
    }
  }
  for (int r = 0; r < R; r++) {
    const __m128 m = _mm_add_ps(accm[r], _mm_movehl_ps(accm[r], accm[r]));
    y[r] = _mm512_reduce_add_ps(acc[r]) + _mm_cvtss_f32(_mm_shuffle_ps(m, m, 1));
  }
}

// ---- q8_0 x q8_0: codes + 128 as unsigned, minus 128 sum y ----------------------------------
INLINE512 void q8_0_rows(int R, int64_t n, const char *w, size_t stride, const void *x, float *y) {
  const block_q8_0 *b = x;
  const int64_t nb = n / QK8_0;
  __m512 acc[MAX_ROWS];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  for (int64_t i = 0; i < nb; i += 2) {
    const block_q8_0 *b1 = i + 1 < nb ? &b[i + 1] : &zero_q8_0;
    const __m512i xv = load_pair(b[i].qs, b1->qs);
    const __m512i bias = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, xv));
    const __m512 dx = halves_pair(b[i].d, b1->d);
    for (int r = 0; r < R; r++) {
      const block_q8_0 *a = (const block_q8_0 *)(w + (size_t)r * stride);
      prefetch_ahead(&a[i], (size_t)R * stride, 2 * sizeof(block_q8_0));
      const block_q8_0 *a1 = i + 1 < nb ? &a[i + 1] : &zero_q8_0;
      const __m512i q = _mm512_xor_si512(load_pair(a[i].qs, a1->qs), flip);  // w + 128, any w
      const __m512i p = _mm512_dpbusd_epi32(bias, q, xv);
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(halves_pair(a[i].d, a1->d), dx), _mm512_cvtepi32_ps(p), acc[r]);
    }
  }
  for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(acc[r]);
}

// ---- k-quants -------------------------------------------------------------------------------

// The 6-bit scales (low 8 bytes of *sc) and mins (*mn) of a q4_K/q5_K super-block, the
// bit layout of dq_get_scale_min_k4 done on 32-bit words: bytes 0..3 of each come straight
// from words 0 and 1, bytes 4..7 from the low/high nibbles of word 2 and the top two bits.
static inline void k4_scales_mins(const uint8_t *q, uint64_t *sc, uint64_t *mn) {
  const uint32_t u0 = dq_load_u32le(q), u1 = dq_load_u32le(q + 4), u2 = dq_load_u32le(q + 8);
  const uint32_t s_hi = (u2 & 0x0F0F0F0Fu) | (((u0 >> 6) & 0x03030303u) << 4);
  const uint32_t m_hi = ((u2 >> 4) & 0x0F0F0F0Fu) | (((u1 >> 6) & 0x03030303u) << 4);
  *sc = (uint64_t)(u0 & 0x3F3F3F3Fu) | (uint64_t)s_hi << 32;
  *mn = (uint64_t)(u1 & 0x3F3F3F3Fu) | (uint64_t)m_hi << 32;
}

// The four scale vectors of a q4_K/q5_K super-block from its 8 scale bytes: s[k] has the int16
// scale of sub-block jlo(k) in 128-bit lanes 0-1 and jhi(k) in lanes 2-3, (jlo, jhi) = (0, 2),
// (1, 3), (4, 6), (5, 7). The bytes broadcast to every qword (vpbroadcastq from the integer
// register), then one in-lane vpshufb per vector
// (zero-extending: every odd control byte has its high bit set), where a cross-lane vpermw each
// was slower and needed the bytes widened first.
INLINE512 void k4_spread(uint64_t sc8, __m512i s[4]) {
  const __m512i u4 = _mm512_set1_epi64((long long)sc8);
  static const int j[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
  for (int k = 0; k < 4; k++)
    s[k] = _mm512_shuffle_epi8(u4, _mm512_inserti64x4(_mm512_set1_epi16((short)(0x8000 | j[k][0])),
                                                      _mm256_set1_epi16((short)(0x8000 | j[k][1])), 1));
}

// d, dmin of a q4_K/q5_K super-block (its first 4 bytes) as fp32 lanes 0 and 1: one conversion.
INLINE512 __m128 k4_d_dmin(const char *blk) {
  return _mm_cvtph_ps(_mm_cvtsi32_si128((int)dq_load_u32le((const uint8_t *)blk)));
}

// y codes of two 32-element stretches of a q8_K super-block: [q[o0..o0+31] | q[o1..o1+31]].
INLINE512 __m512i y_pair(const int8_t *q, int o0, int o1) { return load_pair(q + o0, q + o1); }

// Codes of the 64-byte load k of a q4_K/q5_K super-block's qs: *lo sub-blocks 4k, 4k+2 (low
// nibbles), *hi 4k+1, 4k+3 (high). With hb, the fifth bit of sub-block j is bit j of qh[l] (qh
// broadcast to both halves in qh2), shifted into bit 4 (16-bit shifts: clang shares them
// between k = 0 and 1; byte mask tests and masked adds measured slower on Zen 4).
INLINE512 void k4_codes(bool hb, const uint8_t *qs, __m512i qh2, int k, __m512i *lo, __m512i *hi) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i q = _mm512_loadu_si512((const void *)(qs + 64 * k));
  *lo = _mm512_and_si512(q, m4), *hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
  if (hb) {
    const int j = 4 * k;
    const __m512i cnt_lo = _mm512_inserti64x4(_mm512_set1_epi16((short)j), _mm256_set1_epi16((short)(j + 2)), 1);
    const __m512i cnt_hi = _mm512_inserti64x4(_mm512_set1_epi16((short)(j + 1)), _mm256_set1_epi16((short)(j + 3)), 1);
    const __m512i one = _mm512_set1_epi8(1);
    *lo = _mm512_or_si512(*lo, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh2, cnt_lo), one), 4));
    *hi = _mm512_or_si512(*hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh2, cnt_hi), one), 4));
  }
}

// q4_K / q5_K (hb = true reads the fifth bit from qh): sum over sub-blocks j of
// d dy sc_j (q.y)_j - dmin dy m_j (sum y)_j. A 64-byte load of qs holds sub-blocks 4k, 4k+2
// (low nibbles) and 4k+1, 4k+3 (high nibbles).
INLINE512 void k4_rows(int R, bool hb, int64_t n, const char *w, size_t stride, const void *x, float *y) {
  const block_q8_K *b = x;
  const int64_t nb = n / QK_K;
  const size_t bs = hb ? sizeof(block_q5_K) : sizeof(block_q4_K);
  __m512 acc[MAX_ROWS];
  __m256 accm[MAX_ROWS];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps(), accm[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const int8_t *yq = b[i].qs;
    __m512i yv[4];
    for (int k = 0; k < 2; k++) {
      yv[2 * k] = y_pair(yq, 128 * k, 128 * k + 64);
      yv[2 * k + 1] = y_pair(yq, 128 * k + 32, 128 * k + 96);
    }
    const __m256i bsums = _mm256_loadu_si256((const __m256i *)b[i].bsums);
    const __m128 dy = _mm_set1_ps(b[i].d);
    for (int r = 0; r < R; r++) {
      const char *blk = w + (size_t)r * stride + (size_t)i * bs;
      prefetch_ahead(blk, (size_t)R * stride, bs);
      const uint8_t *scales, *qs, *qh = NULL;
      if (hb) {
        const block_q5_K *a = (const block_q5_K *)blk;
        scales = a->scales, qs = a->qs, qh = a->qh;
      } else {
        const block_q4_K *a = (const block_q4_K *)blk;
        scales = a->scales, qs = a->qs;
      }
      uint64_t sc8, mn8;
      k4_scales_mins(scales, &sc8, &mn8);
      __m512i s[4];
      k4_spread(sc8, s);
      const __m128i mn = _mm_cvtsi64_si128((long long)mn8);
      // m_j (bsum_2j + bsum_2j+1): each min twice against the 16 sums of 16
      const __m256i mins = _mm256_madd_epi16(bsums, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn, mn)));
      __m512i qh2 = _mm512_setzero_si512();
      if (hb) qh2 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
      __m512i sumi = _mm512_setzero_si512();
      for (int k = 0; k < 2; k++) {
        __m512i lo, hi;
        k4_codes(hb, qs, qh2, k, &lo, &hi);
        sumi = dq_dpwssd_kept(sumi, _mm512_maddubs_epi16(lo, yv[2 * k]), s[2 * k]);
        sumi = dq_dpwssd_kept(sumi, _mm512_maddubs_epi16(hi, yv[2 * k + 1]), s[2 * k + 1]);
      }
      // dy d and dy dmin: the fp32 products of k4_tok (lanes 0 and 1)
      const __m128 dd = _mm_mul_ps(k4_d_dmin(blk), dy);
      acc[r] = _mm512_fmadd_ps(_mm512_broadcastss_ps(dd), _mm512_cvtepi32_ps(sumi), acc[r]);
      accm[r] = _mm256_fmadd_ps(_mm256_permutexvar_ps(_mm256_set1_epi32(1), _mm256_castps128_ps256(dd)),
                                _mm256_cvtepi32_ps(mins), accm[r]);
    }
  }
  for (int r = 0; r < R; r++) {
    const __m256 m = accm[r];
    const __m128 m2 = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    const __m128 m3 = _mm_add_ps(m2, _mm_movehl_ps(m2, m2));
    y[r] = _mm512_reduce_add_ps(acc[r]) - _mm_cvtss_f32(_mm_add_ss(m3, _mm_movehdup_ps(m3)));
  }
}

// One 128-element half h of a q6_K super-block, shared by the one-token and batched kernels so
// both keep the same arithmetic: the codes of elements 0..63 (*lo, sub-blocks 8h+0..3) and
// 64..127 (*hi, 8h+4..7) as bytes, and their 16-bit scales spread to the maddubs pairs.
INLINE512 void q6_K_half(const block_q6_K *a, int h, __m256i sc16, __m512i *lo, __m512i *hi, __m512i *s_lo,
                         __m512i *s_hi) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(0x03);
  const __m512i cnt_lo = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  const __m512i cnt_hi = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
  const __m512i l = _mm512_loadu_si512((const void *)(a->ql + 64 * h));
  const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a->qh + 32 * h)));
  *lo = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, cnt_lo), m3), 4));
  *hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                        _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, cnt_hi), m3), 4));
  const int s = 8 * h;
  const long long u = 0x0001000100010001LL;
  const __m512i idx_lo = _mm512_set_epi64(u * (s + 3), u * (s + 3), u * (s + 2), u * (s + 2), u * (s + 1), u * (s + 1),
                                          u * s, u * s);
  const __m512i idx_hi = _mm512_add_epi16(idx_lo, _mm512_set1_epi16(4));
  const __m512i sc_all = _mm512_castsi256_si512(sc16);
  *s_lo = _mm512_permutexvar_epi16(idx_lo, sc_all);
  *s_hi = _mm512_permutexvar_epi16(idx_hi, sc_all);
}

// The start of a q6_K super-block's integer sum: -32 sum_k sc_k bsum_k in int32 lanes 0..7 (the
// codes' offset of 32, upper lanes zero), so the dpwssd chain needs no subtraction after it.
// sc16 are the 16 scales as int16 (-32 sc fits: |sc| <= 128); an integer sum, the bits of any order.
INLINE512 __m512i q6_K_offset(__m256i bsums, __m256i sc16) {
  return _mm512_zextsi256_si512(_mm256_madd_epi16(bsums, _mm256_mullo_epi16(sc16, _mm256_set1_epi16(-32))));
}

// q6_K: codes q in 0..63, value (q - 32) sc d. A 64-byte load of ql (per 128-element half)
// gives elements 0..63 in its low nibbles and 64..127 in its high nibbles; qh's 2-bit fields
// 0, 1 (bits 0-1, 2-3) top up elements 0..31 / 32..63, fields 2, 3 elements 64..95 / 96..127.
INLINE512 void q6_K_rows(int R, int64_t n, const char *w, size_t stride, const void *x, float *y) {
  const block_q8_K *b = x;
  const int64_t nb = n / QK_K;
  __m512 acc[MAX_ROWS];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const int8_t *yq = b[i].qs;
    const __m256i bsums = _mm256_loadu_si256((const __m256i *)b[i].bsums);
    __m512i yv[4];
    for (int k = 0; k < 4; k++) yv[k] = _mm512_loadu_si512((const void *)(yq + 64 * k));
    for (int r = 0; r < R; r++) {
      const block_q6_K *a = (const block_q6_K *)(w + (size_t)r * stride) + i;
      prefetch_ahead(a, (size_t)R * stride, sizeof(block_q6_K));
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a->scales));
      __m512i sumi = q6_K_offset(bsums, sc16);
      for (int h = 0; h < 2; h++) {
        __m512i lo, hi, s_lo, s_hi;
        q6_K_half(a, h, sc16, &lo, &hi, &s_lo, &s_hi);
        sumi = dq_dpwssd_kept(sumi, _mm512_maddubs_epi16(lo, yv[2 * h]), s_lo);
        sumi = dq_dpwssd_kept(sumi, _mm512_maddubs_epi16(hi, yv[2 * h + 1]), s_hi);
      }
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(b[i].d * _cvtsh_ss(a->d)), _mm512_cvtepi32_ps(sumi), acc[r]);
    }
  }
  for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(acc[r]);
}

// ---- batched decode: one row against up to 8 prepared tokens --------------------------------
// The same (row, token) arithmetic as the kernels above, but each token's per-block operands
// (the activation vector in the pair layout, the -off sum y bias, the scales as fp32) are
// formed once per call into a per-thread scratch and then read from it for every row, so a
// token costs a row only its products: the weights are read once and unpacked once for all.
enum { PREP_TOK = 8 };

static _Thread_local dq_scratch prep;

// q8_0 activations against a signed 32-block type with offset off (q4_0 8, q5_0 16, q8_0 128):
// per token and pair of blocks, 192 bytes: xv, bias, dx (as load_pair, the bias and halves_pair).
INLINE512 void prep_q8_0(int64_t nb, const char *x, size_t xs, int T, char off, uint8_t *out) {
  for (int t = 0; t < T; t++) {
    const block_q8_0 *b = (const block_q8_0 *)(x + (size_t)t * xs);
    for (int64_t i = 0; i < nb; i += 2) {
      const block_q8_0 *b1 = i + 1 < nb ? &b[i + 1] : &zero_q8_0;
      uint8_t *o = out + ((size_t)(i / 2) * T + t) * 192;
      const __m512i xv = load_pair(b[i].qs, b1->qs);
      const __m512i bias = _mm512_sub_epi32(_mm512_setzero_si512(),
                                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(off), xv));
      _mm512_store_si512((void *)o, xv);
      _mm512_store_si512((void *)(o + 64), bias);
      _mm512_store_ps((void *)(o + 128), halves_pair(b[i].d, b1->d));
    }
  }
}

// q8_1 activations: per token and pair, 128 bytes: xv, then fx (4 floats).
INLINE512 void prep_q8_1(int64_t nb, const char *x, size_t xs, int T, uint8_t *out) {
  for (int t = 0; t < T; t++) {
    const block_q8_1 *b = (const block_q8_1 *)(x + (size_t)t * xs);
    for (int64_t i = 0; i < nb; i += 2) {
      const block_q8_1 *b1 = i + 1 < nb ? &b[i + 1] : &zero_q8_1;
      uint8_t *o = out + ((size_t)(i / 2) * T + t) * 128;
      uint32_t x0, x1;
      memcpy(&x0, &b[i].d, 4);
      memcpy(&x1, &b1->d, 4);
      _mm512_store_si512((void *)o, load_pair(b[i].qs, b1->qs));
      _mm_store_ps((void *)(o + 64), _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)x0 | (uint64_t)x1 << 32))));
    }
  }
}

// q8_K activations for q4_K/q5_K: per token and super-block, 320 bytes: the four y_pair vectors
// of k4_rows, then bsums (32 bytes) and d.
INLINE512 void prep_q8_K4(int64_t nb, const char *x, size_t xs, int T, uint8_t *out) {
  for (int t = 0; t < T; t++) {
    const block_q8_K *b = (const block_q8_K *)(x + (size_t)t * xs);
    for (int64_t i = 0; i < nb; i++) {
      uint8_t *o = out + ((size_t)i * T + t) * 320;
      const int8_t *yq = b[i].qs;
      for (int k = 0; k < 2; k++) {
        _mm512_store_si512((void *)(o + 128 * k), y_pair(yq, 128 * k, 128 * k + 64));
        _mm512_store_si512((void *)(o + 128 * k + 64), y_pair(yq, 128 * k + 32, 128 * k + 96));
      }
      _mm256_store_si256((void *)(o + 256), _mm256_loadu_si256((const __m256i *)b[i].bsums));
      memcpy(o + 288, &b[i].d, 4);
    }
  }
}

// One row (w) against T prepared tokens: y[t * ldy].
#define DEFINE_TOK_Q8_0(NAME, BLOCK, ZERO, CODES, PREFETCH)                                         \
  INLINE512 void NAME(int T, int64_t nb, const char *w, size_t stride, const uint8_t *px, float *y, int64_t ldy) { \
    const BLOCK *a = (const BLOCK *)w;                                                              \
    __m512 acc[PREP_TOK];                                                                           \
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();                                       \
    for (int64_t i = 0; i < nb; i += 2) {                                                           \
      const BLOCK *a1 = i + 1 < nb ? &a[i + 1] : &ZERO;                                             \
      PREFETCH((const char *)&a[i] + stride, 2 * sizeof *a);                                        \
      const __m512i q = CODES;                                                                      \
      const __m512 dw = halves_pair(a[i].d, a1->d);                                                 \
      const uint8_t *o = px + (size_t)(i / 2) * T * 192;                                            \
      for (int t = 0; t < T; t++, o += 192) {                                                       \
        const __m512i p = _mm512_dpbusd_epi32(_mm512_load_si512((const void *)(o + 64)), q,         \
                                              _mm512_load_si512((const void *)o));                  \
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_load_ps((const void *)(o + 128))),        \
                                 _mm512_cvtepi32_ps(p), acc[t]);                                    \
      }                                                                                             \
    }                                                                                               \
    for (int t = 0; t < T; t++) y[t * ldy] = _mm512_reduce_add_ps(acc[t]);                          \
  }
DEFINE_TOK_Q8_0(q4_0_tok, block_q4_0, zero_q4_0, nibbles_pair(a[i].qs, a1->qs), prefetch_span)
DEFINE_TOK_Q8_0(q5_0_tok, block_q5_0, zero_q5_0,
                _mm512_or_si512(nibbles_pair(a[i].qs, a1->qs), fifth_bits_pair(a[i].qh, a1->qh)), prefetch_span)
DEFINE_TOK_Q8_0(q8_0_tok, block_q8_0, zero_q8_0,
                _mm512_xor_si512(load_pair(a[i].qs, a1->qs), _mm512_set1_epi8((char)0x80)), prefetch_span_l2)

#define DEFINE_TOK_Q8_1(NAME, BLOCK, ZERO, CODES)                                                   \
  INLINE512 void NAME(int T, int64_t nb, const char *w, size_t stride, const uint8_t *px, float *y, int64_t ldy) { \
    const BLOCK *a = (const BLOCK *)w;                                                              \
    __m512 acc[PREP_TOK];                                                                           \
    __m128 accm[PREP_TOK];                                                                          \
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps(), accm[t] = _mm_setzero_ps();           \
    const __m512i lanes = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);         \
    for (int64_t i = 0; i < nb; i += 2) {                                                           \
      const BLOCK *a1 = i + 1 < nb ? &a[i + 1] : &ZERO;                                             \
      prefetch_span((const char *)&a[i] + stride, 2 * sizeof *a);                                  \
      uint32_t w0, w1;                                                                              \
      memcpy(&w0, &a[i].d, 4);                                                                      \
      memcpy(&w1, &a1->d, 4);                                                                       \
      const __m128 fw = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)w0 | (uint64_t)w1 << 32))); \
      const __m512i q = CODES;                                                                      \
      const uint8_t *o = px + (size_t)(i / 2) * T * 128;                                            \
      for (int t = 0; t < T; t++, o += 128) {                                                       \
        const __m128 sc = _mm_mul_ps(fw, _mm_load_ps((const void *)(o + 64)));                      \
        const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_load_si512((const void *)o)); \
        acc[t] = _mm512_fmadd_ps(_mm512_permutexvar_ps(lanes, _mm512_castps128_ps512(sc)), _mm512_cvtepi32_ps(p), acc[t]); \
        accm[t] = _mm_add_ps(accm[t], sc);                                                          \
      }                                                                                             \
    }                                                                                               \
    for (int t = 0; t < T; t++) {                                                                   \
      const __m128 m = _mm_add_ps(accm[t], _mm_movehl_ps(accm[t], accm[t]));                        \
      y[t * ldy] = _mm512_reduce_add_ps(acc[t]) + _mm_cvtss_f32(_mm_shuffle_ps(m, m, 1));           \
    }                                                                                               \
  }
DEFINE_TOK_Q8_1(q4_1_tok, block_q4_1, zero_q4_1, nibbles_pair(a[i].qs, a1->qs))
DEFINE_TOK_Q8_1(q5_1_tok, block_q5_1, zero_q5_1,
                _mm512_or_si512(nibbles_pair(a[i].qs, a1->qs), fifth_bits_pair(a[i].qh, a1->qh)))

// q4_K / q5_K, one row against T prepared tokens.
INLINE512 void k4_tok(int T, bool hb, int64_t nb, const char *w, size_t stride, const uint8_t *px, float *y,
                      int64_t ldy) {
  __m512 acc[PREP_TOK];
  __m256 accm[PREP_TOK];
  for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps(), accm[t] = _mm256_setzero_ps();
  const size_t bs = hb ? sizeof(block_q5_K) : sizeof(block_q4_K);
  for (int64_t i = 0; i < nb; i++) {
    const char *blk = w + (size_t)i * bs;
    prefetch_span_l2(blk + stride, bs);
    const uint8_t *scales, *qs, *qh = NULL;
    if (hb) {
      const block_q5_K *a = (const block_q5_K *)blk;
      scales = a->scales, qs = a->qs, qh = a->qh;
    } else {
      const block_q4_K *a = (const block_q4_K *)blk;
      scales = a->scales, qs = a->qs;
    }
    uint64_t sc8, mn8;
    k4_scales_mins(scales, &sc8, &mn8);
    __m512i s[4];
    k4_spread(sc8, s);
    const __m128i mn = _mm_cvtsi64_si128((long long)mn8);
    const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn, mn));
    __m512i qh2 = _mm512_setzero_si512();
    if (hb) qh2 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
    __m512i lo[2], hi[2];
    for (int k = 0; k < 2; k++) k4_codes(hb, qs, qh2, k, &lo[k], &hi[k]);
    const __m128 dm = k4_d_dmin(blk);
    const uint8_t *o = px + (size_t)i * T * 320;
    for (int t = 0; t < T; t++, o += 320) {
      __m512i sumi = dq_dpwssd_kept(_mm512_setzero_si512(), _mm512_maddubs_epi16(lo[0], _mm512_load_si512((const void *)o)), s[0]);
      sumi = dq_dpwssd_kept(sumi, _mm512_maddubs_epi16(hi[0], _mm512_load_si512((const void *)(o + 64))), s[1]);
      sumi = dq_dpwssd_kept(sumi, _mm512_maddubs_epi16(lo[1], _mm512_load_si512((const void *)(o + 128))), s[2]);
      sumi = dq_dpwssd_kept(sumi, _mm512_maddubs_epi16(hi[1], _mm512_load_si512((const void *)(o + 192))), s[3]);
      const __m256i mins = _mm256_madd_epi16(_mm256_load_si256((const void *)(o + 256)), mn16);
      float dy;
      memcpy(&dy, o + 288, 4);
      const __m128 dd = _mm_mul_ps(dm, _mm_set1_ps(dy));  // dy d, dy dmin
      acc[t] = _mm512_fmadd_ps(_mm512_broadcastss_ps(dd), _mm512_cvtepi32_ps(sumi), acc[t]);
      accm[t] = _mm256_fmadd_ps(_mm256_permutexvar_ps(_mm256_set1_epi32(1), _mm256_castps128_ps256(dd)),
                                _mm256_cvtepi32_ps(mins), accm[t]);
    }
  }
  for (int t = 0; t < T; t++) {
    const __m256 m = accm[t];
    const __m128 m2 = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    const __m128 m3 = _mm_add_ps(m2, _mm_movehl_ps(m2, m2));
    y[t * ldy] = _mm512_reduce_add_ps(acc[t]) - _mm_cvtss_f32(_mm_add_ss(m3, _mm_movehdup_ps(m3)));
  }
}

// q6_K, one row against T tokens read straight from their q8_K rows (its y vectors are plain loads);
// each token's sum starts from its offset, as in q6_K_rows.
INLINE512 void q6_K_tok(int T, int64_t nb, const char *w, size_t stride, const char *x, size_t xs, float *y,
                        int64_t ldy) {
  __m512 acc[PREP_TOK];
  for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const block_q6_K *a = (const block_q6_K *)w + i;
    prefetch_span_l2((const char *)a + stride, sizeof *a);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a->scales));
    // the offset's -32 sc once per super-block (q6_K_offset's arithmetic), then one madd per token
    const __m256i sc_m32 = _mm256_mullo_epi16(sc16, _mm256_set1_epi16(-32));
    __m512i lo[2], hi[2], s_lo[2], s_hi[2];
    for (int h = 0; h < 2; h++) q6_K_half(a, h, sc16, &lo[h], &hi[h], &s_lo[h], &s_hi[h]);
    const float fd = _cvtsh_ss(a->d);
    for (int t = 0; t < T; t++) {
      const block_q8_K *b = (const block_q8_K *)(x + (size_t)t * xs) + i;
      __m512i sumi = _mm512_zextsi256_si512(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), sc_m32));
      for (int h = 0; h < 2; h++) {
        sumi = dq_dpwssd_kept(sumi, _mm512_maddubs_epi16(lo[h], _mm512_loadu_si512((const void *)(b->qs + 128 * h))), s_lo[h]);
        sumi = dq_dpwssd_kept(sumi, _mm512_maddubs_epi16(hi[h], _mm512_loadu_si512((const void *)(b->qs + 128 * h + 64))), s_hi[h]);
      }
      acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(b->d * fd), _mm512_cvtepi32_ps(sumi), acc[t]);
    }
  }
  for (int t = 0; t < T; t++) y[t * ldy] = _mm512_reduce_add_ps(acc[t]);
}

// The batched entry points: the tokens in chunks of up to 8 (prepared once per chunk), every
// row against each chunk. False, doing nothing, when the scratch cannot be allocated (only the
// first chunk can need more than the scratch holds: later ones are no larger).
#define DEFINE_TOKENS(name, BLOCK_ELEMS, UNIT_BYTES, PREP_CALL, TOK_CALL, PF_BYTES)                          \
  TARGET512 static bool name##_tokens(int64_t n, const void *w, size_t s, const void *x, size_t xs, \
                                      int64_t tokens, float *y, int64_t ldy, int64_t rows) {     \
    const int64_t nb = n / (BLOCK_ELEMS);                                                        \
    const int64_t units = (BLOCK_ELEMS) == QK_K ? nb : (nb + 1) / 2;                             \
    const size_t pf = s >= (PF_BYTES) ? s : ((PF_BYTES) + s - 1) / s * s;                         \
    for (int64_t t0 = 0; t0 < tokens; t0 += PREP_TOK) {                                          \
      const int T = tokens - t0 < PREP_TOK ? (int)(tokens - t0) : PREP_TOK;                      \
      const char *xt = (const char *)x + (size_t)t0 * xs;                                        \
      uint8_t *px = NULL;                                                                        \
      if ((UNIT_BYTES) > 0) {                                                                    \
        px = dq_scratch_reserve(&prep, (size_t)units * (size_t)T * (UNIT_BYTES));                \
        if (!px) return false;                                                                   \
        PREP_CALL;                                                                               \
      }                                                                                          \
      (void)px;                                                                                  \
      (void)xt;                                                                                  \
      const char *row = w;                                                                       \
      float *yt = y + t0 * ldy;                                                                  \
      for (int64_t r = 0; r < rows; r++, row += s) {                                             \
        switch (T) {                                                                             \
          case 8: TOK_CALL(8); break;                                                            \
          case 7: TOK_CALL(7); break;                                                            \
          case 6: TOK_CALL(6); break;                                                            \
          case 5: TOK_CALL(5); break;                                                            \
          case 4: TOK_CALL(4); break;                                                            \
          case 3: TOK_CALL(3); break;                                                            \
          case 2: TOK_CALL(2); break;                                                            \
          default: TOK_CALL(1); break;                                                           \
        }                                                                                        \
      }                                                                                          \
    }                                                                                            \
    return true;                                                                                 \
  }
#define Q4_0_TOK(T) q4_0_tok(T, nb, row, pf, px, yt + r, ldy)
#define Q5_0_TOK(T) q5_0_tok(T, nb, row, pf, px, yt + r, ldy)
#define Q8_0_TOK(T) q8_0_tok(T, nb, row, pf, px, yt + r, ldy)
#define Q4_1_TOK(T) q4_1_tok(T, nb, row, pf, px, yt + r, ldy)
#define Q5_1_TOK(T) q5_1_tok(T, nb, row, pf, px, yt + r, ldy)
#define Q4_K_TOK(T) k4_tok(T, false, nb, row, pf, px, yt + r, ldy)
#define Q5_K_TOK(T) k4_tok(T, true, nb, row, pf, px, yt + r, ldy)
#define Q6_K_TOK(T) q6_K_tok(T, nb, row, pf, xt, xs, yt + r, ldy)
DEFINE_TOKENS(q4_0, QK8_0, 192, prep_q8_0(nb, xt, xs, T, 8, px), Q4_0_TOK, PREFETCH_BYTES)
DEFINE_TOKENS(q5_0, QK8_0, 192, prep_q8_0(nb, xt, xs, T, 16, px), Q5_0_TOK, PREFETCH_BYTES)
DEFINE_TOKENS(q8_0, QK8_0, 192, prep_q8_0(nb, xt, xs, T, (char)0x80, px), Q8_0_TOK, PREFETCH_BYTES_K)
DEFINE_TOKENS(q4_1, QK8_1, 128, prep_q8_1(nb, xt, xs, T, px), Q4_1_TOK, PREFETCH_BYTES)
DEFINE_TOKENS(q5_1, QK8_1, 128, prep_q8_1(nb, xt, xs, T, px), Q5_1_TOK, PREFETCH_BYTES)
DEFINE_TOKENS(q4_K, QK_K, 320, prep_q8_K4(nb, xt, xs, T, px), Q4_K_TOK, PREFETCH_BYTES_K)
DEFINE_TOKENS(q5_K, QK_K, 320, prep_q8_K4(nb, xt, xs, T, px), Q5_K_TOK, PREFETCH_BYTES_K)
DEFINE_TOKENS(q6_K, QK_K, 0, (void)0, Q6_K_TOK, PREFETCH_BYTES_K)

dq_matmul_tokens_fn dq_avx512_matvec_tokens_kernel(uint32_t type) {
  switch (type) {
    case DQ_TYPE_Q4_0: return q4_0_tokens;
    case DQ_TYPE_Q4_1: return q4_1_tokens;
    case DQ_TYPE_Q8_0: return q8_0_tokens;
    case DQ_TYPE_Q5_0: return q5_0_tokens;
    case DQ_TYPE_Q5_1: return q5_1_tokens;
    case DQ_TYPE_Q4_K: return q4_K_tokens;
    case DQ_TYPE_Q5_K: return q5_K_tokens;
    case DQ_TYPE_Q6_K: return q6_K_tokens;
    default: return NULL;
  }
}

// ---- per-type entry points: rows in fours, then one at a time -------------------------------

#define ROWS_KERNEL(name, call)                                                                   \
  TARGET512 static void name##_r4(int64_t n, const char *w, size_t s, const void *x, float *y) {  \
    call(4, n, w, s, x, y);                                                                       \
  }                                                                                               \
  TARGET512 static void name##_r1(int64_t n, const char *w, size_t s, const void *x, float *y) {  \
    call(1, n, w, s, x, y);                                                                       \
  }                                                                                               \
  static void name##_matvec(int64_t n, const void *w, size_t s, const void *x, float *y, int64_t rows) { \
    const char *row = w;                                                                          \
    int64_t r = 0;                                                                                \
    for (; r + 4 <= rows; r += 4, row += 4 * s) name##_r4(n, row, s, x, y + r);                   \
    for (; r < rows; r++, row += s) name##_r1(n, row, s, x, y + r);                               \
  }                                                                                               \
  static float name##_dot(int64_t n, const void *w, const void *x) {                              \
    float y;                                                                                      \
    name##_r1(n, w, 0, x, &y);                                                                    \
    return y;                                                                                     \
  }

#define K4(R, n, w, s, x, y) k4_rows(R, false, n, w, s, x, y)
#define K5(R, n, w, s, x, y) k4_rows(R, true, n, w, s, x, y)
ROWS_KERNEL(q4_0, q4_0_rows)
ROWS_KERNEL(q4_1, q4_1_rows)
ROWS_KERNEL(q8_0, q8_0_rows)
ROWS_KERNEL(q5_0, q5_0_rows)
ROWS_KERNEL(q5_1, q5_1_rows)
ROWS_KERNEL(q4_K, K4)
ROWS_KERNEL(q5_K, K5)
ROWS_KERNEL(q6_K, q6_K_rows)

dq_dot_fn dq_avx512_dot_kernel(uint32_t type) {
  switch (type) {
    case DQ_TYPE_Q4_0: return q4_0_dot;
    case DQ_TYPE_Q4_1: return q4_1_dot;
    case DQ_TYPE_Q8_0: return q8_0_dot;
    case DQ_TYPE_Q5_0: return q5_0_dot;
    case DQ_TYPE_Q5_1: return q5_1_dot;
    case DQ_TYPE_Q4_K: return q4_K_dot;
    case DQ_TYPE_Q5_K: return q5_K_dot;
    case DQ_TYPE_Q6_K: return q6_K_dot;
    default: return NULL;
  }
}

dq_matvec_fn dq_avx512_matvec_kernel(uint32_t type) {
  switch (type) {
    case DQ_TYPE_Q4_0: return q4_0_matvec;
    case DQ_TYPE_Q4_1: return q4_1_matvec;
    case DQ_TYPE_Q8_0: return q8_0_matvec;
    case DQ_TYPE_Q5_0: return q5_0_matvec;
    case DQ_TYPE_Q5_1: return q5_1_matvec;
    case DQ_TYPE_Q4_K: return q4_K_matvec;
    case DQ_TYPE_Q5_K: return q5_K_matvec;
    case DQ_TYPE_Q6_K: return q6_K_matvec;
    default: return NULL;
  }
}

#else
dq_dot_fn dq_avx512_dot_kernel(uint32_t type) { (void)type; return NULL; }
dq_matvec_fn dq_avx512_matvec_kernel(uint32_t type) { (void)type; return NULL; }
dq_matmul_tokens_fn dq_avx512_matvec_tokens_kernel(uint32_t type) { (void)type; return NULL; }
#endif
