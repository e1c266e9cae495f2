// OpenBLAS's CBLAS interface (sgemm for batched matmuls).
#pragma once
#include <cblas.h>
