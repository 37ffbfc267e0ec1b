// The CPU's bf16 matrix instructions (common/cpu_features.h).
#include "vcpclip/common/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <cstdint>

namespace vcpclip {

namespace {

#if defined(__x86_64__) || defined(__i386__)
/// XCR0: the register states the OS saves on context switches (0 without OSXSAVE).
uint64_t xcr0() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

}  // namespace

std::string CpuBf16::describe() const {
  return std::string("AVX512-BF16 ") + (avx512_bf16 ? "yes" : "no") + ", AMX-BF16 " + (amx_bf16 ? "yes" : "no");
}

CpuBf16 cpu_bf16() {
  CpuBf16 f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  const uint64_t os = xcr0();
  const bool avx512_state = (os & 0xE6) == 0xE6;     // SSE, AVX, opmask, ZMM upper halves, ZMM16-31
  const bool amx_state = (os & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx512f = b & (1u << 16);
  f.amx_bf16 = amx_state && (d & (1u << 22)) && (d & (1u << 24));  // AMX-BF16 and AMX-TILE
  __cpuid_count(7, 1, a, b, c, d);
  f.avx512_bf16 = avx512_state && avx512f && (a & (1u << 5));
#endif
  return f;
}

}  // namespace vcpclip
