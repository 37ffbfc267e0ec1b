#pragma once
// Access to the CLIP golden fixtures written by scripts/golden/make_golden_clip.py (tests/fixtures/clip/):
// golden.json lists raw little-endian float32 / int64 arrays with their shapes.
#include <ATen/ATen.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>

#include "vcpclip/build_info.h"

namespace clip_fixture {

inline std::string dir() { return std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/clip"; }
inline std::string path(const std::string& name) { return dir() + "/" + name; }

inline const nlohmann::json& manifest() {
  static const nlohmann::json j = [] {
    std::ifstream in(path("golden.json"));
    if (!in) throw std::runtime_error("missing " + path("golden.json") + " (run scripts/golden/make_golden_clip.py)");
    return nlohmann::json::parse(in);
  }();
  return j;
}

/// A golden tensor by manifest name.
inline at::Tensor load(const std::string& name) {
  const auto& e = manifest().at("tensors").at(name);
  std::vector<int64_t> shape = e.at("shape").get<std::vector<int64_t>>();
  const bool is_int = e.at("dtype").get<std::string>() == "int64";
  auto t = at::empty(shape, at::TensorOptions().dtype(is_int ? at::kLong : at::kFloat));
  std::ifstream in(path(e.at("file").get<std::string>()), std::ios::binary);
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
  if (!in) throw std::runtime_error("cannot read golden tensor " + name);
  return t;
}

/// max |a - b| / max |b|: the relative error used by the parity tests.
inline double rel_err(const at::Tensor& a, const at::Tensor& b) {
  auto d = (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
  auto s = b.to(at::kDouble).abs().max().item<double>();
  return d / std::max(s, 1e-12);
}

}  // namespace clip_fixture
