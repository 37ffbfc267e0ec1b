// Focal + dice losses (docs/design.md §7), see include/vcpclip/model/seg_losses.h.
#include "vcpclip/model/seg_losses.h"

#include <ATen/ATen.h>

#include "vcpclip/common/error.h"

namespace vcpclip::model {

namespace {

void check_binary(const at::Tensor& target, const char* what) {
  at::Tensor idx = target.to(at::kLong);
  auto mm = at::aminmax(idx);
  VCP_CHECK(std::get<0>(mm).item<int64_t>() >= 0 && std::get<1>(mm).item<int64_t>() <= 1, what,
            ": target values must be 0 or 1 (binarised masks)");
}

at::Tensor focal_unchecked(const at::Tensor& probs, const at::Tensor& target, double gamma, double smooth) {
  // Class ids as the reference: long() truncation of the (binarised) mask.
  at::Tensor idx = target.to(at::kLong);
  // Clamped one-hot weight of class 1; class 0 gets its complement (num_class = 2: smooth/(C-1) = smooth).
  at::Tensor is1 = idx.eq(1).to(probs.scalar_type());
  at::Tensor w1 = at::clamp(is1, smooth, 1.0 - smooth);
  at::Tensor w0 = at::clamp(1.0 - is1, smooth, 1.0 - smooth);
  at::Tensor pt = w0 * probs.select(1, 0) + w1 * probs.select(1, 1) + smooth;
  return (-at::pow(1.0 - pt, gamma) * at::log(pt)).mean();
}

/// Σ_l focal + dice without checks (the reference's accumulation order: focal, then dice, per layer).
at::Tensor sum_unchecked(const std::vector<at::Tensor>& layers, const at::Tensor& gt) {
  at::Tensor out;
  for (const auto& p : layers) {
    at::Tensor l = focal_unchecked(p, gt, 2.0, 1e-5);
    out = out.defined() ? out + l : l;
    out = out + dice_loss(p.select(1, 1), gt);
  }
  return out;
}

void check_layer(const at::Tensor& p, const at::Tensor& gt, size_t i, const char* who) {
  VCP_CHECK(p.dim() == 4 && p.size(1) == 2 && gt.dim() == 3 && gt.size(0) == p.size(0) && gt.size(1) == p.size(2) &&
                gt.size(2) == p.size(3),
            who, ": layer ", i, ": expected probabilities [B,2,S,S] and masks [B,S,S], found ", p.sizes(), " and ",
            gt.sizes());
}

}  // namespace

at::Tensor focal_loss(const at::Tensor& probs, const at::Tensor& target, double gamma, double smooth) {
  VCP_CHECK(probs.dim() >= 2 && probs.size(1) == 2, "focal_loss: expected probabilities [B,2,...], found shape ",
            probs.sizes());
  VCP_CHECK(target.dim() == probs.dim() - 1 && target.size(0) == probs.size(0) && target.numel() * 2 == probs.numel(),
            "focal_loss: target shape ", target.sizes(), " does not match probabilities ", probs.sizes());
  check_binary(target, "focal_loss");
  return focal_unchecked(probs, target, gamma, smooth);
}

at::Tensor dice_loss(const at::Tensor& probs, const at::Tensor& target) {
  VCP_CHECK(probs.dim() >= 1 && target.numel() == probs.numel() && target.size(0) == probs.size(0),
            "dice_loss: target shape ", target.sizes(), " does not match probabilities ", probs.sizes());
  const int64_t n = probs.size(0);
  at::Tensor p = probs.reshape({n, -1});
  at::Tensor g = target.reshape({n, -1}).to(probs.scalar_type());
  at::Tensor inter = (p * g).sum(1);
  at::Tensor dice = (2.0 * inter + 1.0) / (p.sum(1) + g.sum(1) + 1.0);
  return 1.0 - dice.sum() / static_cast<double>(n);
}

at::Tensor focal_dice_sum(const std::vector<at::Tensor>& layers, const at::Tensor& gt, const char* who) {
  VCP_CHECK(!layers.empty(), who, ": expected at least one layer of probabilities");
  check_binary(gt, who);
  for (size_t i = 0; i < layers.size(); ++i) check_layer(layers[i], gt, i, who);
  return sum_unchecked(layers, gt);
}

MethodLoss vcp_seg_loss(const std::vector<at::Tensor>& raw, const std::vector<at::Tensor>& post, const at::Tensor& gt) {
  VCP_CHECK(!raw.empty() && (raw.size() == post.size() || post.empty()),
            "vcp_loss: expected the same non-zero number of raw and post layers (or no post layers), found ",
            raw.size(), " and ", post.size());
  check_binary(gt, "vcp_loss");
  for (size_t i = 0; i < raw.size(); ++i) {
    VCP_CHECK(raw[i].dim() == 4 && raw[i].size(1) == 2 && (post.empty() || raw[i].sizes() == post[i].sizes()) &&
                  gt.dim() == 3 && gt.size(0) == raw[i].size(0) && gt.size(1) == raw[i].size(2) &&
                  gt.size(2) == raw[i].size(3),
              "vcp_loss: layer ", i, ": expected raw/post probabilities [B,2,S,S] and masks [B,S,S], found ",
              raw[i].sizes(), ", ", post[i].sizes(), " and ", gt.sizes());
  }
  MethodLoss out;
  if (!post.empty()) out.post = sum_unchecked(post, gt);
  out.raw = sum_unchecked(raw, gt);
  if (!out.post.defined()) out.post = at::zeros({}, out.raw.options());  // Post-VCP ablated
  out.total = out.post + out.raw;
  return out;
}

}  // namespace vcpclip::model
