// The AVX-512 build of the kernels (x86-64 only); called only when the CPU reports AVX-512 F/BW/DQ/VL.
#include "table.h"
#if defined(__x86_64__)
#include <string.h>
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi,bmi2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi,bmi2")
#endif
#define ISA_NS avx512
#define ISA_AVX512 1
#define ISA_LABEL "avx512"
#include "kernels.inc"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
parsimony::KernelTable parsimony::kernelsAvx512() { return avx512::table(); }
#else
parsimony::KernelTable parsimony::kernelsAvx512() { return parsimony::KernelTable{"avx512", nullptr, 0}; }
#endif
