// Pre-LayerNorm residual block shared by both CLIP towers (DESIGN §2), batch-first.
#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>

#include "vcpclip/common/error.h"
#include "vcpclip/model/clip_model.h"

namespace vcpclip::model {

Activation parse_activation(const std::string& name) {
  if (name == "gelu") return Activation::kGelu;
  if (name == "quick_gelu") return Activation::kQuickGelu;
  fail("unknown CLIP activation '", name, "' (expected 'gelu' or 'quick_gelu')");
}

torch::Tensor apply_activation(const torch::Tensor& x, Activation act) {
  if (act == Activation::kGelu) return at::gelu(x);  // exact (erf) form
  return x * at::sigmoid(x * 1.702);
}

// ------------------------------------------------------------------------------------------
PackedAttentionImpl::PackedAttentionImpl(int64_t width_, int64_t heads_) : width(width_), heads(heads_) {
  VCP_CHECK(heads > 0 && width % heads == 0, "attention width ", width, " is not divisible by ", heads, " heads");
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * width, width}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * width}));
  out_proj = register_module("out_proj", torch::nn::Linear(width, width));
}

torch::Tensor PackedAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const int64_t n = x.size(0), len = x.size(1), hd = width / heads;
  // [N, L, 3W] → [3, N, H, L, hd]: q, k, v rows of the packed projection in that order.
  auto qkv = at::linear(x, in_proj_weight, in_proj_bias).view({n, len, 3, heads, hd}).permute({2, 0, 3, 1, 4});
  auto q = qkv[0] / std::sqrt(static_cast<double>(hd));  // scaled before the product, as PyTorch's MHA
  auto k = qkv[1];
  auto v = qkv[2];
  auto scores = at::matmul(q, k.transpose(-2, -1));  // [N, H, L, L]
  if (mask.defined()) scores.add_(mask.to(scores.scalar_type()));
  auto probs = at::softmax(scores, -1);
  auto out = at::matmul(probs, v);  // [N, H, L, hd]
  out = out.transpose(1, 2).reshape({n, len, width});
  return at::linear(out, out_proj->weight, out_proj->bias);
}

// ------------------------------------------------------------------------------------------
MlpImpl::MlpImpl(int64_t width, Activation act_) : act(act_) {
  c_fc = register_module("c_fc", torch::nn::Linear(width, 4 * width));
  c_proj = register_module("c_proj", torch::nn::Linear(4 * width, width));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  auto h = apply_activation(at::linear(x, c_fc->weight, c_fc->bias), act);
  return at::linear(h, c_proj->weight, c_proj->bias);
}

// ------------------------------------------------------------------------------------------
ResidualBlockImpl::ResidualBlockImpl(int64_t width, int64_t heads, std::string activation) {
  auto act = parse_activation(activation);
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-5)));
  attn = register_module("attn", PackedAttention(width, heads));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-5)));
  mlp = register_module("mlp", Mlp(width, act));
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const int64_t w = x.size(-1);
  auto h = attn->forward(at::layer_norm(x, {w}, ln_1->weight, ln_1->bias, 1e-5), mask);
  h.add_(x);  // h is a fresh tensor: accumulate the residual in place
  auto out = mlp->forward(at::layer_norm(h, {w}, ln_2->weight, ln_2->bias, 1e-5));
  out.add_(h);
  return out;
}

}  // namespace vcpclip::model
