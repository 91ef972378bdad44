// The AVX2 + FMA build of the kernels (x86-64 only); called only when the CPU reports AVX2 and FMA.
#include "table.h"
#if defined(__x86_64__)
#include <string.h>
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi,bmi2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2")
#endif
#define ISA_NS avx2
#define ISA_AVX2 1
#define ISA_LABEL "avx2"
#include "kernels.inc"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
parsimony::KernelTable parsimony::kernelsAvx2() { return avx2::table(); }
#else
parsimony::KernelTable parsimony::kernelsAvx2() { return parsimony::KernelTable{"avx2", nullptr, 0}; }
#endif
