// CKernels: the one place where byte layouts of quantized blocks are declared, plus the
// numeric kernels that read them. Every SIMD kernel has a scalar reference twin (`_ref`)
// compared against it in the tests; the dispatching entry points pick AVX2/FMA at run time.
//
// Conventions: `n` is a row length in elements and must be a multiple of the type's block
// size; rows are contiguous; pointers are never NULL for n > 0. Nothing here allocates.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ggml tensor type ids, exactly as stored in GGUF files.
enum {
  DQ_TYPE_F32 = 0,
  DQ_TYPE_F16 = 1,
  DQ_TYPE_Q4_0 = 2,
  DQ_TYPE_Q4_1 = 3,
  DQ_TYPE_Q5_0 = 6,
  DQ_TYPE_Q5_1 = 7,
  DQ_TYPE_Q8_0 = 8,
  DQ_TYPE_Q8_1 = 9,
  DQ_TYPE_Q2_K = 10,
  DQ_TYPE_Q3_K = 11,
  DQ_TYPE_Q4_K = 12,
  DQ_TYPE_Q5_K = 13,
  DQ_TYPE_Q6_K = 14,
  DQ_TYPE_Q8_K = 15,
  DQ_TYPE_BF16 = 30,
};

// ---- type table ---------------------------------------------------------------------------
// Size facts for every ggml type id a GGUF file may name (also the ones we cannot compute
// with), so a reader can bounds-check any tensor. Returns false for an unknown id.
bool dq_type_info(uint32_t type, int64_t *block_size, int64_t *type_size);
// Short name ("Q4_1"), or NULL for an unknown id.
const char *dq_type_name(uint32_t type);
// True when this library can dequantize the type and take dot products with it.
bool dq_type_is_supported(uint32_t type);
// Bytes of a row of n elements; -1 if the type is unknown or n is not a block multiple.
int64_t dq_row_size(uint32_t type, int64_t n);

// ---- scalar conversions -------------------------------------------------------------------
float dq_fp16_to_fp32(uint16_t h);
uint16_t dq_fp32_to_fp16(float f);  // round to nearest even
float dq_bf16_to_fp32(uint16_t h);
uint16_t dq_fp32_to_bf16(float f);  // round to nearest even

// ---- dequantize / quantize rows -----------------------------------------------------------
// dst[0..n) = value of the n elements stored at src (any supported type, and also the
// activation types Q8_1 and Q8_K, which tests and debugging want to read back).
void dq_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);
void dq_dequantize_row_ref(uint32_t type, const void *src, float *dst, int64_t n);
// Quantize n floats into `type` (supported types; the same rounding as ggml's reference
// quantizers, so files written here load elsewhere). Used for activations, merges and tests.
// Q8_1 and Q8_K (activation formats) are accepted too. Q4_K/Q5_K/Q6_K use ggml's search
// (no importance matrix); valid files, but not promised bit-identical to a llama.cpp build.
void dq_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);
// The scalar reference of dq_quantize_row (the dispatching one has AVX2 twins for the activation
// types Q8_0, Q8_1 and Q8_K; both write the same bytes).
void dq_quantize_row_ref(uint32_t type, const float *src, void *dst, int64_t n);
// True for the types dq_quantize_row can write: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q8_1, Q8_K, Q4_K, Q5_K, Q6_K.
bool dq_quantize_supported(uint32_t type);

// ---- dot products against quantized activations -------------------------------------------
// A weight row of type `type` is multiplied with an activation row that was first quantized to
// dq_vec_dot_type(type) (Q8_0, Q8_1 or Q8_K for quantized weights; F32 for F32/F16/BF16 weights).
uint32_t dq_vec_dot_type(uint32_t type);
// Returns sum_i w[i] * x[i] over n elements.
float dq_vec_dot(uint32_t type, int64_t n, const void *w, const void *x);
float dq_vec_dot_ref(uint32_t type, int64_t n, const void *w, const void *x);

