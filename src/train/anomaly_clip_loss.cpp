// AnomalyCLIP's training loss (see include/vcpclip/train/anomaly_clip_loss.h).
#include "vcpclip/train/anomaly_clip_loss.h"

#include <ATen/ATen.h>

#include "vcpclip/common/error.h"
#include "vcpclip/train/losses.h"

namespace vcpclip::train {

AnomalyClipLossTerms anomaly_clip_loss(const at::Tensor& image_logits, const at::Tensor& labels,
                                       const std::vector<at::Tensor>& probs, const at::Tensor& gt, double lambda) {
  VCP_CHECK(!probs.empty(), "anomaly_clip_loss: no feature layers");
  VCP_CHECK(image_logits.dim() == 2 && image_logits.size(1) == 2 && labels.dim() == 1 &&
                labels.size(0) == image_logits.size(0),
            "anomaly_clip_loss: expected image logits [B, 2] and labels [B], found ", image_logits.sizes(), " and ",
            labels.sizes());
  for (size_t i = 0; i < probs.size(); ++i)
    VCP_CHECK(probs[i].dim() == 4 && probs[i].size(1) == 2 && gt.dim() == 3 && gt.size(0) == probs[i].size(0) &&
                  gt.size(1) == probs[i].size(2) && gt.size(2) == probs[i].size(3),
              "anomaly_clip_loss: layer ", i, ": expected probabilities [B, 2, S, S] and masks [B, S, S], found ",
              probs[i].sizes(), " and ", gt.sizes());
  AnomalyClipLossTerms out;
  out.image = at::cross_entropy_loss(image_logits, labels.to(at::kLong).to(image_logits.device()));
  const auto g = gt.to(probs[0].scalar_type());
  for (const auto& p : probs) {
    auto f = focal_loss(p, g);  // accumulated term by term, in train.py's order
    out.maps = out.maps.defined() ? out.maps + f : f;
    out.maps = out.maps + dice_loss(p.select(1, 1), g);
    out.maps = out.maps + dice_loss(p.select(1, 0), 1.0 - g);
  }
  out.total = out.image + lambda * out.maps;
  return out;
}

}  // namespace vcpclip::train
