#pragma once
// Per-class store of everything the metrics need: N anomaly maps held once as float32, the
// ground-truth masks as bytes (0/1), one image score and label per image. Nothing else is kept
// at full size; the metrics sort compact keys (see metrics.h / pixel_metrics.cpp).
//
//   ClassAccumulator acc("bottle");
//   for (...) acc.add("bottle/broken_large/000", map, mask, score, label);
//   acc.normalize();                 // per-class min-max of maps and scores (reference)
//   ClassMetrics m = acc.compute(opts);
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vcpclip/eval/metrics.h"

namespace vcpclip::eval {

/// Metrics of one product class.
struct ClassMetrics {
  std::string name;
  int64_t num_images = 0, num_anomalous = 0;  ///< images scored (of which anomalous)
  int64_t num_skipped = 0;                    ///< test images left out (unreadable, with skip_bad)
  PixelMetrics pixel;
  ImageMetrics image;
  std::vector<std::string> warnings;
  std::string error;  ///< set when the class could not be evaluated (all metrics null)
};

/// Reference `normalize`: (x − min) / (max − min) in float32, all zeros if max == min.
void minmax_normalize(float* data, size_t n);
void minmax_normalize(double* data, size_t n);

class ClassAccumulator {
 public:
  explicit ClassAccumulator(std::string name);

  /// Reserves room for `maps` maps of height×width pixels.
  void reserve(size_t maps, int64_t height, int64_t width);

  /// Adds one image. `map`: [H,W] (or [1,H,W]) floating tensor on any device; `mask`: same
  /// size, any dtype, defect where > 0.5 (an undefined tensor = all normal); `label`: 0/1.
  /// Errors (vcpclip::Error, naming `id` and the class): size mismatch, NaN in the map.
  void add(const std::string& id, const at::Tensor& map, const at::Tensor& mask, double score, int label);
  /// Raw form: map float32[h*w], mask bytes (non-zero = defect) or nullptr = all normal.
  void add(const std::string& id, const float* map, const uint8_t* mask, int64_t height, int64_t width, double score,
           int label);

  /// Per-class min-max normalisation of the maps (float32, over all pixels of the class) and
  /// of the image scores, as the reference test.py does before the metrics.
  void normalize();

  /// All metrics. An empty class is a vcpclip::Error.
  ClassMetrics compute(const MetricsOptions& opts) const;

  const std::string& name() const { return name_; }
  size_t size() const { return ids_.size(); }
  const std::string& id(size_t i) const { return ids_[i]; }
  int64_t height(size_t i) const { return items_[i].height; }
  int64_t width(size_t i) const { return items_[i].width; }
  const float* map(size_t i) const { return maps_.data() + items_[i].offset; }
  const uint8_t* mask(size_t i) const { return masks_.data() + items_[i].offset; }
  double score(size_t i) const { return scores_[i]; }
  int label(size_t i) const { return labels_[i]; }
  /// Bytes held (maps + masks + per-image data).
  size_t memory_bytes() const;

 private:
  std::string name_;
  std::vector<std::string> ids_;
  std::vector<PixelData::Item> items_;
  std::vector<float> maps_;
  std::vector<uint8_t> masks_;
  std::vector<double> scores_;
  std::vector<uint8_t> labels_;
};

}  // namespace vcpclip::eval
