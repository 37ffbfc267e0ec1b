#pragma once
// AnomalyCLIP's training loss (official train.py, docs/design.md "AnomalyCLIP"):
//
//   image = CE(image logits [B, 2] (cos / 0.07), label)                     (mean over the batch)
//   maps  = Σ_layers focal(probs_l, gt) + dice(probs_l[:, 1], gt) + dice(probs_l[:, 0], 1 − gt)
//   total = image + lambda · maps      (lambda = 4 today, 1 before April 2025; not applied to image)
//
// focal / dice as losses.h (the same FocalLoss and BinaryDiceLoss formulas). Differentiable; works
// in the inputs' dtype and device.
#include <ATen/core/Tensor.h>

#include <vector>

namespace vcpclip::train {

struct AnomalyClipLossTerms {
  at::Tensor total;  ///< image + lambda · maps (differentiable)
  at::Tensor image;  ///< the image cross-entropy
  at::Tensor maps;   ///< the map sum before lambda
};

/// probs: per feature layer [B, 2, S, S]; gt [B, S, S] binary; labels [B] 0/1 (normal/anomalous).
AnomalyClipLossTerms anomaly_clip_loss(const at::Tensor& image_logits, const at::Tensor& labels,
                                       const std::vector<at::Tensor>& probs, const at::Tensor& gt, double lambda);

}  // namespace vcpclip::train
