#pragma once
// Inference post-processing of docs/design.md §6 (reference test.py), on tensors of any device.
//
//   pixel map   = gaussian_filter(alpha·M_raw + (1 − alpha)·M_post, sigma)
//   image score = topk_mean(M_raw, k) + topk_mean(M_post, k)
// followed, over all images of a product class, by min-max normalisation (ClassAccumulator::
// normalize, or minmax_normalize below).
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace vcpclip::io {
class ConfigNode;
}

namespace vcpclip::eval {

/// The `postprocess:` section of a run config (docs/design.md §6), used by eval, predict,
/// calibrate and the Inferencer.
/// Defaults are VCP-CLIP's test.py; each method has its own (model::MethodInfo::postprocess, passed
/// by app::load_run_config): APRIL-GAN's are sigma 0 and image_score method.
struct PostprocessOptions {
  double alpha = 0.2;   ///< weight of M_raw in the blend (M_post gets 1 - alpha)
  double sigma = 8.0;   ///< gaussian filter sigma (scipy semantics, truncate 4σ, mirror border); 0 = none
  int64_t topk = 2000;  ///< pixels averaged for the image score (clamped to S²)
  /// `image_score`: false = `topk` (top-k mean of the maps), true = `method` (the method's own
  /// image score, e.g. APRIL-GAN's class-token probability).
  bool method_score = false;
};
/// Reads and validates the section (alpha in [0, 1], sigma ≥ 0, topk ≥ 1, image_score topk |
/// method) over `defaults`; unknown keys are errors.
PostprocessOptions parse_postprocess_options(io::ConfigNode& node, const PostprocessOptions& defaults = {});

/// scipy.ndimage._gaussian_kernel1d: radius = int(truncate·sigma + 0.5) (32 → 65 taps for σ=8),
/// exp(−x²/(2σ²)) normalised to sum 1.
std::vector<double> gaussian_kernel1d(double sigma, double truncate = 4.0);

/// scipy.ndimage.gaussian_filter(x, sigma) on each [H,W] plane of `maps` ([H,W] or [N,H,W]):
/// separable correlation along H then W, border mode 'reflect' (edge pixel repeated, OpenCV
/// BORDER_REFLECT; radius larger than the image reflects again), computed in float64 and rounded
/// to float32 after each axis like scipy does for float32 input. Returns float32 on maps' device.
at::Tensor gaussian_filter(const at::Tensor& maps, double sigma, double truncate = 4.0);

/// alpha·raw + (1 − alpha)·post in float32 (the scalars rounded to float32, as numpy does).
at::Tensor blend_maps(const at::Tensor& raw, const at::Tensor& post, double alpha);

/// Mean of the k largest values of each [H,W] plane ([H,W] → scalar tensor, [N,H,W] → [N]);
/// k is clamped to H·W. Float32 result on the input's device.
at::Tensor topk_mean(const at::Tensor& maps, int64_t k);

/// The reference pixel map: gaussian_filter(blend_maps(raw, post, alpha), sigma). Without Post-VCP
/// (`post` undefined, model.post_vcp: false) the map is gaussian_filter(raw, sigma); sigma 0: no filter.
at::Tensor pixel_map(const at::Tensor& raw, const at::Tensor& post, double alpha, double sigma);

/// The reference image score (unnormalised): topk_mean(raw, k) + topk_mean(post, k); without
/// Post-VCP (`post` undefined) topk_mean(raw, k).
at::Tensor image_score(const at::Tensor& raw, const at::Tensor& post, int64_t k);

/// The method's own image score [N] as float32 (postprocess.image_score: method); an error naming
/// the key when the method gives none (`method_score` undefined).
at::Tensor method_image_score(const at::Tensor& method_score);

/// Pixel maps and image scores of a batch, the way eval computes them (docs/design.md §6).
struct PostprocessedMaps {
  at::Tensor pixel;  ///< [N,S,S] float32: pixel_map(raw, post)
  at::Tensor score;  ///< [N] float32: image_score(raw, post)
};
/// pixel_map and image_score with the section's settings; `post` may be undefined (model.post_vcp
/// false): then the map and the score use M_raw alone. With pp.method_score the score is
/// `method_score` ([N], the method's own; an error naming the key when it is undefined).
PostprocessedMaps postprocess_maps(const at::Tensor& raw, const at::Tensor& post, const PostprocessOptions& pp,
                                   const at::Tensor& method_score = {});

/// Few-shot fusion (docs/design.md §13, APRIL-GAN's addition): pixel += weight·D and
/// score += weight·max(D) per image; `few_shot` D [N,S,S] (undefined: nothing changes).
void fuse_few_shot(PostprocessedMaps& out, const at::Tensor& few_shot, double weight);

/// Tensor form of the reference `normalize`: (x − min) / (max − min) over the whole tensor in
/// float32, zeros if constant.
at::Tensor minmax_normalize(const at::Tensor& x);

}  // namespace vcpclip::eval
