// CLIP vision tower (docs/design.md §2): patch embedding, class token, positional embedding resized to
// any patch grid, pre-LN transformer; patch features of chosen blocks and the global feature.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <cmath>

#include "clip_internal.h"
#include "vcpclip/common/error.h"
#include "vcpclip/model/clip_model.h"

namespace vcpclip::model {

namespace {
/// OpenAI-style initialisation of one block (random-weight models: benches, tests).
void init_block(ResidualBlockImpl* b, int64_t width, int64_t layers) {
  torch::NoGradGuard ng;
  const double attn_std = std::pow(width, -0.5);
  const double proj_std = attn_std * std::pow(2.0 * layers, -0.5);
  const double fc_std = std::pow(2.0 * width, -0.5);
  b->attn->in_proj_weight.normal_(0, attn_std);
  b->attn->in_proj_bias.zero_();
  b->attn->out_proj->weight.normal_(0, proj_std);
  b->attn->out_proj->bias.zero_();
  b->mlp->c_fc->weight.normal_(0, fc_std);
  b->mlp->c_fc->bias.zero_();
  b->mlp->c_proj->weight.normal_(0, proj_std);
  b->mlp->c_proj->bias.zero_();
}
}  // namespace

void init_blocks(torch::nn::ModuleList& blocks, int64_t width) {
  for (size_t i = 0; i < blocks->size(); ++i) {
    init_block(blocks->ptr<ResidualBlockImpl>(i).get(), width, static_cast<int64_t>(blocks->size()));
  }
}

at::Tensor resize_positional_embedding_as(const at::Tensor& pos, int64_t grid, PositionalResize how) {
  VCP_CHECK(pos.dim() == 2, "positional embedding must be [G*G+1, W], found ", pos.sizes());
  const int64_t n = pos.size(0) - 1, w = pos.size(1);
  const auto g0 = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  VCP_CHECK(g0 * g0 == n, "positional embedding has ", pos.size(0), " rows, expected a square grid plus one");
  VCP_CHECK(grid > 0, "patch grid must be positive, found ", grid);
  if (g0 == grid) return pos;
  auto cls = pos.slice(0, 0, 1);
  auto img = pos.slice(0, 1).reshape({1, g0, g0, w}).permute({0, 3, 1, 2});
  if (how == PositionalResize::kBilinear)
    img = at::upsample_bilinear2d(img, {grid, grid}, /*align_corners=*/false);
  else
    img = at::_upsample_bicubic2d_aa(img, {grid, grid}, /*align_corners=*/false, c10::optional<double>(),
                                     c10::optional<double>());
  img = img.permute({0, 2, 3, 1}).reshape({grid * grid, w});
  return at::cat({cls, img}, 0);
}

torch::Tensor resize_positional_embedding(const torch::Tensor& pos, int64_t grid) {
  return resize_positional_embedding_as(pos, grid, PositionalResize::kBicubicAntialias);
}

ClipVisionImpl::ClipVisionImpl(const ClipVisionConfig& cfg, int64_t embed_dim, Activation activation, bool random_init)
    : cfg_(cfg), embed_dim_(embed_dim) {
  const int64_t w = cfg.width;
  VCP_CHECK(w % 64 == 0, "vision width ", w, " must be a multiple of 64 (heads = width / 64)");
  VCP_CHECK(cfg.image_size % cfg.patch_size == 0, "vision image_size ", cfg.image_size,
            " is not a multiple of patch_size ", cfg.patch_size);
  const int64_t grid = cfg.image_size / cfg.patch_size;
  const double scale = random_init ? std::pow(w, -0.5) : 0.0;
  auto init = [&](std::vector<int64_t> shape) {
    return random_init ? torch::randn(shape) * scale : torch::empty(shape);
  };
  conv1 = register_module(
      "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, w, cfg.patch_size).stride(cfg.patch_size).bias(false)));
  class_embedding = register_parameter("class_embedding", init({w}));
  positional_embedding = register_parameter("positional_embedding", init({grid * grid + 1, w}));
  ln_pre = register_module("ln_pre", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w}).eps(1e-5)));
  auto transformer = register_module("transformer", std::make_shared<torch::nn::Module>());
  resblocks = transformer->register_module("resblocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.layers; ++i) resblocks->push_back(ResidualBlock(w, cfg.heads(), activation, random_init));
  if (random_init) init_blocks(resblocks, w);
  ln_post = register_module("ln_post", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w}).eps(1e-5)));
  proj = register_parameter("proj", init({w, embed_dim}));
}

