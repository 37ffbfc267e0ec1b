#pragma once
// The CPU's bf16 matrix instructions, for runtime.precision auto (model/precision_probe.h): oneDNN
// runs LibTorch's CPU bf16 matrix products on AVX512-BF16 (vdpbf16ps) or AMX-BF16 (tile) kernels;
// without either it emulates them at a fraction of fp32's speed (docs/precision.md), so auto takes
// bf16 on the CPU only where one of them is present and enabled by the OS.
#include <string>

namespace vcpclip {

struct CpuBf16 {
  bool avx512_bf16 = false;  ///< CPUID.(7,1):EAX[5] and the OS saves the AVX-512 state (XCR0 bits 5-7)
  bool amx_bf16 = false;     ///< CPUID.(7,0):EDX[22] and the OS saves the AMX tile state (XCR0 bits 17-18)
  bool any() const { return avx512_bf16 || amx_bf16; }
  /// "AVX512-BF16 yes, AMX-BF16 no".
  std::string describe() const;
};

/// This CPU's bf16 instructions (x86-64 CPUID and XGETBV; other architectures: none).
CpuBf16 cpu_bf16();

}  // namespace vcpclip
