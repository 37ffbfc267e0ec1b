#pragma once
// AnomalyCLIP's object-agnostic prompt learner (docs/design.md "AnomalyCLIP"), with the official
// checkpoint's names ({'prompt_learner': state_dict}, in this order):
//   ctx_pos, ctx_neg                          [1, 1, n_ctx, W_t]  learned rows 1..n_ctx of the prompts
//   token_prefix_pos/neg                      [1, 1, 1, W_t]      buffer: the SOT token embedding
//   token_suffix_pos/neg                      [1, 1, 77-1-n_ctx, W_t] buffer: "object." / "damaged
//                                                                 object." + EOT + padding embeddings
//   tokenized_prompts_pos/neg                 [1, 1, 77] int32    buffer: the prompts' token ids
//   compound_prompts_text.0 .. depth-2        [t_n_ctx, W_t]      deep text prompts
//   compound_prompt_projections.N.{weight [896, W_t], bias [896]} never used by the official forward:
//                                                                 loaded, kept, written, never trained
// The prompts are "X X ... X object." (n_ctx X's) and "X ... X damaged object."; the X rows are
// replaced by ctx_pos / ctx_neg. At test time the prefix/suffix/ids buffers come from the
// checkpoint (nothing is recomputed from the tokenizer); a fresh learner builds them with
// set_token_buffers() from the tokenizer's ids and the backbone's token embedding, as the official
// constructor does.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/parameterlist.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vcpclip::model {

struct AnomalyPromptConfig {
  int64_t text_width = 768;        ///< W_t of the backbone's text tower
  int64_t context_length = 77;     ///< of the text tower
  int64_t n_ctx = 12;              ///< learned rows per prompt (official --n_ctx / Prompt_length)
  int64_t t_n_ctx = 4;             ///< rows of each deep text prompt (--t_n_ctx)
  int64_t depth = 9;               ///< --depth: deep prompts replace rows 1..t_n_ctx before text blocks 1..depth-1
  int64_t projection_width = 896;  ///< the unused projections' output width (hard-coded officially)

  /// Checks the sizes fit (n_ctx ≥ 1, 1 ≤ t_n_ctx ≤ n_ctx, depth ≥ 1, the prompts fit the context).
  void validate(const std::string& origin) const;
  /// Number of deep text prompts: depth − 1.
  int64_t compound_count() const { return depth - 1; }
};

class AnomalyPromptLearnerImpl : public torch::nn::Module {
 public:
  /// Random initialisation like the official constructor (from the global torch RNG; `seed` ≥ 0
  /// seeds it first): ctx_pos, ctx_neg ~ N(0, 0.02); deep prompts ~ N(0, 0.02); one Linear(W_t, 896)
  /// initialised as torch's and copied to every projection (the official _get_clones deep-copies one
  /// layer). The token buffers are zero until set_token_buffers() or a checkpoint fills them.
  explicit AnomalyPromptLearnerImpl(const AnomalyPromptConfig& cfg, int64_t seed = -1);

  /// The official prompt texts: {"X X … X object.", "X X … X damaged object."}.
  std::pair<std::string, std::string> prompt_texts() const;
  /// Fills the buffers from the token ids of prompt_texts() ([context_length] each) and the
  /// backbone's token embedding matrix [vocab(+1), W_t].
  void set_token_buffers(const at::Tensor& ids_pos, const at::Tensor& ids_neg, const at::Tensor& token_embedding);

  /// The prompt embeddings [2, 77, W_t] (normal, abnormal: prefix, ctx, suffix) and their token
  /// ids [2, 77] int64.
  std::pair<at::Tensor, at::Tensor> prompts() const;
  /// compound_prompts_text as a list (depth − 1 tensors [t_n_ctx, W_t]).
  std::vector<at::Tensor> compound_prompts() const;
  /// The trained tensors: ctx_pos, ctx_neg, compound_prompts_text.* (the projections are not).
  std::vector<at::Tensor> trainable_parameters() const;

  /// Every tensor of the official state_dict, in its order, by name (views, not copies).
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;
  /// Copies `tensors` in strictly: a missing, unexpected, mis-shaped tensor or a wrong kind
  /// (float vs integer) is a vcpclip::Error naming the key; `subject` names the source.
  void load_state(const std::map<std::string, at::Tensor>& tensors, const std::string& subject);

  const AnomalyPromptConfig& config() const { return cfg_; }

  at::Tensor ctx_pos, ctx_neg;
  at::Tensor token_prefix_pos, token_suffix_pos, token_prefix_neg, token_suffix_neg;
  at::Tensor tokenized_prompts_pos, tokenized_prompts_neg;
  torch::nn::ParameterList compound_prompts_text{nullptr};
  torch::nn::ModuleList compound_prompt_projections{nullptr};

 private:
  AnomalyPromptConfig cfg_;
};
TORCH_MODULE(AnomalyPromptLearner);

}  // namespace vcpclip::model
