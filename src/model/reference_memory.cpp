// Few-shot reference memory (see include/vcpclip/model/reference_memory.h, docs/design.md §13).
#include "vcpclip/model/reference_memory.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "vcpclip/common/error.h"
#include "vcpclip/io/safetensors.h"
#include "vcpclip/io/sha256.h"
#include "vcpclip/model/method.h"

namespace vcpclip::model {

namespace {

constexpr const char* kFormat = "vcpclip-reference-memory";
constexpr int kVersion = 1;

/// Rows L2-normalised in float32 (a zero row stays zero, as scikit-learn's cosine_similarity).
at::Tensor normalise_rows(const at::Tensor& x) {
  const auto f = x.to(at::kFloat);
  return f / f.norm(2, {-1}, true).clamp_min(1e-30);
}

std::string layer_key(int64_t l) { return "layer_" + std::to_string(l); }

}  // namespace

std::string ReferenceMemory::fingerprint() const {
  std::string text = "layers";
  for (auto l : layers) text += " " + std::to_string(l);
  for (const auto& h : image_sha256) text += "\n" + h;
  return io::sha256_hex(text);
}

int64_t ReferenceMemory::bytes() const {
  int64_t n = 0;
  for (const auto& f : features) n += f.numel() * static_cast<int64_t>(f.element_size());
  return n;
}

ReferenceMemory ReferenceMemory::to(const at::Device& device) const {
  ReferenceMemory m = *this;
  for (auto& f : m.features) f = f.to(device);
  return m;
}

ReferenceMemory build_reference_memory(MethodImpl& model, const at::Tensor& images, const std::vector<int64_t>& layers,
                                       int64_t batch) {
  VCP_CHECK(images.dim() == 4 && images.size(0) >= 1,
            "reference memory: expected reference images [K, 3, S, S], found ", shape_text(images.sizes()));
  VCP_CHECK(!layers.empty(), "reference memory: no layers given");
  VCP_CHECK(batch >= 1, "reference memory: batch must be ≥ 1, found ", batch);
  std::vector<std::vector<at::Tensor>> parts(layers.size());
  for (int64_t i = 0; i < images.size(0); i += batch) {
    const auto chunk = images.slice(0, i, std::min(images.size(0), i + batch));
    const auto tokens = model.encode_layers(chunk, layers);
    for (size_t l = 0; l < layers.size(); ++l) {
      const auto t = tokens[l].slice(1, 1);  // drop the class token: [b, G², W]
      parts[l].push_back(normalise_rows(t.reshape({-1, t.size(2)})));
    }
  }
  ReferenceMemory mem;
  mem.layers = layers;
  for (auto& p : parts) mem.features.push_back(at::cat(p, 0).contiguous());
  return mem;
}

at::Tensor few_shot_map(const ReferenceMemory& memory, const std::vector<at::Tensor>& tokens, int64_t size) {
  VCP_CHECK(tokens.size() == memory.layers.size(), "few-shot map: ", tokens.size(), " token tensors for ",
            memory.layers.size(), " memory layers");
  at::Tensor sum;
  for (size_t l = 0; l < tokens.size(); ++l) {
    const auto& mem = memory.features[l];
    const auto t = tokens[l].slice(1, 1);  // [B, G², W]
    VCP_CHECK(t.size(2) == mem.size(1), "few-shot map: layer ", memory.layers[l], " has width ", t.size(2),
              " but the reference memory has width ", mem.size(1), " (a memory made with another model)");
    const int64_t b = t.size(0), n = t.size(1);
    const auto g = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
    VCP_CHECK(g * g == n, "few-shot map: ", n, " patch tokens do not form a square grid");
    // One matrix product per layer: [B·G², W] × [W, M] → best cosine per test patch.
    const auto cos = at::matmul(normalise_rows(t.reshape({b * n, t.size(2)})), mem.to(at::kFloat).t());
    const auto dist = (1.0 - std::get<0>(cos.max(1))).reshape({b, 1, g, g});
    auto up = at::upsample_bilinear2d(dist, {size, size}, true).squeeze(1);
    sum = sum.defined() ? sum.add_(up) : up;
  }
  return sum.to(at::kFloat);
}

namespace {

nlohmann::json identity_json(const ReferenceIdentity& id) {
  return {
      {"backbone_sha256", id.backbone_sha256},     {"weights_sha256", id.weights_sha256}, {"init_seed", id.init_seed},
      {"checkpoint_sha256", id.checkpoint_sha256}, {"image_size", id.input_size},         {"method", id.method}};
}

template <typename T>
T meta_value(const nlohmann::json& j, const char* key, const std::string& path) {
  VCP_CHECK(j.contains(key), "reference memory ", path, " lacks the metadata key '", key, "'");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("reference memory ", path, ": metadata key '", key, "' has the wrong type: ", j.at(key).dump());
  }
}

}  // namespace

