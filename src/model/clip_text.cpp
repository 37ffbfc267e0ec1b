// The whole CLIP backbone: vision tower + text tower with OpenAI's parameter names (docs/design.md §2).
#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>
#include <limits>

#include "clip_internal.h"
#include "vcpclip/common/error.h"
#include "vcpclip/model/clip_model.h"

namespace vcpclip::model {

ClipModelImpl::ClipModelImpl(const ClipConfig& cfg, bool random_init) : cfg_(cfg) {
  cfg.validate("model '" + cfg.name + "'");
  const int64_t wt = cfg.text.width;
  visual = register_module("visual", ClipVision(cfg.vision, cfg.embed_dim, cfg.activation, random_init));
  auto transformer = register_module("transformer", std::make_shared<torch::nn::Module>());
  resblocks = transformer->register_module("resblocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.text.layers; ++i)
    resblocks->push_back(ResidualBlock(wt, cfg.text.heads, cfg.activation, random_init));
  if (random_init) init_blocks(resblocks, wt);
  auto emb = torch::nn::EmbeddingOptions(cfg.text.vocab_size + 1, wt);
  if (!random_init) emb._weight(torch::empty({cfg.text.vocab_size + 1, wt}));  // loaded next: no init
  token_embedding = register_module("token_embedding", torch::nn::Embedding(emb));
  positional_embedding = register_parameter("positional_embedding", torch::empty({cfg.text.context_length, wt}));
  ln_final = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({wt}).eps(1e-5)));
  text_projection = register_parameter("text_projection", torch::empty({wt, cfg.embed_dim}));
  logit_scale = register_parameter("logit_scale", torch::full({}, std::log(1.0 / 0.07)));
  if (random_init) {
    torch::NoGradGuard ng;
    token_embedding->weight.normal_(0, 0.02);
    token_embedding->weight[cfg.text.vocab_size].zero_();  // <|class|> row
    positional_embedding.normal_(0, 0.01);
    text_projection.normal_(0, std::pow(wt, -0.5));
  }
}

const ClipConfig& ClipModelImpl::config() const { return cfg_; }

torch::Tensor ClipModelImpl::causal_mask(int64_t length, const c10::Device& device, c10::ScalarType dtype) {
  if (!mask_cache_.defined() || mask_cache_.size(0) != length || mask_cache_.device() != device ||
      mask_cache_.scalar_type() != dtype) {
    auto m = at::full({length, length}, -std::numeric_limits<float>::infinity(),
                      at::TensorOptions().dtype(dtype).device(device));
    mask_cache_ = m.triu(1);
  }
  return mask_cache_;
}

torch::Tensor ClipModelImpl::embed_tokens(const torch::Tensor& ids) {
  return at::embedding(token_embedding->weight, ids.to(at::kLong));
}

torch::Tensor ClipModelImpl::text_positional_embedding() { return positional_embedding; }

torch::Tensor ClipModelImpl::run_text_transformer(
    torch::Tensor x, const std::function<torch::Tensor(int64_t, torch::Tensor)>& before_block) {
  VCP_CHECK(x.dim() == 3 && x.size(2) == cfg_.text.width, "text transformer expects [N, L, ", cfg_.text.width,
            "], found ", x.sizes());
  for (int64_t i = 0; i < static_cast<int64_t>(resblocks->size()); ++i) {
    if (before_block) x = before_block(i, std::move(x));
    auto mask = causal_mask(x.size(1), x.device(), x.scalar_type());
    x = resblocks->ptr<ResidualBlockImpl>(i)->forward(x, mask, /*causal=*/true);
  }
  return x;
}

torch::Tensor ClipModelImpl::ln_final_forward(const torch::Tensor& x) {
  return at::layer_norm(x, {cfg_.text.width}, ln_final->weight, ln_final->bias, 1e-5);
}

torch::Tensor ClipModelImpl::text_projection_weight() { return text_projection; }

torch::Tensor ClipModelImpl::encode_text(const torch::Tensor& ids) {
  VCP_CHECK(ids.dim() == 2 && ids.size(1) == cfg_.text.context_length, "encode_text expects token ids [N, ",
            cfg_.text.context_length, "], found ", ids.sizes());
  auto ids64 = ids.to(at::kLong);
  // EOT = the largest id of the vocabulary (OpenAI's argmax); <|class|> ids are not counted.
  auto eot = ids64.masked_fill(ids64 >= cfg_.text.vocab_size, -1).argmax(-1);
  // Causal mask: rows after the last EOT cannot change any EOT row, so they are not computed.
  const int64_t len = eot.max().item<int64_t>() + 1;
  auto x = embed_tokens(ids64.slice(1, 0, len)) + positional_embedding.slice(0, 0, len);
  x = ln_final_forward(run_text_transformer(x));
  auto rows = x.gather(1, eot.view({-1, 1, 1}).expand({-1, 1, x.size(2)})).squeeze(1);
  return at::matmul(rows, text_projection.to(rows.scalar_type()));
}

void ClipModelImpl::set_block_dtype(c10::ScalarType dtype) {
  // The vision tower's attention and MLP weights only: LayerNorms, the residual stream and the
  // attention scores stay fp32 (ResidualBlockImpl::forward), and so does the text tower, which runs
  // on ~12 positions only (its share of the time is small, its effect on every map is not).
  for (size_t i = 0; i < visual->resblocks->size(); ++i) {
    auto b = visual->resblocks->ptr<ResidualBlockImpl>(i);
    b->attn->to(dtype);
    b->mlp->to(dtype);
  }
}

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters(/*recurse=*/true)) n += p.numel();
  return n;
}

}  // namespace vcpclip::model
