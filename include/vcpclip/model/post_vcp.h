#pragma once
// Post-VCP (docs/design.md §5; reference class Zero_Parameter, checkpoint key "Zero_try"): the two text
// embeddings attend over the L2-normalised patch features of one layer (shared by all layers).
// Parameter names (exactly the reference state_dict keys; Conv1d k=1 weights are [out, in, 1]):
//   prompt_temp_l1 [] (τ2, init ln(1/0.07)),
//   q_proj_pre.{weight [W_v, E, 1], bias}, k_proj_pre_1.{weight [W_v, W_v, 1], bias},
//   v_proj_pre_1.{weight, bias}, proj_post_t.{weight [W_v, W_v, 1], bias}
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>

namespace vcpclip::model {

class PostVcpImpl : public torch::nn::Module {
 public:
  /// vision_width = W_v (= dim_out), text_dim = E; heads divide W_v. Default Conv1d init
  /// (global torch RNG), prompt_temp_l1 = ln(1/0.07).
  PostVcpImpl(int64_t vision_width, int64_t text_dim, int64_t heads = 8);

  /// text [B, T, E] (T = 2: normal, anomalous; L2-normalised text features),
  /// patches [B, N, W_v] (L2-normalised patch tokens, no class token)
  /// → updated text embeddings T' [B, T, W_v], L2-normalised. Attention softmax over the N
  /// patches per head, no 1/sqrt(d) scaling.
  torch::Tensor forward(const torch::Tensor& text, const torch::Tensor& patches);

  /// logits [B, N, T] = exp(prompt_temp_l1) · patches · forward(text, patches)ᵀ
  torch::Tensor logits(const torch::Tensor& text, const torch::Tensor& patches);

  int64_t heads() const { return heads_; }

  torch::nn::Conv1d q_proj_pre{nullptr}, k_proj_pre_1{nullptr}, v_proj_pre_1{nullptr}, proj_post_t{nullptr};
  torch::Tensor prompt_temp_l1;  ///< []

 private:
  int64_t heads_;
};
TORCH_MODULE(PostVcp);

}  // namespace vcpclip::model
