// Run-time dispatch: the public dequantize / dot / matvec entry points pick the AVX2/FMA/F16C
// twin when the CPU has those features (checked once) and fall back to the scalar references
// otherwise, or when a test forces scalar. A matvec looks its kernel up once, not per row.
#include <stdatomic.h>
#include <stdlib.h>

#include "cpu_features.h"
#include "quants.h"
#include "tiles.h"
#include "dq_simd.h"

// Per thread, so a test forcing the references cannot change what concurrent work computes.
static _Thread_local bool force_scalar = false;
// Per thread too: lets a test run the AVX2 tiles on an AVX-512 machine.
static _Thread_local bool force_avx2_tiles = false;

void dq_force_avx2_tiles(bool on) { force_avx2_tiles = on; }
// Per thread, so a test can compare the AVX2 dots with the references on an AVX-512 machine.
static _Thread_local bool force_avx2 = false;

static bool use_simd(void) {
  return !force_scalar && dq_cpu_has_avx2();
}

bool dq_simd_compiled(void) { return DQ_X86_SIMD; }

const char *dq_simd_path(void) { return use_simd() ? "avx2" : "scalar"; }

void dq_force_scalar(bool on) { force_scalar = on; }

void dq_force_avx2_dots(bool on) { force_avx2 = on; }

static bool use_avx512(void) { return use_simd() && !force_avx2 && dq_cpu_has_avx512vnni(); }

const char *dq_dot_path(void) { return use_avx512() ? "avx512" : dq_simd_path(); }

static dq_dot_fn dot_kernel(uint32_t type) {
  dq_dot_fn f = use_avx512() ? dq_avx512_dot_kernel(type) : NULL;
  if (!f && use_simd()) f = dq_avx2_dot_kernel(type);
  return f ? f : dq_ref_dot_kernel(type);
}

static dq_dequant_fn dequant_kernel(uint32_t type) {
  dq_dequant_fn f = use_simd() ? dq_avx2_dequant_kernel(type) : NULL;
  return f ? f : dq_ref_dequant_kernel(type);
}

void dq_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n) {
  dq_dequant_fn f = dequant_kernel(type);
  if (f && n > 0) f(src, dst, n);
}

void dq_dequantize_row_ref(uint32_t type, const void *src, float *dst, int64_t n) {
  dq_dequant_fn f = dq_ref_dequant_kernel(type);
  if (f && n > 0) f(src, dst, n);
}

void dq_quantize_row(uint32_t type, const float *src, void *dst, int64_t n) {
  dq_quant_fn f = use_simd() ? dq_avx2_quant_kernel(type) : NULL;
  if (f) {
    if (n > 0) f(src, dst, n);
  } else {
    dq_quantize_row_ref(type, src, dst, n);
  }
}

uint32_t dq_vec_dot_type(uint32_t type) {
  switch (type & ~(uint32_t)DQ_TYPE_R16) {
    case DQ_TYPE_Q4_0: case DQ_TYPE_Q5_0: case DQ_TYPE_Q8_0: case DQ_TYPE_Q4_0_X16: return DQ_TYPE_Q8_0;
    case DQ_TYPE_Q4_1: case DQ_TYPE_Q5_1: return DQ_TYPE_Q8_1;
    case DQ_TYPE_Q4_K: case DQ_TYPE_Q5_K: case DQ_TYPE_Q6_K: return DQ_TYPE_Q8_K;
    default: return DQ_TYPE_F32;  // F32, F16, BF16 (and anything unsupported)
  }
}

// The Q4_0 shadow (DQ_TYPE_Q4_0_X16): its kernel for every walk, so a token gets the same bits
// however the step is batched (no per-thread switch applies: a model builds the shadow only where
// the CPU runs it). Only when the kernel's scratch cannot be allocated (or in a build without it)
// the rows are unpacked 16 blocks at a time onto the stack for the plain dot.
static void x16_rows(int64_t n, const void *w, size_t row_stride, const void *x, size_t x_stride,
                     int64_t tokens, float *y, int64_t ldy, int64_t rows) {
  dq_matmul_tokens_fn k = dq_q4_0_x16_tokens_kernel();
  if (k && k(n, w, row_stride, x, x_stride, tokens, y, ldy, rows)) return;
  const int64_t nb = n / QK4_0;
  block_q4_0 plain[16];
  for (int64_t t = 0; t < tokens; t++) {
    const block_q8_0 *b = (const block_q8_0 *)((const char *)x + (size_t)t * x_stride);
    for (int64_t r = 0; r < rows; r++) {
      const char *p = (const char *)w + (size_t)r * row_stride;
      float s = 0.0f;
      for (int64_t g = 0; g < nb; g += 16) {
        const int64_t m = nb - g < 16 ? nb - g : 16;
        dq_q4_0_x16_unpack_rows(p, plain, m * QK4_0, 1);
        s += dq_vec_dot(DQ_TYPE_Q4_0, m * QK4_0, plain, b + g);
        p += (size_t)m * sizeof(block_q4_0);
      }
      y[t * ldy + r] = s;
    }
  }
}

