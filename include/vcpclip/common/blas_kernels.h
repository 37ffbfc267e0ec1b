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
  bool openblas = false;  ///< OpenBLAS (with runtime kernel selection) is the BLAS of this process
  std::string before;     ///< its kernel set at start-up ("Prescott", "SkylakeX", ...); empty if not OpenBLAS
  std::string after;      ///< its kernel set now (== before unless switched)
  std::string reason;     ///< one line saying why it switched or why not
};

/// The kernel set for this CPU's instruction sets: "SkylakeX" (AVX-512 F/BW/VL/DQ), "Haswell"
/// (AVX2 + FMA), or "" when neither is available.
std::string best_openblas_core();

/// Once per process (later calls return the first result): when OpenBLAS runs its "Prescott"
/// fallback on a CPU that supports AVX2 or AVX-512 and the user has not set OPENBLAS_CORETYPE,
/// re-initialises OpenBLAS with best_openblas_core() (OpenBLAS's own OPENBLAS_CORETYPE mechanism).
/// Must run before other threads use BLAS. Logs what it did at debug level; `vcpclip version` shows it.
const BlasKernels& select_blas_kernels();

}  // namespace vcpclip
