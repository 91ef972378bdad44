// The NEON build of the kernels (AArch64, where NEON is always present).
#include "table.h"
#if defined(__aarch64__)
#include <string.h>
#include <arm_neon.h>
#define ISA_NS neon
#define ISA_NEON 1
#define ISA_LABEL "neon"
#include "kernels.inc"
parsimony::KernelTable parsimony::kernelsNeon() { return neon::table(); }
#else
parsimony::KernelTable parsimony::kernelsNeon() { return parsimony::KernelTable{"neon", nullptr, 0}; }
#endif
