#pragma once
// AnomalyCLIP (docs/design.md "AnomalyCLIP"): the frozen CLIP backbone (QuickGELU, as OpenAI's
// weights) + the object-agnostic prompt learner; DPAM vision forward, learned text, maps and
// image score as the official test.py computes them, before its gaussian (σ = 4, applied by the
// shared post-processing):
//
//   text  T = normalise(encode_text())                          [2, E] (normal, abnormal)
//   map   Σ_layers (p_abn + 1 − p_norm) / 2, p = bilinear_S(softmax(cos(patch, T) / 0.07))   [B, S, S]
//   score softmax(cos(image embedding, T) / 0.07)[:, 1]          [B]
//
// Only the prompt learner is trained; CLIP is frozen and always in eval mode.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vcpclip/io/checkpoint.h"
#include "vcpclip/model/anomaly_prompt_learner.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/model/dpam_vision.h"
#include "vcpclip/model/text_prompts.h"

namespace vcpclip::model {

/// The method's own settings (the official train.py / test.py arguments).
struct AnomalyClipOptions {
  int64_t n_ctx = 12;                  ///< --n_ctx
  int64_t t_n_ctx = 4;                 ///< --t_n_ctx
  int64_t depth = 9;                   ///< --depth (deep text prompts in text blocks 1..depth-1)
  int64_t dpam_layer = 0;              ///< DPAM_layer; 0 = default_dpam_layer(vision layers) (20 of 24)
  std::vector<int64_t> features_list;  ///< 1-based vision blocks; empty = the last block only (train.sh/test.sh)
  double lambda = 4.0;                 ///< loss: CE + lambda · Σ[focal + dice + dice] (1 before April 2025)
};

/// Everything one forward gives, for training (autograd through the text side).
struct AnomalyClipOutput {
  at::Tensor text;                  ///< [2, E] normalised
  std::vector<at::Tensor> probs;    ///< per feature layer [B, 2, S, S]: bilinear(softmax(cos / 0.07))
  at::Tensor image_logits;          ///< [B, 2]: cos(image embedding, T) / 0.07
};

/// Inference results (no autograd): the summed map before the gaussian and the image score.
struct AnomalyClipMaps {
  at::Tensor map;    ///< [B, S, S] float32, Σ_layers (p_abn + 1 − p_norm) / 2
  at::Tensor score;  ///< [B] float32
};

class AnomalyClipImpl : public torch::nn::Module {
 public:
  /// Takes a built backbone (its activation should be quick_gelu for OpenAI weights); validates the
  /// options against it; the prompt learner is initialised from `init_seed` and its token buffers
  /// are built from the tokenized prompt texts and the backbone's token embedding.
  AnomalyClipImpl(ClipModel clip, const AnomalyClipOptions& opts, int64_t input_size, int64_t init_seed,
                  const TokenizeFn& tokenize);

  ClipModel clip{nullptr};  ///< frozen (requires_grad false, always eval)
  AnomalyPromptLearner prompt_learner{nullptr};

  /// Text features [2, E], L2-normalised; differentiable w.r.t. the prompt learner when grad is on.
  at::Tensor encode_text();
  /// DPAM vision forward (no autograd).
  DpamOutput encode_image(const at::Tensor& images);
  /// Per-layer probabilities [B, 2, S, S] for patch tokens [B, 1+G², E] and text [2, E].
  at::Tensor layer_probs(const at::Tensor& patch_tokens, const at::Tensor& text) const;
  /// cos(image embedding, text) / 0.07: [B, 2].
  at::Tensor image_logits(const at::Tensor& image_embedding, const at::Tensor& text) const;

  /// The training forward.
  AnomalyClipOutput forward(const at::Tensor& images);
  /// Inference: map and score (no autograd; in eval mode the text features are computed once and
  /// reused until the prompt learner's tensors change).
  AnomalyClipMaps predict_maps(const at::Tensor& images);

  /// train(true) switches the prompt learner only; CLIP stays in eval.
  void train(bool on = true) override;

  const AnomalyClipOptions& options() const { return opts_; }
  const std::vector<int64_t>& features_list() const { return features_; }
  int64_t dpam_layer() const { return dpam_layer_; }
  int64_t input_size() const { return input_size_; }

  /// Reads an official checkpoint ({'prompt_learner': state_dict}) strictly; a checkpoint of another
  /// method is refused with a message naming the method its keys look like.
  void load_checkpoint(const std::string& path);
  /// The official layout ({'prompt_learner': OrderedDict}, CPU copies), for io::write_reference_checkpoint.
  io::ReferenceCheckpoint to_checkpoint() const;
  /// Writes the official layout (atomic; loadable by the official test.py's torch.load).
  void save_checkpoint(const std::string& path) const;

 private:
  AnomalyClipOptions opts_;
  std::vector<int64_t> features_;
  int64_t dpam_layer_ = 0;
  int64_t input_size_ = 0;
  at::Tensor text_cache_;
  std::vector<std::pair<const void*, uint32_t>> text_cache_key_;
  std::vector<std::pair<const void*, uint32_t>> text_key() const;
};
TORCH_MODULE(AnomalyClip);

/// Which method a checkpoint's top-level keys look like: "anomaly_clip" ('prompt_learner'),
/// "vcp_clip" ('New_Lan_Embed' / 'Zero_try' / prompt_embeddings), "april_gan" (only
/// 'trainable_linearlayer'), or "" when none.
std::string checkpoint_method_of(const io::ReferenceCheckpoint& ckpt);

}  // namespace vcpclip::model
