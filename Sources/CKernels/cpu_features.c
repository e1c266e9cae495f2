// CPU feature detection, computed once and cached as a bit set (threads racing on the first
// call all compute the same value, so relaxed atomics suffice).
#include "cpu_features.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { FEATURES_KNOWN = 1, AVX2 = 2, AVX512F = 4, AVXVNNI = 8, AVX512BF16 = 16, AVX512INT8 = 32, AVX512VNNI = 64 };

static int features(void) {
  static atomic_int cached = 0;
  int f = atomic_load_explicit(&cached, memory_order_relaxed);
  if (f == 0) {
    f = FEATURES_KNOWN;
#include "dq_simd.h"
#if DQ_X86_SIMD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
      f |= AVX2;
    if (__builtin_cpu_supports("avx512f")) f |= AVX512F;
    if (__builtin_cpu_supports("avxvnni")) f |= AVXVNNI;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16")) f |= AVX512BF16;
    if ((f & AVX2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
      f |= AVX512INT8;
      if (__builtin_cpu_supports("avx512vnni")) f |= AVX512VNNI;
    }
#endif
    atomic_store_explicit(&cached, f, memory_order_relaxed);
  }
  return f;
}

bool dq_cpu_has_avx2(void) { return features() & AVX2; }
bool dq_cpu_has_avx512f(void) { return features() & AVX512F; }
bool dq_cpu_has_avxvnni(void) { return features() & AVXVNNI; }
bool dq_cpu_has_avx512bf16(void) { return features() & AVX512BF16; }
bool dq_cpu_has_avx512_int8(void) { return features() & AVX512INT8; }
bool dq_cpu_has_avx512vnni(void) { return features() & AVX512VNNI; }

// The kernel's view first (sysfs: what this CPU's cores share, e.g. one Zen 4 CCD's 32 MiB);
// glibc's sysconf can report the whole package's L3 (320 MiB on the same virtual machine).
static int64_t sysfs_last_level_cache_bytes(void) {
  int64_t best = 0;
  int best_level = 0;
  for (int i = 0; i < 8; i++) {
    char path[96], text[32];
    int level = 0;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
    FILE *f = fopen(path, "r");
    if (!f) break;
    if (fscanf(f, "%d", &level) != 1) level = 0;
    fclose(f);
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
    if (!(f = fopen(path, "r"))) continue;
    const bool data = fgets(text, sizeof text, f) && strncmp(text, "Instruction", 11) != 0;
    fclose(f);
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
    if (!data || level < best_level || !(f = fopen(path, "r"))) continue;
    long long size = 0;
    char unit = 0;
    const int got = fscanf(f, "%lld%c", &size, &unit);
    fclose(f);
    if (got < 1 || size <= 0) continue;
    if (got == 2 && (unit == 'K' || unit == 'k')) size <<= 10;
    if (got == 2 && (unit == 'M' || unit == 'm')) size <<= 20;
    best = size;
    best_level = level;
  }
  return best;
}

static int64_t read_last_level_cache_bytes(void) {
  const int64_t from_sysfs = sysfs_last_level_cache_bytes();
  if (from_sysfs > 0) return from_sysfs;
#if defined(_SC_LEVEL3_CACHE_SIZE)
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (l3 > 0) return l3;
#endif
#if defined(_SC_LEVEL2_CACHE_SIZE)
  const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (l2 > 0) return l2;
#endif
  return 0;
}

// Read once, like the feature bits (every model load asks; racing first calls read the same).
int64_t dq_cpu_last_level_cache_bytes(void) {
  static _Atomic int64_t cached = -1;
  int64_t bytes = atomic_load_explicit(&cached, memory_order_relaxed);
  if (bytes < 0) {
    bytes = read_last_level_cache_bytes();
    atomic_store_explicit(&cached, bytes, memory_order_relaxed);
  }
  return bytes;
}
