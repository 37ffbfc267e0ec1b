#pragma once
// Decisions for one image from a calibration (eval/calibration.h, docs/design.md §6): the
// OK/NG decision, a score that puts the class's threshold at 0.5, a binary mask and its
// connected regions. Needs OpenCV only, so the public API (vcpclip/vcpclip.h) can expose it.
//
//   c = (score − score_min) / (score_max − score_min)    class score, float64 (eval's arithmetic)
//   anomalous ("ng") ⇔ c ≥ image_threshold
//   normalized_score = 0.5·c/t below t, 0.5 + 0.5·(c − t)/(1 − t) from t on, clamped to [0, 1]
//                      (t = image_threshold; < 0.5 exactly when "ok")
//   mask = (map − map_min) / (map_max − map_min) ≥ pixel_threshold, float32 (eval's arithmetic),
//          on the map's own grid (S×S), then resized to the output size with nearest neighbour
//   regions: 8-connected components of the output mask (as eval's PRO regions), largest first
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace vcpclip::eval {

struct ClassCalibration;

/// One connected region of a mask: bounding box (pixels, x right, y down) and pixel count.
struct Region {
  int x = 0, y = 0, width = 0, height = 0;
  int64_t area = 0;
};

struct Decision {
  std::string class_name;       ///< the calibration class used
  bool anomalous = false;       ///< decision "ng" (else "ok")
  double class_score = 0;       ///< c, the score on the calibration's per-class scale
  double normalized_score = 0;  ///< threshold at 0.5 (see above)
  cv::Mat mask;                 ///< CV_8UC1, 255 = anomalous pixel, at the requested size
  int64_t mask_area = 0;        ///< pixels set in `mask`
  std::vector<Region> regions;  ///< connected regions of `mask`, largest first
  const char* label() const { return anomalous ? "ng" : "ok"; }
};

/// c for an image score (see above); 0 when the calibration's score range is empty.
double class_score(double score, const ClassCalibration& cal);

/// The score with the threshold t at 0.5 (see above).
double threshold_centred(double class_score, double threshold);

/// The pixel decision on the map's grid: CV_32FC1 unnormalised pixel map → CV_8UC1 0/255.
cv::Mat pixel_mask(const cv::Mat& map, const ClassCalibration& cal);

/// 8-connected regions of a CV_8UC1 mask (non-zero = set), largest area first.
std::vector<Region> connected_regions(const cv::Mat& mask);

/// Decision, mask and regions for one image: `map` CV_32FC1 (the S×S pixel map of docs/design.md §6,
/// unnormalised), `score` eval's image score (float32 sum of the two top-k means), `out_size` the
/// size of the mask (the input image's size).
Decision decide(const cv::Mat& map, double score, const ClassCalibration& cal, cv::Size out_size);

}  // namespace vcpclip::eval
