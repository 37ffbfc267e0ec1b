#pragma once
// Training losses of docs/design.md §7, numerically as the reference (utils/loss.py):
//
//   focal(p [B,2,S,S], gt [B,S,S]):  idx = long(gt) (0/1); w_c = clamp(onehot(idx)_c, 1e-5, 1 - 1e-5)
//                                    pt = Σ_c w_c·p_c + 1e-5;  mean over all B·S·S of -(1 - pt)²·log(pt)
//                                    (γ = 2, α = 1 for both classes, smooth = 1e-5)
//   dice(p1 [B,S,S], gt [B,S,S]):    1 - mean_b (2·Σ p1·g + 1) / (Σ p1 + Σ g + 1)
//   vcp_loss: Σ over layers of focal(post_l) + dice(post_l[:,1]) (the "post" sum), the same for
//             the raw branch, total = post + raw (the reference's summation order).
// All functions work in the dtype and on the device of their inputs and are differentiable.
// They are model/seg_losses.h's (the methods own their losses); kept here for the trainer's callers.
#include <ATen/core/Tensor.h>

#include <vector>

#include "vcpclip/model/method.h"
#include "vcpclip/model/seg_losses.h"

namespace vcpclip::train {

/// Focal loss on two-class probabilities. probs [B,2,...], target [B,...] with values 0/1
/// (truncated to integer class ids like the reference). Scalar tensor.
inline at::Tensor focal_loss(const at::Tensor& probs, const at::Tensor& target, double gamma = 2.0,
                             double smooth = 1e-5) {
  return model::focal_loss(probs, target, gamma, smooth);
}

/// Binary dice loss. probs [B,...] (anomaly channel), target [B,...] 0/1. Scalar tensor.
inline at::Tensor dice_loss(const at::Tensor& probs, const at::Tensor& target) {
  return model::dice_loss(probs, target);
}

/// The three numbers a training step reports (VCP-CLIP: total = raw + post; raw = Σ_l focal + dice
/// of the Pre-VCP branch, post = the same of the Post-VCP branch).
using LossTerms = model::MethodLoss;

/// VCP-CLIP training loss. raw/post: per feature layer, probabilities [B,2,S,S] (softmax over
/// the 2 channels); gt [B,S,S] binary masks. raw must be non-empty; post equally long, or empty
/// when the Post-VCP branch is ablated (post term 0).
inline LossTerms vcp_loss(const std::vector<at::Tensor>& raw, const std::vector<at::Tensor>& post,
                          const at::Tensor& gt) {
  return model::vcp_seg_loss(raw, post, gt);
}

}  // namespace vcpclip::train
