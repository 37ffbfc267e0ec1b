#pragma once
// Text encoding with visual context (docs/design.md §4): the prompt templates, the splice of the r
// image-conditioned class tokens at <|class|>, the deep text prompts, and the batched text-tower
// pass (all images × all templates at once).
#include <ATen/core/Tensor.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vcpclip/model/clip_model.h"

namespace vcpclip::model {

/// The tokenized templates, normal first then anomalous.
struct TokenizedTemplates {
  at::Tensor ids;                  ///< [T, 77] int64 (CPU)
  std::vector<int64_t> class_pos;  ///< p: position of <|class|> (id 49408) per template
  std::vector<int64_t> eot_pos;    ///< e: position of <|endoftext|> (id 49407) per template
  int64_t num_normal = 0;          ///< the first num_normal rows are normal templates
  int64_t num_abnormal = 0;
  int64_t size() const { return num_normal + num_abnormal; }
};

/// texts → [N, 77] int64 ids (e.g. a lambda around Tokenizer::tokenize).
using TokenizeFn = std::function<at::Tensor(const std::vector<std::string>&)>;

/// Tokenizes the templates and checks each has exactly one <|class|> and room for the r class
/// tokens and the n prompt rows (e + r - 1 < 77 - n). Errors name the template.
TokenizedTemplates tokenize_templates(const TokenizeFn& tokenize, const std::vector<std::string>& normal,
                                      const std::vector<std::string>& abnormal, int64_t prompt_len,
                                      int64_t deep_prompt_len);

/// Builds TokenizedTemplates from already tokenized ids [T, 77] (checks as above).
TokenizedTemplates templates_from_ids(const at::Tensor& ids, int64_t num_normal, int64_t prompt_len,
                                      int64_t deep_prompt_len);

/// Non-owning view of the deep text prompt parameters (they live in VcpHead, top-level names).
struct DeepPrompts {
  at::Tensor shallow;                  ///< prompt_embeddings [1, n, W_t]
  at::Tensor deep;                     ///< deep_prompt_embeddings [D, n, W_t]; undefined when D = 0
  torch::nn::Linear proj{nullptr};     ///< prompt_proj
  torch::nn::LayerNorm norm{nullptr};  ///< prompt_norm (eps 1e-6)
  int64_t layers = 0;                  ///< D (0 = shallow: no prompts, no prompt_norm)
  double dropout = 0.0;                ///< applied to projected prompts when `training`
  bool training = false;
};

/// x' for every (image, template): token embeddings of the templates with rows p replaced by the
/// r class tokens and the rest shifted by r - 1 (length 77), positional embedding added.
/// class_tokens [B, r, W_t] → [B*T, 77, W_t] (image-major: row b*T + t).
at::Tensor splice_class_tokens(ClipModelImpl& clip, const TokenizedTemplates& templates,
                               const at::Tensor& class_tokens);

/// The full text pass: splice, deep prompts, text blocks, prompt_norm, ln_final, row e+r-1 @
/// text_projection, L2-normalise, mean over the templates of each kind, L2-normalise.
/// Returns T [B, 2, E] (row 0 normal, row 1 anomalous). Differentiable w.r.t. class_tokens and
/// the prompt parameters (runs with autograd if GradMode is on).
at::Tensor encode_text_with_context(ClipModelImpl& clip, const TokenizedTemplates& templates,
                                    const at::Tensor& class_tokens, const DeepPrompts& prompts);

}  // namespace vcpclip::model
