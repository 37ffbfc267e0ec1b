#pragma once
// Small helpers shared by the test files.
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "vcpclip/common/error.h"

namespace vcpclip::testing {

/// The message of the vcpclip::Error that `f` throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const vcpclip::Error& e) {
    return e.what();
  }
  return "(no error)";
}

/// Whole file as bytes ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace vcpclip::testing