bool dq_q4_0_x16_enabled(void) { return use_avx512() && dq_q4_0_x16_available(); }

// A thread that turned the AVX-512 kernels off (dq_force_scalar, dq_force_avx2_dots: tests) on a
// CPU that has them gets the plain Q4_0 path on the shadow's rows, unpacked a few at a time, so
// those switches keep meaning "these kernels" for every product. False (nothing done) when the
// shadow's kernel runs, or where it does not exist at all (x16_rows' own fallback then serves
// every walk alike; a model builds no shadow there).
static bool x16_as_plain(int64_t n, const void *w, size_t row_stride, const void *x, size_t x_stride, int64_t tokens,
                         float *y, int64_t ldy, int64_t row_begin, int64_t row_end) {
  if (!dq_q4_0_x16_available() || dq_q4_0_x16_enabled()) return false;
  enum { ROWS = 4 };
  uint8_t plain[ROWS * row_stride];
  for (int64_t r = row_begin; r < row_end; r += ROWS) {
    const int64_t k = row_end - r < ROWS ? row_end - r : ROWS;
    for (int64_t i = 0; i < k; i++)
      dq_q4_0_x16_unpack_rows((const char *)w + (size_t)(r + i) * row_stride, plain + (size_t)i * row_stride, n, 1);
    if (tokens == 1)
      dq_matvec_rows(DQ_TYPE_Q4_0, n, plain, row_stride, x, y + (r - row_begin), 0, k);
    else
      dq_matmul_rows(DQ_TYPE_Q4_0, n, plain, row_stride, x, x_stride, tokens, y + (r - row_begin), ldy, 0, k);
  }
  return true;
}

float dq_vec_dot(uint32_t type, int64_t n, const void *w, const void *x) {
  if (type == DQ_TYPE_Q4_0_X16) {
    float y = 0.0f;
    if (n > 0) x16_rows(n, w, 0, x, 0, 1, &y, 0, 1);
    return y;
  }
  dq_dot_fn f = dot_kernel(type);
  return (f && n > 0) ? f(n, w, x) : 0.0f;
}

float dq_vec_dot_ref(uint32_t type, int64_t n, const void *w, const void *x) {
  dq_dot_fn f = dq_ref_dot_kernel(type);
  return (f && n > 0) ? f(n, w, x) : 0.0f;
}

// A row is 1-5 KB, too short a stream for the hardware prefetchers to ramp up, so the AVX2
// two-row kernels get the next pair requested while they compute (the AVX-512 matvec kernels do
// the same inside their passes): AVX2 Q4_1 on 2048-wide rows went from 1.1-1.7 to 11-15 GB/s
// (scripts/matvec_bench.c); the one-row AVX2 kernels, compute-bound, lost 2-4 % with it and
// have none. A hint: no result changes, and it cannot fault.
static inline void prefetch_rows(const char *p, size_t bytes) {
  for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 3);
}

static atomic_bool stream_from_memory;
void dq_set_weights_stream_from_memory(bool on) {
  atomic_store_explicit(&stream_from_memory, on, memory_order_relaxed);
}
static inline bool weights_stream_from_memory(void) {
  return atomic_load_explicit(&stream_from_memory, memory_order_relaxed);
}

// Rows [row_begin, row_end) of a repacked matrix (type | DQ_TYPE_R16, w its first group).
// Every caller slices rows in multiples of 16 (pool.c), so a range starts on a group; one that
// did not would read another row's lanes, so it stops the process rather than answer wrong.
static void r16_rows(uint32_t type, int64_t n, const void *w, const void *x, size_t x_stride, int64_t tokens,
                     float *y, int64_t ldy, int64_t row_begin, int64_t row_end) {
  const uint32_t base = type & ~(uint32_t)DQ_TYPE_R16;
  if (row_begin % 16 != 0) abort();
  dq_r16_matmul(base, n, (const char *)w + (size_t)(row_begin / 16) * dq_r16_group_bytes(base, n), x, x_stride,
                tokens, y, ldy, row_end - row_begin);
}

