#pragma once
// The method `anomaly_clip` (docs/design.md "AnomalyCLIP"): the frozen CLIP backbone (QuickGELU,
// as OpenAI's weights) + the object-agnostic prompt learner; DPAM vision forward, learned text,
// maps and image score as the official test.py computes them before its gaussian (σ = 4, the
// method's post-processing default):
//
//   text  T = normalise(encode_text())                          [2, E] (normal, abnormal)
//   map   Σ_layers (p_abn + 1 − p_norm) / 2, p = bilinear_S(softmax(cos(patch, T) / 0.07))   [B, S, S]
//   score softmax(cos(image embedding, T) / 0.07)[:, 1]          [B]
//   loss  CE(cos(image embedding, T) / 0.07, label) + lambda · Σ_layers [focal + dice(p_abn, gt)
//         + dice(p_norm, 1 − gt)]
//
// Its own `model:` keys (another method's keys are errors):
//   n_ctx: 12        # learned rows per prompt (official --n_ctx)
//   t_n_ctx: 4       # rows of each deep text prompt (--t_n_ctx)
//   depth: 9         # deep text prompts enter text blocks 1..depth-1 (--depth)
//   dpam_layer: 0    # DPAM_layer; 0 = L + 1 − round(5L/24) (20 for 24 blocks, the official value)
//   lambda: 4        # weight of the map losses (train.py today; 1 before April 2025)
// Shared keys with their own default here: activation quick_gelu (the official model classes).
// Only the prompt learner is trained; CLIP is frozen and always in eval mode.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vcpclip/io/checkpoint.h"
#include "vcpclip/model/anomaly_prompt_learner.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/model/dpam_vision.h"
#include "vcpclip/model/method.h"
#include "vcpclip/model/text_prompts.h"

namespace vcpclip::model {

/// The method's own options (the official train.py / test.py arguments).
struct AnomalyClipOptions : MethodOptions {
  int64_t n_ctx = 12;
  int64_t t_n_ctx = 4;
  int64_t depth = 9;
  int64_t dpam_layer = 0;  ///< 0 = default_dpam_layer(vision layers)
  double lambda = 4.0;
};

/// The loss terms of one batch (probs: per layer [B, 2, S, S]; gt [B, S, S] binary; labels [B]).
struct AnomalyClipLossTerms {
  at::Tensor total, image, maps;  ///< total = image + lambda · maps
};
AnomalyClipLossTerms anomaly_clip_loss(const at::Tensor& image_logits, const at::Tensor& labels,
                                       const std::vector<at::Tensor>& probs, const at::Tensor& gt, double lambda);

/// The MethodInfo of anomaly_clip: σ = 4, the method's image score; 15 epochs, batch 8, lr 1e-3.
const MethodInfo& anomaly_clip_info();

class AnomalyClipImpl : public MethodImpl {
 public:
  /// Validates the options against the backbone; the prompt learner is initialised from
  /// opts.init_seed and its token buffers are built from the tokenized prompt texts and the
  /// backbone's token embedding (as the official constructor).
  AnomalyClipImpl(ClipModel clip, const ModelOptions& opts, const TokenizeFn& tokenize);

  AnomalyPromptLearner prompt_learner{nullptr};

  const MethodInfo& info() const override { return anomaly_clip_info(); }
  /// raw = per-layer probabilities, image_logits = cos / 0.07 (autograd through the text side).
  MethodOutput forward_train(const at::Tensor& images, const ClassNames& classes) override;
  /// total = image CE + lambda · maps; reported: raw = lambda · maps, post = image CE. The image
  /// labels are 1 where the (binarised) mask has a defect pixel.
  MethodLoss loss(const MethodOutput& out, const at::Tensor& gt) const override;
  /// raw = Σ_layers (p_abn + 1 − p_norm) / 2, image_score = the text score; few-shot D from the
  /// shared tower (a second vision pass when references are given).
  MethodMaps predict_maps(const at::Tensor& images, StageTimer* timer = nullptr,
                          const std::vector<const ReferenceMemory*>& refs = {},
                          const ClassNames& classes = {}) override;
  std::vector<ParamGroup> parameter_groups() override;
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override;
  /// {'prompt_learner': state_dict} strictly; anything else names what it found.
  void load_checkpoint(const io::ReferenceCheckpoint& ckpt, const std::string& path) override;
  io::ReferenceCheckpoint to_checkpoint() const override;

  /// Text features [2, E], L2-normalised; differentiable w.r.t. the prompt learner when grad is on.
  at::Tensor encode_text();
  /// DPAM vision forward (no autograd).
  DpamOutput encode_image(const at::Tensor& images);
  /// Per-layer probabilities [B, 2, S, S] for patch tokens [B, 1+G², E] and text [2, E].
  at::Tensor layer_probs(const at::Tensor& patch_tokens, const at::Tensor& text) const;
  /// cos(image embedding, text) / 0.07: [B, 2].
  at::Tensor image_logits(const at::Tensor& image_embedding, const at::Tensor& text) const;

  const AnomalyClipOptions& method_options() const { return aopts_; }
  int64_t dpam_layer() const { return dpam_layer_; }

 private:
  AnomalyClipOptions aopts_;
  int64_t dpam_layer_ = 0;
  at::Tensor text_cache_;
  std::vector<std::pair<const void*, uint32_t>> text_cache_key_;
  std::vector<std::pair<const void*, uint32_t>> text_key() const;
  at::Tensor ids_;  ///< [2, 77] the tokenized prompt texts (CPU)
  bool buffers_from_checkpoint_ = false;
  mutable std::pair<const void*, uint32_t> embedding_key_{nullptr, 0};
  void refresh_token_buffers() const;
};
TORCH_MODULE(AnomalyClip);

/// The anomaly_clip options of `opts` (the defaults when it has none).
AnomalyClipOptions anomaly_clip_options(const ModelOptions& opts);

}  // namespace vcpclip::model
