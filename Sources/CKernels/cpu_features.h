// The CPU features the kernels dispatch on, detected once per process. Private to CKernels.
#pragma once
#include <stdbool.h>

bool dq_cpu_has_avx2(void);     // AVX2 + FMA + F16C: every "avx2" twin assumes all three
bool dq_cpu_has_avx512f(void);
bool dq_cpu_has_avxvnni(void);  // VEX-encoded VNNI (dpbusd on 256-bit vectors)
bool dq_cpu_has_avx512vnni(void);  // AVX-512 F/BW/VL/VNNI (and the AVX2 set): the decode kernels
