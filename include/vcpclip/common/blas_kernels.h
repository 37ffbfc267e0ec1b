#pragma once
// OpenBLAS kernel choice on CPUs that OpenBLAS does not recognise (README "Speed").
//
// OpenBLAS picks its kernels from the CPU model number. Versions that predate a CPU (Debian 12's
// 0.3.21 on Emerald/Sapphire Rapids, model 207/143) fall back to the SSE3 "Prescott" kernels, which
// run fp32 matrix products ~3x slower than the AVX-512 ones the CPU supports; LibTorch's fp32
// linear layers go through that BLAS. vcpclip switches such a fallback to the kernels matching the
// CPU's instruction sets, once per process, before the first model runs.
#include <string>

namespace vcpclip {

/// What select_blas_kernels() found and did.
struct BlasKernels {
  bool openblas = false;     ///< OpenBLAS (with runtime kernel selection) is the BLAS of this process
  std::string before;        ///< its kernel set at start-up ("Prescott", "SkylakeX", ...); empty if not OpenBLAS
  std::string after;         ///< its kernel set now (== before unless switched)
  std::string reason;        ///< one line saying why it switched or why not
  std::string coretype_env;  ///< OPENBLAS_CORETYPE as the environment set it at start-up ("" = unset)
};

/// When the environment's OPENBLAS_CORETYPE names an older kernel set than `best` (best_openblas_core()),
/// e.g. Haswell (AVX2) on an AVX-512 CPU, where fp32 products run at ~57 % of the SkylakeX kernels'
/// speed: "; this CPU supports the SkylakeX kernels: unset OPENBLAS_CORETYPE (vcpclip then chooses) or
/// set it to SkylakeX for faster fp32 (README \"Precision and BLAS kernels\")". "" otherwise, and for
/// names it does not know.
std::string coretype_hint(const std::string& env, const std::string& best);

/// Where this process's kernels came from, for `vcpclip bench`: "Haswell (OPENBLAS_CORETYPE=Haswell from
/// the environment)", "SkylakeX (switched by vcpclip from Prescott, OpenBLAS's fallback)", "Haswell
/// (OpenBLAS's own choice for this CPU)", or "not OpenBLAS".
std::string kernels_origin(const BlasKernels& k);

/// The same for a child process (the Python reference in `bench`) that reported `kernels` and the
/// OPENBLAS_CORETYPE it saw (`env`, "" = unset); `set_by_parent` when vcpclip set that variable for
/// it: "Haswell (OPENBLAS_CORETYPE=Haswell set by vcpclip bench, as vcpclip's)", "... from the
/// environment)", or "Haswell (OpenBLAS's own choice for this CPU)".
std::string child_kernels_origin(const std::string& kernels, const std::string& env, bool set_by_parent);

/// The kernel set for this CPU's instruction sets: "SkylakeX" (AVX-512 F/BW/VL/DQ), "Haswell"
/// (AVX2 + FMA), or "" when neither is available.
std::string best_openblas_core();

/// Once per process (later calls return the first result): when OpenBLAS runs its "Prescott"
/// fallback on a CPU that supports AVX2 or AVX-512 and the user has not set OPENBLAS_CORETYPE,
/// re-initialises OpenBLAS with best_openblas_core() (OpenBLAS's own OPENBLAS_CORETYPE mechanism).
/// Must run before other threads use BLAS. Logs what it did at debug level; `vcpclip version` shows it.
const BlasKernels& select_blas_kernels();

}  // namespace vcpclip
