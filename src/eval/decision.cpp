// Decisions, masks and regions from a calibration (see decision.h).
#include "vcpclip/eval/decision.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "vcpclip/common/error.h"
#include "vcpclip/eval/calibration.h"

namespace vcpclip::eval {

double class_score(double score, const ClassCalibration& cal) {
  // The same double arithmetic as minmax_normalize(double*), which eval applies to the class.
  const double span = cal.score_max - cal.score_min;
  return span == 0.0 ? 0.0 : (score - cal.score_min) / span;
}

double threshold_centred(double c, double t) {
  if (c < t) {
    const double n = t > 0 ? 0.5 * c / t : 0.0;
    return std::clamp(n, 0.0, std::nextafter(0.5, 0.0));
  }
  const double n = t < 1 ? 0.5 + 0.5 * (c - t) / (1 - t) : 1.0;
  return std::clamp(n, 0.5, 1.0);
}

cv::Mat pixel_mask(const cv::Mat& map, const ClassCalibration& cal) {
  VCP_CHECK(!map.empty() && map.type() == CV_32FC1, "pixel mask: expected a float32 single-channel map, found ",
            map.empty() ? std::string("an empty map") : msg("OpenCV type ", map.type()));
  // The same float32 arithmetic as minmax_normalize(float*), which eval applies to the class.
  const float lo = cal.map_min, span = cal.map_max - cal.map_min;
  cv::Mat mask(map.size(), CV_8UC1);
  for (int y = 0; y < map.rows; ++y) {
    const float* m = map.ptr<float>(y);
    uint8_t* o = mask.ptr<uint8_t>(y);
    for (int x = 0; x < map.cols; ++x) {
      const float v = span == 0.0f ? 0.0f : (m[x] - lo) / span;
      o[x] = double(v) >= cal.pixel_threshold ? 255 : 0;
    }
  }
  return mask;
}

std::vector<Region> connected_regions(const cv::Mat& mask) {
  VCP_CHECK(mask.type() == CV_8UC1, "connected regions: expected an 8-bit single-channel mask, found OpenCV type ",
            mask.type());
  std::vector<Region> out;
  if (mask.empty()) return out;
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask != 0, labels, stats, centroids, 8, CV_32S);
  for (int i = 1; i < n; ++i)
    out.push_back({stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP),
                   stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT),
                   stats.at<int>(i, cv::CC_STAT_AREA)});
  std::stable_sort(out.begin(), out.end(), [](const Region& a, const Region& b) { return a.area > b.area; });
  return out;
}

Decision decide(const cv::Mat& map, double score, const ClassCalibration& cal, cv::Size out_size) {
  VCP_CHECK(out_size.width > 0 && out_size.height > 0, "decide: the output size must be positive, found ",
            out_size.width, "x", out_size.height);
  Decision d;
  d.class_name = cal.name;
  d.class_score = class_score(score, cal);
  d.anomalous = d.class_score >= cal.image_threshold;
  d.normalized_score = threshold_centred(d.class_score, cal.image_threshold);
  cv::Mat grid = pixel_mask(map, cal);
  if (grid.size() == out_size)
    d.mask = grid;
  else
    cv::resize(grid, d.mask, out_size, 0, 0, cv::INTER_NEAREST);
  d.mask_area = cv::countNonZero(d.mask);
  d.regions = connected_regions(d.mask);
  return d;
}

}  // namespace vcpclip::eval
