// OpenBLAS kernel selection for CPUs its model table does not know (blas_kernels.h).
#include "vcpclip/common/blas_kernels.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <cstdlib>

namespace vcpclip {

namespace {

using CoreNameFn = char* (*)();
using InitFn = void (*)();

/// OpenBLAS's exported entry points, looked up in the running process (no link-time dependency:
/// with another BLAS selected they are absent and nothing changes).
struct OpenBlasApi {
  CoreNameFn corename = nullptr;
  InitFn dynamic_init = nullptr, dynamic_quit = nullptr;
  bool usable() const { return corename && dynamic_init && dynamic_quit; }
};

OpenBlasApi find_openblas() {
  OpenBlasApi api;
  api.corename = reinterpret_cast<CoreNameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  api.dynamic_init = reinterpret_cast<InitFn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  api.dynamic_quit = reinterpret_cast<InitFn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  return api;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

BlasKernels select_once() {
  BlasKernels k;
  const OpenBlasApi api = find_openblas();
  if (!api.usable()) {
    k.reason = "the BLAS is not OpenBLAS with runtime kernel selection: left as it is";
    return k;
  }
  k.openblas = true;
  k.before = k.after = api.corename();
  const std::string best = best_openblas_core();
  if (const char* env = std::getenv("OPENBLAS_CORETYPE"); env && *env) {
    k.coretype_env = env;
    k.reason = std::string("OPENBLAS_CORETYPE=") + env + " is set: left as it is" + coretype_hint(env, best);
  } else if (lower(k.before) != "prescott") {
    k.reason = "OpenBLAS recognised this CPU (" + k.before + " kernels): left as it is";
  } else if (best.empty()) {
    k.reason = "the CPU has neither AVX2 nor AVX-512: OpenBLAS's Prescott kernels stay";
  } else {
    setenv("OPENBLAS_CORETYPE", best.c_str(), 0);  // read by gotoblas_dynamic_init
    api.dynamic_quit();
    api.dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");  // child processes (the reference in `bench`) choose for themselves
    k.after = api.corename();
    k.reason = "OpenBLAS did not recognise this CPU and fell back to its SSE3 (Prescott) kernels; switched to " +
               k.after + " (set OPENBLAS_CORETYPE to choose yourself)";
  }
  spdlog::debug("BLAS: {}", k.reason);
  return k;
}

/// A rough order of OpenBLAS's x86-64 kernel sets by instruction set: 1 before AVX2, 2 AVX2 + FMA,
/// 3 AVX-512; 0 for names not listed.
int core_rank(const std::string& name) {
  static const char* const pre_avx2[] = {"prescott", "core2",       "penryn",    "dunnington", "nehalem",
                                         "atom",     "sandybridge", "barcelona", "bulldozer",  "piledriver",
                                         "bobcat",   "opteron",     "katmai",    "northwood",  "banias"};
  static const char* const avx2[] = {"haswell", "zen", "steamroller", "excavator", "skylake"};
  static const char* const avx512[] = {"skylakex", "cooperlake", "sapphirerapids"};
  const std::string n = lower(name);
  for (const char* c : avx512)
    if (n == c) return 3;
  for (const char* c : avx2)
    if (n == c) return 2;
  for (const char* c : pre_avx2)
    if (n == c) return 1;
  return 0;
}

}  // namespace

std::string coretype_hint(const std::string& env, const std::string& best) {
  const int have = core_rank(env), can = core_rank(best);
  if (have == 0 || can == 0 || have >= can) return "";
  return "; this CPU supports the " + best + " kernels: unset OPENBLAS_CORETYPE (vcpclip then chooses) or set it to " +
         best + " for faster fp32 (README \"Precision and BLAS kernels\")";
}

std::string kernels_origin(const BlasKernels& k) {
  if (!k.openblas) return "not OpenBLAS";
  if (!k.coretype_env.empty()) return k.after + " (OPENBLAS_CORETYPE=" + k.coretype_env + " from the environment)";
  if (k.before != k.after) return k.after + " (switched by vcpclip from " + k.before + ", OpenBLAS's fallback)";
  return k.after + " (OpenBLAS's own choice for this CPU)";
}

std::string child_kernels_origin(const std::string& kernels, const std::string& env, bool set_by_parent) {
  if (env.empty()) return kernels + " (OpenBLAS's own choice for this CPU)";
  return kernels + " (OPENBLAS_CORETYPE=" + env +
         (set_by_parent ? " set by vcpclip bench, as vcpclip's)" : " from the environment)");
}

std::string best_openblas_core() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return "";
}

const BlasKernels& select_blas_kernels() {
  static const BlasKernels kernels = select_once();  // thread-safe static initialisation
  return kernels;
}

}  // namespace vcpclip