const ClipVisionConfig& ClipVisionImpl::config() const { return cfg_; }

torch::Tensor ClipVisionImpl::positional_embedding_for(int64_t grid) {
  const int64_t native = cfg_.image_size / cfg_.patch_size;
  if (grid == native) return positional_embedding;
  // Under autograd (the embedding trained) the resize must stay in the graph: no cache.
  if (c10::GradMode::is_enabled() && positional_embedding.requires_grad())
    return resize_positional_embedding(positional_embedding, grid);
  auto key = std::make_pair(grid, positional_embedding.device().str());
  auto& e = pos_cache_[key];
  const void* src = positional_embedding.data_ptr();
  const uint32_t ver = positional_embedding._version();
  if (!e.value.defined() || e.source != src || e.version != ver ||
      e.value.scalar_type() != positional_embedding.scalar_type()) {
    torch::NoGradGuard ng;
    e.value = resize_positional_embedding(positional_embedding, grid);
    e.source = src;
    e.version = ver;
  }
  return e.value;
}

VisionOutput ClipVisionImpl::forward(const torch::Tensor& images, const std::vector<int64_t>& features_list,
                                     bool need_global) {
  VCP_CHECK(images.dim() == 4 && images.size(1) == 3, "vision tower expects images [B, 3, S, S], found ",
            images.sizes());
  const int64_t s = images.size(2), p = cfg_.patch_size, w = cfg_.width;
  VCP_CHECK(images.size(3) == s && s % p == 0, "vision tower expects square images with a side that is a multiple of ",
            p, ", found ", images.size(2), "x", images.size(3));
  const int64_t layers = static_cast<int64_t>(resblocks->size());
  int64_t last = need_global ? layers : 0;
  for (auto l : features_list) {
    VCP_CHECK(l >= 1 && l <= layers, "feature layer ", l, " is out of range: the vision tower has blocks 1..", layers);
    last = std::max(last, l);
  }
  const int64_t b = images.size(0), grid = s / p;

  // Patch embedding [B, W, G, G] → tokens [B, G², W]; class token first; positional rows added.
  auto x = at::conv2d(images, conv1->weight, {}, {p, p});
  x = x.flatten(2).transpose(1, 2);
  auto cls = class_embedding.to(x.scalar_type()).view({1, 1, w}).expand({b, 1, w});
  x = at::cat({cls, x}, 1);
  x = x + positional_embedding_for(grid).to(x.scalar_type());
  x = at::layer_norm(x, {w}, ln_pre->weight, ln_pre->bias, 1e-5);

  // Keep only the requested block outputs alive.
  std::vector<torch::Tensor> outputs(static_cast<size_t>(last + 1));
  std::vector<char> wanted(static_cast<size_t>(last + 1), 0);
  for (auto l : features_list) wanted[l] = 1;
  for (int64_t i = 0; i < last; ++i) {
    x = resblocks->ptr<ResidualBlockImpl>(i)->forward(x);
    if (wanted[i + 1]) outputs[i + 1] = x;
  }
  VisionOutput out;
  out.patch_features.reserve(features_list.size());
  for (auto l : features_list) out.patch_features.push_back(outputs[l]);
  if (need_global) {
    auto g = at::layer_norm(x.select(1, 0), {w}, ln_post->weight, ln_post->bias, 1e-5);
    out.global = at::matmul(g, proj.to(g.scalar_type()));
  }
  return out;
}

}  // namespace vcpclip::model