// y[r - row_begin] = dot(row r of W, x) for r in [row_begin, row_end); rows are `row_stride`
// bytes apart, each of n elements; x is already in dq_vec_dot_type(type).
void dq_matvec_rows(uint32_t type, int64_t n, const void *w, size_t row_stride,
                    const void *x, float *y, int64_t row_begin, int64_t row_end);

// How the AVX-512 matvec walks the rows: four per pass, sharing the activation's loads, while the
// model's weights fit in the last-level cache; one per pass when they stream from memory (the
// batched decode kernels with one token, rows at least 4 KiB ahead prefetched, the k-quants'
// 16 KiB ahead into L2), since one sequential stream per thread is what the hardware
// prefetchers follow (AMD Zen 4, one thread: Gemma 3 270M decode 38 -> 69 tok/s; four rows still
// win by 10-25 % from cache). A row's bits are the same either way. Process-wide; set by LlamaModel when it loads a file.
void dq_set_weights_stream_from_memory(bool on);
// Size of the last-level data cache in bytes (0 when the system does not say).
int64_t dq_cpu_last_level_cache_bytes(void);

// y[t * ldy + (r - row_begin)] = dot(row r of W, x_t) for r in [row_begin, row_end) and t in
// [0, tokens); activation rows x_t are x_stride bytes apart, already in dq_vec_dot_type(type).
// Faster than dq_matvec_rows token by token (weights reused across tokens). Up to
// dq_matvec_tokens_max(type) tokens on AVX-512 VNNI (a batched decode step) each token gets
// exactly dq_vec_dot's bits (the decode kernels, every token against each row); otherwise the
// bits of the AVX2 one-row dot where dq_matmul_rows_exact(type), else the same value up to fp32
// summation order (AVX-512 VNNI: k-quant tiles sum across super-blocks in vectors, and from 8
// tokens, 9 on the k-quants, Q4_0/Q5_0/Q8_0/Q4_K/Q5_K/Q6_K run 16 repacked rows per pass).
void dq_matmul_rows(uint32_t type, int64_t n, const void *w, size_t row_stride, const void *x,
                    size_t x_stride, int64_t tokens, float *y, int64_t ldy, int64_t row_begin,
                    int64_t row_end);

bool dq_matmul_rows_exact(uint32_t type);

// Up to dq_matvec_tokens_max(type) tokens (a batched decode step), dq_matmul_rows runs the
// AVX-512 decode kernels with every token against each weight row, where the CPU and type have
// them: each token then gets exactly dq_vec_dot's bits, as in a one-token step, whatever the
// batch. Above it, the tiles and packed kernels. Benchmarks and tests may set the threshold for
// the calling thread (0: never; negative: back to the measured per-type defaults).
void dq_set_matvec_tokens_max(int64_t tokens);
int64_t dq_matvec_tokens_max(uint32_t type);

// ---- r16: k-quant matrices repacked 16 rows per group, for their products --------------------
// Built once at load; every product of the matrix (decode of 1..8 tokens, prefill of any number)
// may read it, while the file's bytes stay the truth for everything else. Groups of 16
// consecutive rows, group g at packed + g * dq_r16_group_bytes(type, n); inside, super-block by
// super-block, the codes in their own bit planes transposed so that lane r of a vector is row r,
// per-row scales as bytes, d/dmin as fp16: bytes a row and super-block Q4_K 148 (the file 144),
// Q5_K 180 (176), Q6_K 212 (210). A (row, token) result has the same bits whatever the number of
// tokens in the call, the token's place among them and the group-aligned row range; within the
// summation tolerance of dq_vec_dot_ref, not dq_vec_dot's bits.
// Whether the r16 layout exists for type (Q4_K, Q5_K, Q6_K) on this CPU (AVX-512 VNNI).
bool dq_r16_supported(uint32_t type);
// Bytes of one group of 16 rows of n columns (a multiple of 64); 0 when not supported or n is
// not a multiple of 256.
size_t dq_r16_group_bytes(uint32_t type, int64_t n);
// Packs rows [0, rows) of w (row_stride bytes apart; rows <= 16, a last group short of 16 rows
// is padded with zero rows) into one group at out (64-byte aligned, dq_r16_group_bytes long).
void dq_r16_pack_group(uint32_t type, int64_t n, const void *w, size_t row_stride, int64_t rows,
                       void *out);
