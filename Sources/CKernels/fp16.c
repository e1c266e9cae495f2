// fp16 (IEEE binary16) and bf16 <-> fp32 conversions in portable C, bit by bit: round to nearest
// even, subnormals kept (never flushed), Inf kept, NaN kept as a quiet NaN of the same sign.
// The SIMD kernels use F16C instructions instead; both give the same bits.
#include <string.h>

#include "ckernels.h"

static inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float dq_fp16_to_fp32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  if (exp == 0x1F) return bits_f32(sign | 0x7F800000u | (mant << 13));  // Inf, NaN (payload kept)
  if (exp == 0) {
    // zero or subnormal: mant * 2^-24 is exact in fp32
    float v = (float)mant * 0x1p-24f;
    return bits_f32(sign | f32_bits(v));
  }
  return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));  // rebias 15 -> 127
}

uint16_t dq_fp32_to_fp16(float f) {
  uint32_t x = f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return sign | 0x7E00 | (uint16_t)((ax >> 13) & 0x3FF);  // quiet NaN
  // 65520 (0x477FF000) is halfway between 65504, the largest half, and 2^16: ties go to even,
  // which is the overflow, so it and everything above become Inf.
  if (ax >= 0x477FF000u) return sign | 0x7C00;
  if (ax < 0x38800000u) {  // below 2^-14: a half subnormal (or zero)
    if (ax <= 0x33000000u) return sign;  // <= 2^-25: rounds to zero (2^-25 itself ties to even 0)
    uint32_t exp = ax >> 23;
    uint32_t mant = (ax & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126 - exp;  // value = mant * 2^(exp-150); in units of 2^-24: mant >> (126-exp)
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;  // may carry into the smallest normal: right
    return sign | (uint16_t)q;
  }
  uint32_t r = ax - 0x38000000u;            // rebias the exponent 127 -> 15
  r += 0x0FFFu + ((r >> 13) & 1);            // round the 13 dropped bits to nearest even
  return sign | (uint16_t)(r >> 13);         // a carry into the exponent is the right result
}

float dq_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t dq_fp32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x0040);  // force quiet
  return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);  // nearest even; overflow -> Inf
}
