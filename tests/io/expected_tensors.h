#pragma once
// Helpers for the io tests: the ".expected.txt" side format written by
// scripts/golden/make_golden_checkpoint.py (one tensor a line: name dtype ndim dims... values as float.hex)
// and finding a Python 3 that can import a module (for the "Python reads what C++ wrote" tests).
#include <ATen/ATen.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "vcpclip/build_info.h"

namespace vcpclip::testing {

struct ExpectedTensor {
  std::string name;
  std::string dtype;  // torch's name: float32, float16, bfloat16, float64, int64, int32, uint8, bool
  std::vector<int64_t> shape;
  std::vector<double> values;
};

inline std::string fixture_dir() { return std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/checkpoint/"; }

inline std::vector<ExpectedTensor> read_expected(const std::string& path) {
  std::vector<ExpectedTensor> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    ExpectedTensor e;
    int ndim = 0;
    ls >> e.name >> e.dtype >> ndim;
    e.shape.resize(ndim);
    for (auto& d : e.shape) ls >> d;
    std::string v;
    while (ls >> v) e.values.push_back(std::strtod(v.c_str(), nullptr));
    out.push_back(std::move(e));
  }
  return out;
}

inline std::string torch_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kDouble:
      return "float64";
    case at::kLong:
      return "int64";
    case at::kInt:
      return "int32";
    case at::kByte:
      return "uint8";
    case at::kBool:
      return "bool";
    default:
      return "other";
  }
}

/// The tensor's values as doubles (exact for every dtype used here).
inline std::vector<double> values_of(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).contiguous().reshape({-1});
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

/// A Python 3 interpreter that can `import <modules>`: $VCPCLIP_PYTHON, python3, /usr/bin/python3.
/// Empty when none can.
inline std::string find_python(const std::string& modules) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("VCPCLIP_PYTHON")) candidates.emplace_back(env);
  candidates.emplace_back("python3");
  candidates.emplace_back("/usr/bin/python3");
  for (const auto& py : candidates) {
    std::string cmd = py + " -c 'import " + modules + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return py;
  }
  return "";
}

}  // namespace vcpclip::testing
