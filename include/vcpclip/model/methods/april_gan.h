#pragma once
// APRIL-GAN (docs/design.md "APRIL-GAN"), the method `april_gan` (model/method.h): the frozen CLIP
// towers, one trainable Linear(W_v → E) per feature layer, and class-specific handcrafted prompts.
//
//   tokens_l  = raw residual-stream output of vision block l (features_list), class token dropped
//   f_l       = normalise(fc_l(tokens_l))                                   [B, G², E]
//   T_c       = [t_normal, t_abnormal] of class c: per state set, the mean of the L2-normalised text
//               features of its 7 (normal) or 5 (abnormal) states × 35 templates, normalised again
//   p_l       = softmax_c(upsample_bilinear_align_corners(100 · f_l · T_c, S))   [B, 2, S, S]
//   map       = Σ_l p_l[:, 1]  (0..L, no gaussian)
//   score     = softmax(100 · normalise(ln_post(x_cls) · proj) · T_c)[abnormal]
//   loss      = Σ_l focal(p_l, gt) + dice(p_l[:, 1], gt)      (gt = mask > 0.5)
// Checkpoint: {'trainable_linearlayer': {fc.N.weight [E, W_v], fc.N.bias [E]}}, as its train.py saves.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "vcpclip/model/method.h"
#include "vcpclip/model/tokenizer.h"
#include "vcpclip/model/vcp_clip.h"  // PatchLinear: the same LinearLayer as VCP-CLIP's

namespace vcpclip::model {

/// APRIL-GAN's prompt ensemble for one class name: the 420 sentences, normal states first (7 × 35),
/// then abnormal (5 × 35), each state's 35 templates in the official order.
std::vector<std::string> april_gan_sentences(const std::string& class_name, bool abnormal);

class AprilGanImpl : public MethodImpl {
 public:
  /// opts.features_list gives the layers (one Linear each); the head is initialised from
  /// opts.init_seed (LibTorch's Linear init, PyTorch's nn.Linear default).
  AprilGanImpl(ClipModel clip, const ModelOptions& opts, Tokenizer tokenizer);

  PatchLinear trainable_linearlayer{nullptr};

  const MethodInfo& info() const override;
  MethodOutput forward_train(const at::Tensor& images, const ClassNames& classes) override;
  MethodLoss loss(const MethodOutput& out, const at::Tensor& gt) const override;
  MethodMaps predict_maps(const at::Tensor& images, StageTimer* timer = nullptr,
                          const std::vector<const ReferenceMemory*>& refs = {},
                          const ClassNames& classes = {}) override;
  std::vector<ParamGroup> parameter_groups() override;
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override;
  void load_checkpoint(const io::ReferenceCheckpoint& ckpt, const std::string& path) override;
  io::ReferenceCheckpoint to_checkpoint() const override;

  /// T_c [2, E] of a class (normal row, abnormal row; each L2-normalised), computed once per name
  /// and device with the frozen text tower (no autograd) and cached.
  at::Tensor text_features(const std::string& class_name);
  /// [B, E, 2]: text_features of each image's class.
  at::Tensor text_for(const ClassNames& classes, int64_t images);
  /// logits [B, G², 2] = 100 · normalise(fc_i(patch tokens)) · T (patch tokens without the class token).
  at::Tensor layer_logits(int64_t i, const at::Tensor& patch_tokens, const at::Tensor& text);
  /// [B] the image score from the global feature (ln_post · proj of the class token).
  at::Tensor image_score(const at::Tensor& global, const at::Tensor& text);

 private:
  Tokenizer tokenizer_;
  std::map<std::pair<std::string, std::string>, at::Tensor> text_cache_;  ///< (class, device) → [2, E]
};
TORCH_MODULE(AprilGan);

/// APRIL-GAN's MethodInfo: name april_gan, class names needed, no gaussian, the method's image
/// score, Adam lr 1e-3 betas (0.5, 0.999), batch 8, 15 epochs.
const MethodInfo& april_gan_info();

}  // namespace vcpclip::model
