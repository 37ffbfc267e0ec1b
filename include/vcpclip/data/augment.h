#pragma once
// Training augmentations of docs/design.md §7 (the reference's albumentations pipeline), applied to
// the decoded full-resolution image before preprocessing. Geometry (rotate, rot90) is applied
// identically to the mask (nearest neighbour); photometric steps touch the image only.
//
//   rotate ±30° (p .5; bilinear image, nearest mask, reflect-101 border, centre (w/2-.5, h/2-.5))
//   rot90 × k, k uniform in {0,1,2,3} (p .5; counter-clockwise as np.rot90)
//   brightness/contrast (p .5): v·α + β·255, α ∈ 1±0.2, β ∈ ±0.2
//   gaussian noise (p .5): σ = √var, var ∈ [10,50], per pixel and channel
//   one of {box blur 3×3, colour jitter (0.2 each, hue ±0.2), gaussian blur k ∈ {3,5,7}} (p .5)
// and, for MVTec-style auxiliary data, a 2×2 mosaic of four anomalous images of one class.
// Random numbers come from the std::mt19937 passed in: same seed → same result.
#include <opencv2/core.hpp>
#include <random>
#include <vector>

namespace vcpclip::data {

struct AugmentOptions {
  double rotate_p = 0.5, rotate_limit = 30.0;
  double rot90_p = 0.5;
  double brightness_contrast_p = 0.5, brightness_limit = 0.2, contrast_limit = 0.2;
  double noise_p = 0.5, noise_var_min = 10.0, noise_var_max = 50.0;
  double blur_p = 0.5;  ///< the one-of {blur, colour jitter, gaussian blur} group
};

/// Augments an RGB CV_8UC3 image and its CV_8UC1 mask in place (an empty mask stays empty).
void augment(cv::Mat& rgb, cv::Mat& mask, std::mt19937& rng, const AugmentOptions& opts = {});

/// Geometric steps alone (exposed for tests): rotation by `degrees` about the image centre and
/// `k` counter-clockwise quarter turns, on image (bilinear) and mask (nearest).
void rotate_pair(cv::Mat& rgb, cv::Mat& mask, double degrees);
void rot90_pair(cv::Mat& rgb, cv::Mat& mask, int k);

/// 2×2 mosaic (tiles in row-major order: top-left, top-right, bottom-left, bottom-right) of four
/// image/mask pairs; tiles of another size than the first are resized to it (image bicubic as
/// PIL, mask nearest). Empty masks count as all-normal.
void mosaic2x2(const std::vector<cv::Mat>& images, const std::vector<cv::Mat>& masks, cv::Mat& rgb_out,
               cv::Mat& mask_out);

}  // namespace vcpclip::data
