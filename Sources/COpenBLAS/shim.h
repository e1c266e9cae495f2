// OpenBLAS's CBLAS interface (sgemm for batched matmuls).
#pragma once
#include <cblas.h>
#include <stddef.h>

// LAPACK's divide-and-conquer SVD (PiSSA/MiLoRA initialisation). libopenblas exports the
// Fortran symbol, but Debian ships no lapack.h with it, so it is declared here; the trailing
// length is gfortran's hidden CHARACTER length argument.
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s,
             float *u, const int *ldu, float *vt, const int *ldvt, float *work, const int *lwork,
             int *iwork, int *info, size_t jobz_length);
