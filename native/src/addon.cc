// The Node addon: picks the kernel build for this CPU, binds a context to one linear memory (the data
// pointer of a Float32Array over the WebAssembly.Memory's buffer) and an argument block, and runs a
// kernel once per argument list on its own threads (list 0 on the calling thread).
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PARSIMONY_PAUSE() _mm_pause()
#else
#define PARSIMONY_PAUSE() std::this_thread::yield()
#endif

#include "table.h"

namespace parsimony {
namespace {

/** Doubles per argument list in the shared argument block (kernels take at most 16 arguments). */
constexpr int MAX_ARGS = 16;
/** Argument lists per call. */
constexpr int MAX_TASKS = 64;
/** Polls before a waiting thread sleeps on its condition variable. */
constexpr int SPIN = 4000;

/** The calling thread's scratch block, grown on demand and freed when the thread ends. */
struct ScratchBlock {
  void* data = nullptr;
  size_t bytes = 0;
  ~ScratchBlock() { std::free(data); }
};
thread_local ScratchBlock tScratch;

void* scratchBlock(size_t bytes) {
  if (bytes > tScratch.bytes) {
    size_t want = bytes > 2 * tScratch.bytes ? bytes : 2 * tScratch.bytes;
    if (want < (1u << 20)) want = 1u << 20;
    want = (want + 63) & ~static_cast<size_t>(63);
    std::free(tScratch.data);
    tScratch.data = std::aligned_alloc(64, want);
    if (tScratch.data == nullptr) {
      std::fprintf(stderr, "parsimony native kernels: cannot allocate %zu bytes of scratch\n", want);
      std::abort();
    }
    tScratch.bytes = want;
  }
  return tScratch.data;
}

const char* detectIsa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
  return "portable";
#elif defined(__aarch64__)
  return "neon";
#else
  return "portable";
#endif
}

/** The builds this CPU runs, best first. */
std::vector<std::string> availableIsas() {
  std::vector<std::string> out;
  const std::string best = detectIsa();
  if (best == "avx512") out.push_back("avx512");
  if (best == "avx512" || best == "avx2") out.push_back("avx2");
  if (best == "neon") out.push_back("neon");
  out.push_back("portable");
  return out;
}

KernelTable tableFor(const std::string& isa) {
  if (isa == "avx512") return kernelsAvx512();
  if (isa == "avx2") return kernelsAvx2();
  if (isa == "neon") return kernelsNeon();
  return kernelsPortable();
}

/** Worker threads that run tasks 1.. of a call; the caller runs task 0 and waits for the rest. */
class Pool {
 public:
  void run(const KernelEntry* fn, const double* args, int tasks, const Context& ctx, double* results) {
    ensure(tasks - 1);
    job_ = Job{fn, args, tasks, &ctx, results};
    pending_.store(tasks - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    results[0] = fn->run(args, ctx);
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0;) {
      if (++spins < SPIN) {
        PARSIMONY_PAUSE();
        continue;
      }
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  struct Job {
    const KernelEntry* fn;
    const double* args;
    int tasks;
    const Context* ctx;
    double* results;
  };

  void ensure(int workers) {
    while (static_cast<int>(threads_.size()) < workers) {
      const int index = static_cast<int>(threads_.size()) + 1;
      const uint64_t seen = generation_.load(std::memory_order_acquire);
      threads_.emplace_back([this, index, seen] { loop(index, seen); });
    }
  }

  void loop(int index, uint64_t seen) {
    for (;;) {
      uint64_t g = generation_.load(std::memory_order_acquire);
      for (int spins = 0; g == seen && spins < SPIN; spins++) {
        PARSIMONY_PAUSE();
        g = generation_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        g = generation_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stopping_) return;
      const Job job = job_;
      if (index < job.tasks) {
        job.results[index] = job.fn->run(job.args + index * MAX_ARGS, *job.ctx);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          std::lock_guard<std::mutex> lock(mu_);
          done_.notify_all();
        }
      }
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  Job job_{};
  bool stopping_ = false;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: its threads may outlive static destruction at exit
  return *p;
}
std::mutex gDispatch;

/** A data pointer of a typed array (napi_get_typedarray_info also answers for shared buffers). */
void* typedArrayData(napi_env env, napi_value v, size_t* length) {
  napi_typedarray_type type;
  void* data = nullptr;
  napi_value buffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, v, &type, length, &data, &buffer, &offset) != napi_ok) return nullptr;
  return data;
}

class NativeContext : public Napi::ObjectWrap<NativeContext> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeContext", {
      InstanceMethod("run", &NativeContext::Run),
      InstanceMethod("bind", &NativeContext::Bind),
      InstanceAccessor("isa", &NativeContext::Isa, nullptr),
      InstanceAccessor("kernels", &NativeContext::Kernels, nullptr),
    });
  }

  /** new NativeContext(memory: Float32Array, args: Float64Array, isa: string) */
  explicit NativeContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeContext>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsString()) {
      Napi::TypeError::New(env, "NativeContext(memory: Float32Array, args: Float64Array, isa: string)").ThrowAsJavaScriptException();
      return;
    }
    const std::string isa = info[2].As<Napi::String>().Utf8Value();
    bool known = false;
    for (const auto& s : availableIsas()) known = known || s == isa;
    if (!known) {
      Napi::Error::New(env, "this CPU cannot run the " + isa + " kernel build").ThrowAsJavaScriptException();
      return;
    }
    table_ = tableFor(isa);
    size_t n = 0;
    args_ = static_cast<double*>(typedArrayData(env, info[1], &n));
    if (args_ == nullptr || n < static_cast<size_t>(MAX_TASKS * MAX_ARGS)) {
      Napi::Error::New(env, "the argument block must be a Float64Array of at least 1024 values").ThrowAsJavaScriptException();
      return;
    }
    ctx_.scratch = scratchBlock;
    BindMemory(info[0]);
  }

 private:
  void BindMemory(const Napi::Value& v) {
    size_t n = 0;
    ctx_.base = static_cast<uint8_t*>(typedArrayData(Env(), v, &n));
    if (ctx_.base == nullptr) Napi::Error::New(Env(), "cannot read the linear memory's data pointer").ThrowAsJavaScriptException();
  }

  Napi::Value Bind(const Napi::CallbackInfo& info) {
    BindMemory(info[0]);
    return info.Env().Undefined();
  }

  /** run(kernel index, argument lists): the sum of the calls' results, or null when this build declines the call. */
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int index = info[0].As<Napi::Number>().Int32Value();
    const int tasks = info[1].As<Napi::Number>().Int32Value();
    if (index < 0 || index >= table_.count || tasks < 1 || tasks > MAX_TASKS) {
      Napi::RangeError::New(env, "native run: kernel index or task count out of range").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    const KernelEntry* fn = &table_.entries[index];
    if (fn->accepts != nullptr && !fn->accepts(args_, ctx_)) return env.Null();
    double results[MAX_TASKS];
    if (tasks == 1) {
      results[0] = fn->run(args_, ctx_);
    } else {
      std::lock_guard<std::mutex> lock(gDispatch);
      pool().run(fn, args_, tasks, ctx_, results);
    }
    double total = 0;
    for (int t = 0; t < tasks; t++) total += results[t];
    return Napi::Number::New(env, total);
  }

  Napi::Value Isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), table_.isa); }

  Napi::Value Kernels(const Napi::CallbackInfo& info) {
    Napi::Array out = Napi::Array::New(info.Env(), table_.count);
    for (int i = 0; i < table_.count; i++) out.Set(static_cast<uint32_t>(i), Napi::String::New(info.Env(), table_.entries[i].name));
    return out;
  }

  KernelTable table_{};
  Context ctx_{};
  double* args_ = nullptr;
};

Napi::Value Isas(const Napi::CallbackInfo& info) {
  const auto list = availableIsas();
  Napi::Array out = Napi::Array::New(info.Env(), list.size());
  for (size_t i = 0; i < list.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::String::New(info.Env(), list[i]));
  return out;
}

}  // namespace
}  // namespace parsimony

Napi::Object InitParsimony(Napi::Env env, Napi::Object exports) {
  using namespace parsimony;
  exports.Set("NativeContext", NativeContext::Define(env));
  exports.Set("isas", Napi::Function::New(env, Isas));
  exports.Set("maxArgs", Napi::Number::New(env, MAX_ARGS));
  exports.Set("maxTasks", Napi::Number::New(env, MAX_TASKS));
  return exports;
}

NODE_API_MODULE(parsimony, InitParsimony)