void save_reference_memory(const ReferenceMemory& memory, const std::string& path) {
  std::map<std::string, at::Tensor> tensors;
  for (size_t l = 0; l < memory.layers.size(); ++l) tensors[layer_key(memory.layers[l])] = memory.features[l];
  const nlohmann::json info = {{"layers", memory.layers},
                               {"images", memory.images},
                               {"image_sha256", memory.image_sha256},
                               {"identity", identity_json(memory.identity)}};
  const std::map<std::string, std::string> meta = {
      {"vcpclip_format", kFormat}, {"version", std::to_string(kVersion)}, {"reference", info.dump()}};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  io::write_safetensors(tmp, tensors, meta);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp);
  VCP_CHECK(!ec, "cannot write reference memory ", path, ": ", ec.message());
}

ReferenceMemory load_reference_memory(const std::string& path) {
  VCP_CHECK(std::filesystem::is_regular_file(path), "reference memory ", path, " does not exist");
  const auto file = io::read_safetensors_with_metadata(path);
  const auto fmt = file.metadata.find("vcpclip_format");
  VCP_CHECK(fmt != file.metadata.end() && fmt->second == kFormat, "reference memory ", path,
            " is not a vcpclip reference memory (no vcpclip_format: ", kFormat, " in its metadata)");
  VCP_CHECK(file.metadata.count("version") && file.metadata.at("version") == std::to_string(kVersion),
            "reference memory ", path, " has an unsupported version (expected ", kVersion, ")");
  VCP_CHECK(file.metadata.count("reference"), "reference memory ", path, " lacks its 'reference' metadata");
  nlohmann::json info;
  try {
    info = nlohmann::json::parse(file.metadata.at("reference"));
  } catch (const nlohmann::json::exception& e) {
    fail("reference memory ", path, ": unreadable 'reference' metadata: ", e.what());
  }
  ReferenceMemory m;
  m.layers = meta_value<std::vector<int64_t>>(info, "layers", path);
  m.images = meta_value<std::vector<std::string>>(info, "images", path);
  m.image_sha256 = meta_value<std::vector<std::string>>(info, "image_sha256", path);
  const auto id = meta_value<nlohmann::json>(info, "identity", path);
  m.identity.backbone_sha256 = meta_value<std::string>(id, "backbone_sha256", path);
  m.identity.weights_sha256 = meta_value<std::string>(id, "weights_sha256", path);
  m.identity.init_seed = meta_value<int64_t>(id, "init_seed", path);
  m.identity.checkpoint_sha256 = meta_value<std::string>(id, "checkpoint_sha256", path);
  m.identity.input_size = meta_value<int64_t>(id, "image_size", path);
  if (id.contains("method")) m.identity.method = meta_value<std::string>(id, "method", path);  // else vcp_clip
  VCP_CHECK(!m.layers.empty() && m.images.size() == m.image_sha256.size() && !m.images.empty(), "reference memory ",
            path, ": inconsistent metadata (", m.layers.size(), " layers, ", m.images.size(), " images, ",
            m.image_sha256.size(), " image hashes)");
  for (auto l : m.layers) {
    const auto it = file.tensors.find(layer_key(l));
    VCP_CHECK(it != file.tensors.end(), "reference memory ", path, " lacks the tensor '", layer_key(l), "'");
    VCP_CHECK(it->second.dim() == 2 && it->second.size(0) % m.shots() == 0, "reference memory ", path, ": tensor '",
              layer_key(l), "' has shape ", shape_text(it->second.sizes()), ", expected [K·G², W] for K = ", m.shots());
    m.features.push_back(it->second);
  }
  VCP_CHECK(file.tensors.size() == m.layers.size(), "reference memory ", path, " holds ", file.tensors.size(),
            " tensors for ", m.layers.size(), " layers");
  return m;
}

void check_reference_identity(const ReferenceMemory& memory, const ReferenceIdentity& run, const std::string& origin) {
  const auto& m = memory.identity;
  VCP_CHECK(m.method == run.method, "reference memory ", origin, " was made with method ", m.method,
            ", but this run's model.method is ", run.method, "; build it again for this method");
  auto refuse = [&](const std::string& what, const std::string& a, const std::string& b) {
    fail("reference memory ", origin, " was made with another model: ", what, " ", a.empty() ? "(none)" : a,
         " in the memory, ", b.empty() ? "(none)" : b, " in this run; build it again for this model");
  };
  if (m.backbone_sha256 != run.backbone_sha256) refuse("backbone SHA-256", m.backbone_sha256, run.backbone_sha256);
  if (m.weights_sha256 != run.weights_sha256) refuse("weights SHA-256", m.weights_sha256, run.weights_sha256);
  if (m.weights_sha256.empty() && m.init_seed != run.init_seed)
    refuse("random backbone init_seed", std::to_string(m.init_seed), std::to_string(run.init_seed));
  if (m.checkpoint_sha256 != run.checkpoint_sha256)
    refuse("checkpoint SHA-256", m.checkpoint_sha256, run.checkpoint_sha256);
  if (m.input_size != run.input_size)
    refuse("image_size", std::to_string(m.input_size), std::to_string(run.input_size));
}

}  // namespace vcpclip::model