void dq_matvec_rows(uint32_t type, int64_t n, const void *w, size_t row_stride, const void *x,
                    float *y, int64_t row_begin, int64_t row_end) {
  if (type & DQ_TYPE_R16) {
    if (row_begin < row_end) r16_rows(type, n, w, x, 0, 1, y, 0, row_begin, row_end);
    return;
  }
  if (type == DQ_TYPE_Q4_0_X16) {
    if (n > 0 && !x16_as_plain(n, w, row_stride, x, 0, 1, y, 0, row_begin, row_end))
      x16_rows(n, (const char *)w + (size_t)row_begin * row_stride, row_stride, x, 0, 1, y, 0, row_end - row_begin);
    return;
  }
  dq_dot_fn f = dot_kernel(type);
  if (!f || n <= 0) {
    for (int64_t r = row_begin; r < row_end; r++) y[r - row_begin] = 0.0f;
    return;
  }
  const char *row = (const char *)w + (size_t)row_begin * row_stride;
  // Weights streaming from memory: one row at a time, the rows at least 4 KiB ahead prefetched
  // (16 KiB into L2 for the k-quants; the batched decode kernels with one token; the same bits
  // as the four-row matvec, which shares the activation's loads and wins only from cache; see
  // ckernels.h).
  dq_matmul_tokens_fn mt = use_avx512() && weights_stream_from_memory() ? dq_avx512_matvec_tokens_kernel(type) : NULL;
  if (mt && mt(n, row, row_stride, x, 0, 1, y, 0, row_end - row_begin)) return;
  dq_matvec_fn mv = use_avx512() ? dq_avx512_matvec_kernel(type) : NULL;
  if (mv) {
    mv(n, row, row_stride, x, y, row_end - row_begin);
    return;
  }
  int64_t r = row_begin;
  dq_dot2_fn f2 = use_simd() ? dq_avx2_dot2_kernel(type) : NULL;
  if (f2) {
    for (; r + 2 <= row_end; r += 2, row += 2 * row_stride) {
      prefetch_rows(row + 2 * row_stride, 2 * row_stride);
      f2(n, row, row + row_stride, x, y + (r - row_begin));
    }
  }
  for (; r < row_end; r++, row += row_stride) y[r - row_begin] = f(n, row, x);
}

// The widest tile the CPU runs for `type`: AVX-512 (k-quants), else AVX2; with VNNI where one
// dpbusd/dpwssd replaces maddubs + madd or madd + add. NULL: per-token dots.
static dq_tile4_fn tile4_kernel(uint32_t type) {
  dq_tile4_fn f = NULL;
  if (!force_avx2_tiles && dq_cpu_has_avx512_int8())
    f = dq_avx512_tile4_kernel(type, dq_cpu_has_avx512vnni());
  const bool vnni = dq_cpu_has_avxvnni();
  if (!f) f = dq_avx2_tile4_kernel(type, vnni);
  if (!f) f = dq_avx2_tile4_more(type, vnni);
  return f;
}

// Several rows x several tokens (a multiple of 4) where the type has such a tile, else NULL.
static dq_tile_rows_fn tile_rows_kernel(uint32_t type, int *rows, int *tokens) {
  dq_tile_rows_fn f = NULL;
  if (!force_avx2_tiles && dq_cpu_has_avx512_int8() && dq_cpu_has_avx512vnni())
    f = dq_avx512_tile_rows_kernel(type, rows, tokens);
  if (!f) {
    f = dq_avx2_tile_rows_kernel(type, dq_cpu_has_avxvnni(), rows);
    *tokens = 4;
  }
  return f;
}

bool dq_matmul_rows_exact(uint32_t type) {
  if (!use_simd() || force_avx2_tiles || !dq_cpu_has_avx512_int8()) return true;
  return dq_avx512_tiles_exact(type, dq_cpu_has_avx512vnni());
}

// The tiles over rows [row_begin, row_end), all tokens.
static void matmul_rows_tiles(uint32_t type, int64_t n, const void *w, size_t row_stride,
                              const void *x, size_t x_stride, int64_t tokens, float *y,
                              int64_t ldy, int64_t row_begin, int64_t row_end) {
  dq_tile4_fn tile = use_simd() ? tile4_kernel(type) : NULL;
  int rows = 0, width = 4;
  dq_tile_rows_fn multi = tile ? tile_rows_kernel(type, &rows, &width) : NULL;
  const char *xs = x;
  int64_t t = 0;
  if (tile) {
    while (t + 4 <= tokens) {
      const bool wide = multi && t + width <= tokens;
      const int64_t step = wide ? width : 4;
      int64_t r = row_begin;
      if (wide)
        for (; r + rows <= row_end; r += rows)
          multi(n, (const char *)w + (size_t)r * row_stride, row_stride, xs + (size_t)t * x_stride,
                x_stride, y + t * ldy + (r - row_begin), ldy);
      for (; r < row_end; r++)
        for (int64_t k = t; k < t + step; k += 4)
          tile(n, (const char *)w + (size_t)r * row_stride, xs + (size_t)k * x_stride, x_stride,
               y + k * ldy + (r - row_begin), ldy);
      t += step;
    }
  }
  for (; t < tokens; t++)
    dq_matvec_rows(type, n, w, row_stride, xs + (size_t)t * x_stride, y + t * ldy, row_begin,
                   row_end);
}

