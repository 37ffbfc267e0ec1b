// Pre-VCP: image-conditioned class tokens (docs/design.md §3).
#include "vcpclip/model/pre_vcp.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>

namespace vcpclip::model {
namespace {

/// In-place truncated normal N(0, 1) restricted to [-2, 2] by inverse-CDF sampling (the method of
/// torch.nn.init.trunc_normal_).
void trunc_normal_(at::Tensor& t, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0) {
  at::NoGradGuard no_grad;
  auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  double l = cdf((a - mean) / std), u = cdf((b - mean) / std);
  t.uniform_(2 * l - 1, 2 * u - 1);
  t.erfinv_();
  t.mul_(std * std::sqrt(2.0));
  t.add_(mean);
  t.clamp_(a, b);
}

}  // namespace

PromptConvImpl::PromptConvImpl(int64_t prompt_len) {
  // Conv1d(1 → r, kernel 3, padding "same" = 1 for an odd kernel), default (PyTorch) init.
  fc = register_module("fc", torch::nn::Conv1d(torch::nn::Conv1dOptions(1, prompt_len, 3).stride(1).padding(1)));
}

torch::Tensor PromptConvImpl::forward(const torch::Tensor& x) { return fc->forward(x); }

ContextPromptingImpl::ContextPromptingImpl(int64_t width, int64_t prompt_len) : prompt_len_(prompt_len) {
  // Registration order = the reference state_dict order: prompt_query, prompt_temp, prompt_linear1.fc.*
  // (the reference draws prompt_query, then the conv, then trunc-normal over prompt_query).
  prompt_query = register_parameter("prompt_query", at::randn({1, prompt_len, width}));
  prompt_linear1 = register_module("prompt_linear1", PromptConv(prompt_len));
  prompt_temp = register_parameter("prompt_temp", at::full({}, std::log(1.0 / 0.07)));
  trunc_normal_(prompt_query);
}

torch::Tensor ContextPromptingImpl::forward(const torch::Tensor& global, bool use_global) {
  const int64_t b = global.size(0), e = global.size(1);
  if (!use_global) return prompt_query.expand({b, prompt_len_, prompt_query.size(2)});
  auto ctx = prompt_linear1->forward(global.reshape({b, 1, e}));  // [B, r, E]
  return prompt_query + ctx;
}

}  // namespace vcpclip::model
