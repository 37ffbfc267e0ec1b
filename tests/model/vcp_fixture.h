#pragma once
// Access to the VCP-CLIP golden fixtures written by scripts/golden/make_golden_vcp.py (tests/fixtures/vcp/):
// a tiny OpenAI-form CLIP archive, a reference-layout checkpoint, PNG inputs and the reference
// pipeline's outputs as .npy files listed in golden.json.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "vcpclip/build_info.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/model/model_options.h"
#include "vcpclip/model/tokenizer.h"

namespace vcp_fixture {

inline std::string dir() { return std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/vcp"; }
inline std::string path(const std::string& name) { return dir() + "/" + name; }

inline const nlohmann::json& manifest() {
  static const nlohmann::json j = [] {
    std::ifstream in(path("golden.json"));
    if (!in) throw std::runtime_error("missing " + path("golden.json") + " (run scripts/golden/make_golden_vcp.py)");
    return nlohmann::json::parse(in);
  }();
  return j;
}

inline at::Tensor load(const std::string& name) {
  return vcpclip::io::read_npy(path(manifest().at("tensors").at(name).at("file").get<std::string>()));
}

inline std::string vocab_path() {
  for (const std::string& p : {std::string(VCPCLIP_SOURCE_DIR) + "/assets/bpe_simple_vocab_16e6.txt.gz",
                               std::string(VCPCLIP_SOURCE_DIR) + "/../shared/assets/bpe_simple_vocab_16e6.txt.gz"})
    if (std::filesystem::is_regular_file(p)) return p;
  return vcpclip::model::find_vocab();
}

/// The model options matching the fixture (reference defaults except the tiny sizes).
inline vcpclip::model::ModelOptions options() {
  const auto& m = manifest();
  vcpclip::model::ModelOptions o;
  o.backbone = path(m.at("config").get<std::string>());
  o.weights = path(m.at("weights").get<std::string>());
  o.vocab = vocab_path();
  o.input_size = m.at("image_size").get<int64_t>();
  o.features_list = m.at("features_list").get<std::vector<int64_t>>();
  o.prompt_len = m.at("prompt_len").get<int64_t>();
  o.deep_prompt_len = m.at("deep_prompt_len").get<int64_t>();
  o.deep_prompt_layers = -1;
  o.post_heads = m.at("post_heads").get<int64_t>();
  o.templates_normal = m.at("templates_normal").get<std::vector<std::string>>();
  o.templates_abnormal = m.at("templates_abnormal").get<std::vector<std::string>>();
  return o;
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace vcp_fixture