// Below this many tokens the packed kernels' repacking costs more than it saves.
enum { PACKED_MIN_TOKENS = 8, TILE_BLOCK_ROWS = 16 };

// Up to this many tokens (a batched decode step), the AVX-512 matvec kernels take every token
// against each weight row as it passes (dq_avx512_matvec_tokens_kernel): no repacking, and each
// token gets the one-token step's bits. Measured (scripts/batch_decode_bench.c, one thread, 1 GiB
// matrices of 2048 columns streamed from memory; README "Batched decode at 1.7B"): against the
// tiles and packed kernels they win on the k-quants and Q4_1/Q5_1 up to 8 tokens (1.4-1.9x at 8;
// the k-quants' packed kernels win from about 16) and on Q4_0/Q5_0/Q8_0 up to 6 (1.3-2.3x; Q8_0 at
// 6 tokens 0.87x: the prepared activations outgrow L1 at 2048 columns), their packed kernels win
// from 8 (2x). Q4_0/Q5_0/Q8_0 keep 7, so a step of up to 7 rows is bit-exact to its rows alone.
// Per thread (tests and benchmarks move it): -1 is these defaults.
static _Thread_local int64_t tokens_max_override = -1;

void dq_set_matvec_tokens_max(int64_t tokens) { tokens_max_override = tokens < 0 ? -1 : tokens; }

int64_t dq_matvec_tokens_max(uint32_t type) {
  if (tokens_max_override >= 0) return tokens_max_override;
  switch (type) {
    case DQ_TYPE_Q4_0: case DQ_TYPE_Q5_0: case DQ_TYPE_Q8_0: return PACKED_MIN_TOKENS - 1;
    // the Q4_0 shadow's kernel up to a chunk of 8 tokens; past that the packed kernels, which
    // win there at 8192 columns (on the shadow's rows unpacked 16 at a time)
    case DQ_TYPE_Q4_0_X16: return 8;
    default: return 8;
  }
}

void dq_matmul_rows(uint32_t type, int64_t n, const void *w, size_t row_stride, const void *x,
                    size_t x_stride, int64_t tokens, float *y, int64_t ldy, int64_t row_begin,
                    int64_t row_end) {
  if (type & DQ_TYPE_R16) {
    if (row_begin < row_end && tokens > 0) r16_rows(type, n, w, x, x_stride, tokens, y, ldy, row_begin, row_end);
    return;
  }
  if (type == DQ_TYPE_Q4_0_X16) {
    if (n <= 0 || x16_as_plain(n, w, row_stride, x, x_stride, tokens, y, ldy, row_begin, row_end)) return;
    // past a decode step (prefill), the packed kernels on the shadow's rows unpacked 16 at a
    // time: the plain rows' bits; the rows left over (fewer than 16) by the shadow's kernel
    if (tokens > dq_matvec_tokens_max(type) && dq_cpu_has_avx512_int8() && dq_cpu_has_avx512vnni()) {
      const int64_t done = dq_avx512_matmul_packed(type, n, (const char *)w + (size_t)row_begin * row_stride,
                                                   row_stride, x, x_stride, tokens, y, ldy, row_end - row_begin);
      row_begin += done;
      y += done;
    }
    if (row_begin < row_end)
      x16_rows(n, (const char *)w + (size_t)row_begin * row_stride, row_stride, x, x_stride, tokens, y, ldy,
               row_end - row_begin);
    return;
  }
  if (tokens <= dq_matvec_tokens_max(type) && use_avx512()) {
    dq_matmul_tokens_fn mt = dq_avx512_matvec_tokens_kernel(type);
    if (mt && n > 0 &&
        mt(n, (const char *)w + (size_t)row_begin * row_stride, row_stride, x, x_stride, tokens, y, ldy,
           row_end - row_begin))
      return;
  }
  if (use_simd() && !force_avx2_tiles && tokens >= PACKED_MIN_TOKENS && dq_cpu_has_avx512_int8() &&
      dq_cpu_has_avx512vnni()) {
    const int64_t done = dq_avx512_matmul_packed(type, n, (const char *)w + (size_t)row_begin * row_stride,
                                                 row_stride, x, x_stride, tokens, y, ldy,
                                                 row_end - row_begin);
    row_begin += done;
    y += done;
  }
  // Blocks of rows whose weights stay in L1 while every token passes over them.
  for (int64_t r0 = row_begin; r0 < row_end; r0 += TILE_BLOCK_ROWS) {
    const int64_t r1 = r0 + TILE_BLOCK_ROWS < row_end ? r0 + TILE_BLOCK_ROWS : row_end;
    matmul_rows_tiles(type, n, w, row_stride, x, x_stride, tokens, y + (r0 - row_begin), ldy, r0, r1);
  }
}
