// Post-VCP: text embeddings attend over the patch features (docs/design.md §5).
#include "vcpclip/model/post_vcp.h"

#include <ATen/ATen.h>

#include <cmath>

#include "vcpclip/common/error.h"

namespace vcpclip::model {
namespace {

/// A kernel-1 Conv1d applied to [B, L, C] rows = a linear map with weight [out, in, 1].
at::Tensor conv1x1(const torch::nn::Conv1d& conv, const at::Tensor& x) {
  return at::linear(x, conv->weight.squeeze(-1), conv->bias);
}

}  // namespace

PostVcpImpl::PostVcpImpl(int64_t vision_width, int64_t text_dim, int64_t heads) : heads_(heads) {
  VCP_CHECK(heads >= 1 && vision_width % heads == 0, "Post-VCP: ", heads, " heads do not divide the width ",
            vision_width);
  // Registration order = reference state_dict order (own parameter first, then the convs).
  prompt_temp_l1 = register_parameter("prompt_temp_l1", at::full({}, std::log(1.0 / 0.07)));
  q_proj_pre = register_module("q_proj_pre", torch::nn::Conv1d(torch::nn::Conv1dOptions(text_dim, vision_width, 1)));
  k_proj_pre_1 =
      register_module("k_proj_pre_1", torch::nn::Conv1d(torch::nn::Conv1dOptions(vision_width, vision_width, 1)));
  v_proj_pre_1 =
      register_module("v_proj_pre_1", torch::nn::Conv1d(torch::nn::Conv1dOptions(vision_width, vision_width, 1)));
  proj_post_t =
      register_module("proj_post_t", torch::nn::Conv1d(torch::nn::Conv1dOptions(vision_width, vision_width, 1)));
}

torch::Tensor PostVcpImpl::forward(const torch::Tensor& text, const torch::Tensor& patches) {
  const int64_t b = text.size(0), t = text.size(1), n = patches.size(1);
  const int64_t w = q_proj_pre->weight.size(0), d = w / heads_;
  auto q = conv1x1(q_proj_pre, text).view({b, t, heads_, d}).transpose(1, 2);       // [B, h, T, d]
  auto k = conv1x1(k_proj_pre_1, patches).view({b, n, heads_, d}).transpose(1, 2);  // [B, h, N, d]
  auto v = conv1x1(v_proj_pre_1, patches).view({b, n, heads_, d}).transpose(1, 2);  // [B, h, N, d]
  auto attn = at::matmul(q, k.transpose(-2, -1)).softmax(-1);                       // [B, h, T, N], no scaling
  auto out = at::matmul(attn, v).transpose(1, 2).reshape({b, t, w});                // [B, T, W]
  out = conv1x1(proj_post_t, out);
  return out / out.norm(2, {-1}, true);
}

torch::Tensor PostVcpImpl::logits(const torch::Tensor& text, const torch::Tensor& patches) {
  auto t2 = forward(text, patches);  // [B, T, W]
  return prompt_temp_l1.exp() * at::matmul(patches, t2.transpose(1, 2));
}

}  // namespace vcpclip::model