// y[t * ldy + r] for r in [0, rows) and t in [0, tokens): the rows of consecutive groups starting
// at `packed` (a group boundary, 64-byte aligned; the last group's rows past `rows` are computed,
// not stored) against the q8_K activation rows x_t, x_stride bytes apart. Tokens go 8 at a time
// over each group (9-11 left: two chunks); from 128 tokens each group's codes are decoded once
// per call into a per-thread buffer (16 n bytes); at 1-2 tokens the group stream is read at
// about memory speed.
void dq_r16_matmul(uint32_t type, int64_t n, const void *packed, const void *x, size_t x_stride,
                   int64_t tokens, float *y, int64_t ldy, int64_t rows);
// The type id products take for a repacked matrix: its type | DQ_TYPE_R16, w the first group,
// and a row stride of dq_r16_group_bytes / 16. dq_matvec_rows, dq_matmul_rows (so the pool's
// products) and dq_vec_dot_type accept it, with row ranges that begin on a group (the pool
// slices rows in multiples of 16); nothing else does.
enum { DQ_TYPE_R16 = 0x10000 };

// ---- Q4_0 repacked for decode (q4_0_x16.c) ------------------------------------------------
// Not a GGUF type: the id of a shadow of Q4_0 rows that a model builds at load on AVX-512 VNNI
// machines, for its decode products only (dq_vec_dot, dq_matvec_rows, dq_matmul_rows take it, with
// Q8_0 activations, as dq_vec_dot_type says); the file's rows stay the truth for everything else
// (dequantize, get_rows, merges, export). Rows keep their size, 18 bytes per 32 columns; every
// walk (one token, several, the dot) gives a token the same bits. No dequantize, no reference.
enum { DQ_TYPE_Q4_0_X16 = 0x1002 };
// True when this CPU runs the shadow's kernels (AVX-512 F/BW/VL/VNNI; false on other machines and
// in scalar-only builds, where a model keeps its plain rows).
bool dq_q4_0_x16_available(void);
// Available and not turned off on the calling thread (dq_force_scalar, dq_force_avx2_dots): a
// model with a shadow reads its plain rows where this is false, so those switches keep meaning
// "these kernels" for every product.
bool dq_q4_0_x16_enabled(void);
// Plain Q4_0 rows of n columns -> shadow rows, and back (src and dst must not overlap).
void dq_q4_0_x16_pack_rows(const void *src, void *dst, int64_t n, int64_t rows);
void dq_q4_0_x16_unpack_rows(const void *src, void *dst, int64_t n, int64_t rows);

// False when built with DQ_SCALAR_ONLY (or not for x86-64): only the scalar twins exist.
bool dq_simd_compiled(void);
// Which SIMD path the dispatching functions use ("avx2" or "scalar") on the calling thread;
// tests can force the scalar references for the calling thread only.
const char *dq_simd_path(void);
void dq_force_scalar(bool on);
// Tests: run dq_matmul_rows' AVX2 tiles on the calling thread even where AVX-512 ones exist.
void dq_force_avx2_tiles(bool on);
// The dot/matvec kernels in use: "avx512" (F/BW/VL/VNNI decode kernels, for the types that
// have them), else dq_simd_path(). dq_force_avx2_dots limits this thread to the AVX2 ones.
const char *dq_dot_path(void);
void dq_force_avx2_dots(bool on);

#ifdef __cplusplus
}
#endif
