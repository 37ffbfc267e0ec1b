// Few-shot reference memory (see include/vcpclip/model/reference_memory.h, docs/design.md §13).
#include "vcpclip/model/reference_memory.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
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
constexpr int kVersion = 2;  // 2: with the normal level and scale (1 still loads)

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

at::Tensor augmented_views(const at::Tensor& image, int64_t patch) {
  const auto img = image.dim() == 3 ? image.unsqueeze(0) : image;
  VCP_CHECK(img.dim() == 4 && img.size(0) == 1, "augmented views: expected one image [1, 3, S, S], found ",
            shape_text(image.sizes()));
  VCP_CHECK(patch >= 1, "augmented views: patch must be ≥ 1, found ", patch);
  // affine_grid maps output to input coordinates in [-1, 1]: a translation of t moves the image by
  // t·S/2 pixels, so half a patch is t = patch / S.
  const double t = static_cast<double>(patch) / static_cast<double>(img.size(3));
  const double a = 5.0 * 3.14159265358979323846 / 180.0, c = std::cos(a), s = std::sin(a);
  const std::vector<double> theta = {1, 0, t, 0, 1, 0,  1, 0,  -t, 0, 1, 0, 1, 0, 0, 0,  1, t,
                                     1, 0, 0, 0, 1, -t, c, -s, 0,  s, c, 0, c, s, 0, -s, c, 0};
  const auto th = at::tensor(theta, at::kDouble).reshape({6, 2, 3}).to(img.options().dtype(at::kFloat));
  const auto src = img.to(at::kFloat).expand({6, img.size(1), img.size(2), img.size(3)}).contiguous();
  const auto grid = at::affine_grid_generator(th, {6, img.size(1), img.size(2), img.size(3)}, false);
  return at::grid_sampler(src, grid, /*bilinear*/ 0, /*reflection*/ 2, false).to(img.scalar_type());
}

at::Tensor normal_distances(const at::Tensor& features, int64_t k, const at::Tensor& view_tokens) {
  VCP_CHECK(k >= 1 && features.dim() == 2 && features.size(0) % k == 0, "normal distances: a memory ",
            shape_text(features.sizes()), " does not hold ", k, " reference image(s)");
  const auto mem = features.to(at::kFloat);
  if (k >= 2) {  // leave-one-out: each reference against the others
    const int64_t n = mem.size(0) / k;
    std::vector<at::Tensor> d;
    for (int64_t i = 0; i < k; ++i) {
      const auto others = at::cat({mem.slice(0, 0, i * n), mem.slice(0, (i + 1) * n)}, 0);
      d.push_back(1.0 - std::get<0>(at::matmul(mem.slice(0, i * n, (i + 1) * n), others.t()).max(1)));
    }
    return at::cat(d, 0);
  }
  VCP_CHECK(view_tokens.defined() && view_tokens.dim() == 3 && view_tokens.size(2) == mem.size(1),
            "normal distances: one reference needs the tokens [V, 1+G², ", mem.size(1), "] of its augmented views");
  const auto t = view_tokens.slice(1, 1);
  return 1.0 - std::get<0>(at::matmul(normalise_rows(t.reshape({-1, t.size(2)})), mem.t()).max(1));
}

namespace {

/// Level (mean) and scale (population standard deviation, at least 1e-6) of each layer's normal
/// distances, leave-one-out (K ≥ 2) or over augmented_views of the one reference (K = 1).
void compute_normal_stats(MethodImpl& model, const at::Tensor& images, ReferenceMemory& mem) {
  const int64_t k = images.size(0);
  std::vector<at::Tensor> view_tokens(mem.layers.size());
  if (k == 1) {
    const int64_t n = mem.features[0].size(0);
    const auto g = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
    view_tokens = model.encode_layers(augmented_views(images, images.size(3) / g / 2), mem.layers);
  }
  at::Tensor z;  // D̂ of the normal patches (the same patch order in every layer)
  for (size_t l = 0; l < mem.layers.size(); ++l) {
    const auto d = normal_distances(mem.features[l], k, view_tokens[l]).to(at::kDouble);
    mem.normal_level.push_back(d.mean().item<double>());
    mem.normal_scale.push_back(std::max(1e-6, d.std(/*unbiased=*/false).item<double>()));
    const auto zl = (d - mem.normal_level.back()) / mem.normal_scale.back();
    z = z.defined() ? z + zl : zl;
  }
  mem.normal_max = (z / static_cast<double>(mem.layers.size())).max().item<double>();
}

}  // namespace

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
  compute_normal_stats(model, images, mem);
  return mem;
}

at::Tensor few_shot_map(const ReferenceMemory& memory, const std::vector<at::Tensor>& tokens, int64_t size) {
  return few_shot_maps(memory, tokens, size).raw;
}

FewShotMaps few_shot_maps(const ReferenceMemory& memory, const std::vector<at::Tensor>& tokens, int64_t size) {
  VCP_CHECK(tokens.size() == memory.layers.size(), "few-shot map: ", tokens.size(), " token tensors for ",
            memory.layers.size(), " memory layers");
  const bool stats = memory.has_normal_stats();
  VCP_CHECK(!stats || (memory.normal_level.size() == tokens.size() && memory.normal_scale.size() == tokens.size()),
            "few-shot map: the normal statistics cover ", memory.normal_level.size(), " layers, the memory ",
            tokens.size());
  FewShotMaps out;
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
    const auto up = at::upsample_bilinear2d(dist, {size, size}, true).squeeze(1).to(at::kFloat);
    out.raw = out.raw.defined() ? out.raw + up : up;
    if (!stats) continue;
    const auto z = (up - static_cast<float>(memory.normal_level[l])) / static_cast<float>(memory.normal_scale[l]);
    out.normalized = out.normalized.defined() ? out.normalized + z : z;
  }
  if (stats) out.normalized = out.normalized / static_cast<float>(tokens.size());
  return out;
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
                               {"identity", identity_json(memory.identity)},
                               {"normal_level", memory.normal_level},
                               {"normal_scale", memory.normal_scale},
                               {"normal_max", memory.normal_max}};
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
  const auto version = file.metadata.count("version") ? file.metadata.at("version") : std::string();
  VCP_CHECK(version == "1" || version == std::to_string(kVersion), "reference memory ", path,
            " has an unsupported version '", version, "' (expected 1 or ", kVersion, ")");
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
  if (version != "1") {
    m.normal_level = meta_value<std::vector<double>>(info, "normal_level", path);
    m.normal_scale = meta_value<std::vector<double>>(info, "normal_scale", path);
    m.normal_max = meta_value<double>(info, "normal_max", path);
    VCP_CHECK(m.normal_level.size() == m.layers.size() && m.normal_scale.size() == m.layers.size(), "reference memory ",
              path, ": normal statistics for ", m.normal_level.size(), " and ", m.normal_scale.size(),
              " layers, expected ", m.layers.size());
  }
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
