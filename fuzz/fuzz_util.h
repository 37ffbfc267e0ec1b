#pragma once
// Shared by the fuzz targets: the input as a file (the readers take paths, as users give them),
// and the contract every reader is held to: bad bytes are a vcpclip::Error (with a message),
// never a crash, a sanitizer report, a hang, or any other exception escaping.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "vcpclip/common/error.h"

namespace vcpclip::fuzz {

/// Writes the input to a per-process file with extension `ext` (in $TMPDIR, else /tmp) and
/// returns its path; the same file is reused for every input.
inline std::string input_file(const uint8_t* data, size_t size, const std::string& ext) {
  static const std::string dir = [] {
    const char* t = std::getenv("TMPDIR");
    return std::string(t && *t ? t : "/tmp");
  }();
  const std::string path = dir + "/vcpclip_fuzz_" + std::to_string(::getpid()) + ext;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
  return path;
}

/// Runs `read`; a vcpclip::Error is the expected outcome for bad input. Anything else escaping
/// is a finding: reported and turned into a crash so that libFuzzer keeps the input.
template <typename F>
void expect_clean(F&& read) {
  try {
    read();
  } catch (const vcpclip::Error& e) {
    if (std::string(e.what()).empty()) {
      std::fprintf(stderr, "fuzz: vcpclip::Error without a message\n");
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: exception other than vcpclip::Error escaped: %s\n", e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "fuzz: unknown exception escaped\n");
    std::abort();
  }
}

}  // namespace vcpclip::fuzz

/// Every target: quiet logs (the readers warn about what they skip).
#define VCPCLIP_FUZZ_INIT()                                      \
  extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) { \
    spdlog::set_level(spdlog::level::off);                       \
    return 0;                                                    \
  }
