#pragma once
// Segmentation losses of the methods (docs/design.md §7), numerically as the reference
// (utils/loss.py of VCP-CLIP; loss.py of APRIL-GAN, the same code):
//
//   focal(p [B,2,S,S], gt [B,S,S]):  idx = long(gt) (0/1); w_c = clamp(onehot(idx)_c, 1e-5, 1 - 1e-5)
//                                    pt = Σ_c w_c·p_c + 1e-5;  mean over all B·S·S of -(1 - pt)²·log(pt)
//                                    (γ = 2, α = 1 for both classes, smooth = 1e-5)
//   dice(p1 [B,S,S], gt [B,S,S]):    1 - mean_b (2·Σ p1·g + 1) / (Σ p1 + Σ g + 1)
//   focal_dice_sum: Σ over layers of focal(p_l) + dice(p_l[:,1]), in that order.
//   vcp_seg_loss: the "post" sum, the "raw" sum, total = post + raw (VCP-CLIP's summation order).
// All functions work in the dtype and on the device of their inputs and are differentiable.
// (train/losses.h gives the same functions to the trainer and its tests.)
#include <ATen/core/Tensor.h>

#include <vector>

#include "vcpclip/model/method.h"

namespace vcpclip::model {

/// Focal loss on two-class probabilities. probs [B,2,...], target [B,...] with values 0/1
/// (truncated to integer class ids like the reference). Scalar tensor.
at::Tensor focal_loss(const at::Tensor& probs, const at::Tensor& target, double gamma = 2.0, double smooth = 1e-5);

/// Binary dice loss. probs [B,...] (anomaly channel), target [B,...] 0/1. Scalar tensor.
at::Tensor dice_loss(const at::Tensor& probs, const at::Tensor& target);

/// Σ_l focal(layers[l]) + dice(layers[l][:,1]); layers [B,2,S,S] each, gt [B,S,S] binary. `who`
/// names the caller in shape errors.
at::Tensor focal_dice_sum(const std::vector<at::Tensor>& layers, const at::Tensor& gt, const char* who);

/// VCP-CLIP's training loss. raw/post: per feature layer, probabilities [B,2,S,S]; gt [B,S,S]
/// binary masks. raw must be non-empty; post equally long, or empty when the Post-VCP branch is
/// ablated (post term 0). Returns {total = post + raw, raw, post}.
MethodLoss vcp_seg_loss(const std::vector<at::Tensor>& raw, const std::vector<at::Tensor>& post, const at::Tensor& gt);

}  // namespace vcpclip::model
