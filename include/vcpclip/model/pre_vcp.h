#pragma once
// Pre-VCP (docs/design.md §3; reference class Context_Prompting, checkpoint key "New_Lan_Embed"):
// turns the global image feature into r image-conditioned class-word tokens.
// Parameter names (exactly the reference state_dict keys):
//   prompt_query [1, r, E], prompt_temp [] (τ1, init ln(1/0.07)),
//   prompt_linear1.fc.weight [r, 1, 3], prompt_linear1.fc.bias [r]   (Conv1d 1→r, k 3, "same")
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>

namespace vcpclip::model {

/// Holder of the Conv1d so that its names are "prompt_linear1.fc.*" (reference class Linear1).
class PromptConvImpl : public torch::nn::Module {
 public:
  PromptConvImpl(int64_t prompt_len);
  /// [B, 1, E] → [B, r, E]
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv1d fc{nullptr};
};
TORCH_MODULE(PromptConv);

class ContextPromptingImpl : public torch::nn::Module {
 public:
  /// width = E (= text width; the class tokens are spliced into the token embeddings).
  /// Init: prompt_query trunc-normal(0, 1, [-2, 2]); conv default (kaiming-uniform a=√5) init;
  /// prompt_temp = ln(1/0.07). Uses the global torch RNG (seed it before constructing).
  ContextPromptingImpl(int64_t width, int64_t prompt_len);

  /// global [B, E] (not normalised) → class tokens C [B, r, E] = prompt_query + conv(global)
  /// (use_global false: prompt_query broadcast to B).
  torch::Tensor forward(const torch::Tensor& global, bool use_global = true);

  int64_t prompt_len() const { return prompt_len_; }

  torch::Tensor prompt_query;  ///< [1, r, E]
  torch::Tensor prompt_temp;   ///< [] raw-branch temperature τ1 (logits scaled by exp(τ1))
  PromptConv prompt_linear1{nullptr};

 private:
  int64_t prompt_len_;
};
TORCH_MODULE(ContextPrompting);

}  // namespace vcpclip::model
