#pragma once
// Calibration (docs/design.md §6, §8): per product class, what turns an image score and a pixel
// map into decisions. eval normalises maps and scores per class (min-max over the class, the
// reference test.py) before its F1-optimal thresholds; a calibration keeps those min/max values,
// so a single new image is normalised exactly as eval normalised the calibration set:
//
//   class score   c = (score − score_min) / (score_max − score_min)        (float64, as eval)
//   pixel value   v = (map − map_min) / (map_max − map_min)               (float32, as eval)
//   decision      "ng" when c ≥ image_threshold, else "ok"
//   mask          v ≥ pixel_threshold
//
// Thresholds come from one of two methods:
//   f1        labelled images: eval's F1-optimal thresholds (eval::binary_metrics for images,
//             eval::pixel_metrics for pixels; both "positive when value ≥ t", t the lowest value
//             attaining F1-max). The decision threshold is the midpoint between that t and the
//             next lower value of the class, so the calibration set's decisions are exactly eval's
//             F1-optimal ones and do not flip on float rounding; `*_f1_threshold` keep eval's t.
//   quantile  normal images only: the q-quantile (numpy's default linear interpolation) of the
//             normal images' class scores and of their pixels; min/max from the same images.
//
// calibration.json (written atomically; read back strictly: unknown format/version, missing or
// mistyped keys are errors naming the file and the key):
//   {"format": "vcpclip-calibration", "version": 1, "method": "f1" | "quantile",
//    "image_quantile": q | null, "pixel_quantile": q | null, "created": ISO time, "vcpclip": version,
//    "data": {...what it was calibrated on...}, "checkpoint": {"path", "sha256"},
//    "config": {"path", "settings": {...}},   settings: what determines maps and scores (app/calibrate/calibrate.h)
//    "precision": runtime.precision of the maps ("fp32", "bf16", ...; absent in files of older versions),
//    "classes": [{"name", "images", "anomalous", "score_min", "score_max", "map_min", "map_max",
//                 "image_threshold", "pixel_threshold", "image_f1", "pixel_f1", "image_f1_threshold",
//                 "pixel_f1_threshold", "image_confusion": {"tp","fp","fn","tn"},
//                 "pixel_confusion": {...}}, ...],        (f1-only keys are null for quantile)
//    "skipped_classes": [{"name", "reason"}]}
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/eval/accumulator.h"

namespace vcpclip::eval {

/// Counts of a binary decision against the ground truth.
struct Confusion {
  uint64_t tp = 0, fp = 0, fn = 0, tn = 0;
  bool operator==(const Confusion& o) const { return tp == o.tp && fp == o.fp && fn == o.fn && tn == o.tn; }
  /// 2TP / (2TP + FP + FN); 0 when there is nothing positive at all.
  double f1() const;
};

/// One class of a calibration (see the header comment for the formulas).
struct ClassCalibration {
  std::string name;
  int64_t images = 0, anomalous = 0;
  double score_min = 0, score_max = 0;       ///< image-score range of the calibration images (unnormalised)
  float map_min = 0, map_max = 0;            ///< pixel-map range of the calibration images (unnormalised)
  double image_threshold = 0;                ///< on the class score c
  double pixel_threshold = 0;                ///< on the normalised pixel value v
  std::optional<double> image_f1, pixel_f1;  ///< f1 method: eval's F1-max
  std::optional<double> image_f1_threshold, pixel_f1_threshold;  ///< f1 method: eval's thresholds
  std::optional<Confusion> image_confusion, pixel_confusion;     ///< f1 method: at the decision thresholds
};

struct Calibration {
  std::string method;  ///< "f1" | "quantile"
  std::optional<double> image_quantile, pixel_quantile;
  std::string created, version;
  nlohmann::json data = nlohmann::json::object();  ///< what it was calibrated on
  std::string checkpoint, checkpoint_sha256;
  std::string config_path;
  nlohmann::json settings = nlohmann::json::object();  ///< what determines maps and scores
  /// runtime.precision of the maps ("fp32", "bf16", ...; "" = not recorded: made before vcpclip
  /// recorded it). Another precision in a run is a warning, not a refusal (app/decider.h).
  std::string precision;
  std::vector<ClassCalibration> classes;
  std::vector<std::pair<std::string, std::string>> skipped;  ///< (class, reason)

  /// The class called `name`; "" = the only class. Errors list the classes and name `origin`.
  const ClassCalibration& find(const std::string& name, const std::string& origin) const;
};

/// Value range of a class's maps and scores (taken before eval normalises them).
struct ClassRange {
  std::string name;
  double score_min = 0, score_max = 0;
  float map_min = 0, map_max = 0;
};
/// The range of every non-empty accumulator (call before ClassAccumulator::normalize).
std::vector<ClassRange> class_ranges(const std::vector<ClassAccumulator>& accs);

/// f1 method for one class from its NORMALISED accumulator and eval's metrics of it. nullopt with
/// `why` set when a threshold is undefined (no anomalous image, no defect pixel).
std::optional<ClassCalibration> f1_class_calibration(const ClassRange& range, const ClassAccumulator& normalised,
                                                     const ClassMetrics& metrics, std::string* why);

/// quantile method for one class from its UNNORMALISED accumulator of normal images (copied and
/// normalised here). Quantiles in [0, 1]; an empty accumulator is an error.
ClassCalibration quantile_class_calibration(const ClassAccumulator& acc, double image_quantile, double pixel_quantile);

/// numpy.quantile(values, q) with linear interpolation; reorders `values`. Empty input is an error.
double quantile(std::vector<float>& values, double q);
double quantile(std::vector<double>& values, double q);

nlohmann::json to_json(const Calibration& c);
/// Strict reader; `origin` (the file) is named in every error.
Calibration calibration_from_json(const nlohmann::json& j, const std::string& origin);

/// Writes calibration.json atomically (parent folders created).
void write_calibration(const Calibration& c, const std::string& path);
/// Reads calibration.json. Errors: missing/unparsable file, format, version, keys (naming the file).
Calibration read_calibration(const std::string& path);

/// Differences between the settings a calibration was made with and a run's settings, one line
/// each ("postprocess.sigma: 8 in the calibration, 4 in this run"); empty when they match. Keys
/// are compared recursively; a key present on one side only is a difference.
std::vector<std::string> settings_differences(const nlohmann::json& calibration, const nlohmann::json& run);

}  // namespace vcpclip::eval
