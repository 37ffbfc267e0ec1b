#pragma once
// Access to the AnomalyCLIP golden fixtures written by scripts/golden/make_golden_anomaly_clip.py
// (tests/fixtures/anomaly_clip/): a tiny OpenAI-form CLIP archive, a checkpoint in the official
// layout, the restated official pipeline's outputs as .npy files listed in golden.json (inputs:
// tests/fixtures/vcp/images.npy).
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "vcpclip/build_info.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/model/clip_weights.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/methods/anomaly_clip.h"
#include "vcpclip/model/tokenizer.h"

namespace anomaly_clip_fixture {

inline std::string dir() { return std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/anomaly_clip"; }
inline std::string path(const std::string& name) { return dir() + "/" + name; }

inline const nlohmann::json& manifest() {
  static const nlohmann::json j = [] {
    std::ifstream in(path("golden.json"));
    if (!in)
      throw std::runtime_error("missing " + path("golden.json") + " (scripts/golden/make_golden_anomaly_clip.py)");
    return nlohmann::json::parse(in);
  }();
  return j;
}

inline at::Tensor load(const std::string& name) {
  return vcpclip::io::read_npy(path(manifest().at("tensors").at(name).at("file").get<std::string>()));
}

inline at::Tensor images() { return vcpclip::io::read_npy(path(manifest().at("images").get<std::string>())); }

inline std::string vocab_path() {
  for (const std::string& p : {std::string(VCPCLIP_SOURCE_DIR) + "/assets/bpe_simple_vocab_16e6.txt.gz",
                               std::string(VCPCLIP_SOURCE_DIR) + "/../shared/assets/bpe_simple_vocab_16e6.txt.gz"})
    if (std::filesystem::is_regular_file(p)) return p;
  return vcpclip::model::find_vocab();
}

/// The model options of the fixture (official defaults but the tiny tower's sizes).
inline vcpclip::model::ModelOptions options(bool multi = false, double lambda = -1) {
  const auto& m = manifest();
  auto a = std::make_shared<vcpclip::model::AnomalyClipOptions>();
  a->n_ctx = m.at("n_ctx").get<int64_t>();
  a->t_n_ctx = m.at("t_n_ctx").get<int64_t>();
  a->depth = m.at("depth").get<int64_t>();
  a->lambda = lambda >= 0 ? lambda : m.at("lambda").get<double>();
  vcpclip::model::ModelOptions o;
  o.method = "anomaly_clip";
  o.method_options = a;
  o.backbone = path(m.at("config").get<std::string>());
  o.weights = path(m.at("weights").get<std::string>());
  o.vocab = vocab_path();
  o.activation = vcpclip::model::Activation::kQuickGelu;
  o.input_size = m.at("image_size").get<int64_t>();
  o.features_list = m.at(multi ? "features_multi" : "features_list").get<std::vector<int64_t>>();
  return o;
}

/// The tiny backbone (QuickGELU, as the official model classes) with the fixture's weights.
inline vcpclip::model::ClipModel backbone() {
  auto cfg = vcpclip::model::ClipConfig::from_json_file(path(manifest().at("config").get<std::string>()));
  cfg.activation = vcpclip::model::Activation::kQuickGelu;
  return vcpclip::model::load_clip_model(path(manifest().at("weights").get<std::string>()), cfg);
}

/// A fresh AnomalyCLIP on the tiny backbone (prompt learner initialised from `seed`, no checkpoint),
/// built directly on a loaded backbone.
inline vcpclip::model::AnomalyClip fresh_model(bool multi = false, int64_t seed = 111, double lambda = -1) {
  static const auto tokenizer = vcpclip::model::Tokenizer::load(vocab_path());
  auto o = options(multi, lambda);
  o.init_seed = static_cast<uint64_t>(seed);
  return vcpclip::model::AnomalyClip(backbone(), o,
                                     [](const std::vector<std::string>& t) { return tokenizer.tokenize(t); });
}

/// The same through the registry (build_method, then the weights) with the fixture's checkpoint
/// loaded (load_method_checkpoint), in eval mode.
inline vcpclip::model::AnomalyClip model(bool multi = false, double lambda = -1) {
  auto m = vcpclip::model::build_method(options(multi, lambda), c10::Device(c10::kCPU));
  vcpclip::model::load_method_checkpoint(*m, path(manifest().at("checkpoint").get<std::string>()));
  m->eval();
  return vcpclip::model::AnomalyClip(std::dynamic_pointer_cast<vcpclip::model::AnomalyClipImpl>(m.ptr()));
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace anomaly_clip_fixture
