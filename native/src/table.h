// The contract between the addon (threads, scratch, N-API) and the kernels compiled once per instruction set.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace parsimony {

/** Arguments of one kernel call, as JavaScript numbers, in the order of src/backend/kernels.ts. */
typedef const double* Args;

/** What a kernel call may use besides its arguments: the linear memory and a per-thread scratch block. */
struct Context {
  uint8_t* base;
  /** A 64-byte aligned block of at least `bytes`, owned by the calling thread, valid until its next call. */
  void* (*scratch)(size_t bytes);
};

struct KernelEntry {
  const char* name;
  double (*run)(Args a, const Context& ctx);
  /** Whether this build computes the call (false: the caller runs the WebAssembly kernel); null means always. */
  bool (*accepts)(Args a, const Context& ctx);
};

struct KernelTable {
  const char* isa;
  const KernelEntry* entries;
  int count;
};

KernelTable kernelsAvx512();
KernelTable kernelsAvx2();
KernelTable kernelsNeon();
KernelTable kernelsPortable();

}  // namespace parsimony
