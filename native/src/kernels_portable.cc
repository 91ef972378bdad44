// The portable build of the kernels: GCC/Clang vector extensions for the compiler's baseline target.
#include "table.h"
#include <string.h>
#define ISA_NS portable
#define ISA_PORTABLE 1
#define ISA_LABEL "portable"
#include "kernels.inc"
parsimony::KernelTable parsimony::kernelsPortable() { return portable::table(); }
