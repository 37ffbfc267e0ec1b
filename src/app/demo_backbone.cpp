// The demo backbone: random ViT with a whitened patch embedding and a token offset (see
// include/vcpclip/app/demo_backbone.h).
#include "vcpclip/app/demo_backbone.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "vcpclip/app/config/run_util.h"
#include "vcpclip/common/error.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/safetensors.h"
#include "vcpclip/model/clip_model.h"

namespace fs = std::filesystem;

namespace vcpclip::app {
namespace {

/// What the file depends on: the recipe, the backbone, the working size and the images.
nlohmann::json fingerprint(const BackboneRecipe& r, const model::ModelOptions& m,
                           const std::vector<data::SampleInfo>& samples) {
  std::ifstream in(m.backbone);
  const std::string json_text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json images = nlohmann::json::array();
  for (const auto& s : samples) {
    std::error_code ec;
    const auto size = fs::file_size(s.image_path, ec);
    const auto time = fs::last_write_time(s.image_path, ec).time_since_epoch().count();
    images.push_back({s.image_path, ec ? -1 : static_cast<int64_t>(size), static_cast<int64_t>(time)});
  }
  return {{"patches", r.patches},           {"whiten_eps", r.whiten_eps},
          {"token_offset", r.token_offset}, {"seed", r.seed},
          {"backbone", json_text},          {"activation", model::to_string(m.activation)},
          {"image_size", m.input_size},     {"images", images}};
}

/// [N, 3·p²] patches of the images on the model's grid at size S, at most `limit` (seeded sample).
at::Tensor sample_patches(const std::vector<data::SampleInfo>& samples, int64_t S, int64_t p, int64_t limit,
                          uint64_t seed) {
  std::vector<at::Tensor> all;
  for (const auto& s : samples) {
    const at::Tensor img = data::load_image(s.image_path, S);                   // [3,S,S]
    all.push_back(at::im2col(img.unsqueeze(0), {p, p}, {1, 1}, {0, 0}, {p, p})  // [1, 3p², G²]
                      .squeeze(0)
                      .t());
  }
  at::Tensor patches = at::cat(all, 0).to(at::kDouble);
  if (patches.size(0) > limit) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    patches = patches.index_select(0, at::randperm(patches.size(0), gen, at::kLong).slice(0, 0, limit));
  }
  return patches;
}

/// conv1 weights [W, 3, p, p]: R · ZCA(patches).
at::Tensor whitened_filters(const at::Tensor& patches, int64_t width, int64_t p, double eps, uint64_t seed) {
  const at::Tensor centred = patches - patches.mean(0, true);
  const at::Tensor cov = centred.t().matmul(centred) / static_cast<double>(std::max<int64_t>(1, patches.size(0) - 1));
  const auto [e, u] = at::linalg_eigh(cov);
  const at::Tensor zca = u.matmul(at::diag((e.clamp_min(0) + eps).rsqrt())).matmul(u.t());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
  const int64_t d = 3 * p * p;
  const at::Tensor r = at::normal(0.0, 1.0 / std::sqrt(static_cast<double>(d)), {width, d}, gen, at::kDouble);
  return r.matmul(zca).to(at::kFloat).reshape({width, 3, p, p});
}

}  // namespace

BackboneRecipe parse_backbone_recipe(io::ConfigNode& node) {
  BackboneRecipe r;
  r.out = node.require<std::string>("out");
  VCP_CHECK(!r.out.empty(), "config key ", node.where("out"), ": must not be empty");
  r.patches = node.get<int64_t>("patches", r.patches);
  VCP_CHECK(r.patches >= 100, "config key ", node.where("patches"), ": expected at least 100, found ", r.patches);
  r.whiten_eps = node.get<double>("whiten_eps", r.whiten_eps);
  VCP_CHECK(r.whiten_eps > 0, "config key ", node.where("whiten_eps"), ": expected > 0, found ", r.whiten_eps);
  r.token_offset = node.get<double>("token_offset", r.token_offset);
  VCP_CHECK(r.token_offset >= 0, "config key ", node.where("token_offset"), ": expected >= 0, found ", r.token_offset);
  const int64_t seed = node.get<int64_t>("seed", static_cast<int64_t>(r.seed));
  VCP_CHECK(seed >= 0, "config key ", node.where("seed"), ": expected 0 or more, found ", seed);
  r.seed = static_cast<uint64_t>(seed);
  node.finish();
  return r;
}

bool ensure_backbone(const BackboneRecipe& r, const model::ModelOptions& m, const data::DataOptions& images) {
  const auto samples = data::read_samples(images);
  VCP_CHECK(!samples.empty(), "demo backbone: no images in ", images.root, " (split ", images.split, ")");
  const std::string marker = r.out + ".json";
  const nlohmann::json want = fingerprint(r, m, samples);
  if (fs::exists(r.out) && fs::exists(marker)) {
    std::ifstream in(marker);
    if (nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false) == want) {
      spdlog::info("demo backbone: reusing {}", r.out);
      return false;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  model::ClipConfig cfg = model::ClipConfig::from_json_file(m.backbone);
  cfg.activation = m.activation;
  torch::manual_seed(r.seed);
  model::ClipModel clip(cfg);
  const int64_t p = cfg.vision.patch_size, width = cfg.vision.width;
  VCP_CHECK(m.input_size % p == 0, "demo backbone: model.input_size ", m.input_size,
            " is not a multiple of the patch size ", p, " of ", m.backbone);
  const at::Tensor patches = sample_patches(samples, m.input_size, p, r.patches, r.seed);
  torch::NoGradGuard no_grad;
  clip->visual->conv1->weight.copy_(whitened_filters(patches, width, p, r.whiten_eps, r.seed));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(r.seed + 2);
  const at::Tensor dir = at::normal(0.0, 1.0, {width}, gen, at::kFloat);
  clip->visual->positional_embedding.add_(dir * (r.token_offset / dir.norm().item<double>()));
  std::map<std::string, at::Tensor> tensors;
  for (const auto& kv : clip->named_parameters(true)) tensors[kv.key()] = kv.value().detach().contiguous();
  fs::create_directories(fs::path(r.out).parent_path());
  fs::remove(marker);
  io::write_safetensors(r.out, tensors);
  io::write_file_atomically(marker, want.dump(1) + "\n");
  spdlog::info("demo backbone: {} ({} x {} patches from {} images of {}, whitened conv1, token offset {}) in {:.1f} s",
               r.out, patches.size(0), patches.size(1), samples.size(), images.root, r.token_offset, seconds_since(t0));
  return true;
}

}  // namespace vcpclip::app
