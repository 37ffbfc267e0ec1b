#pragma once
// Anomaly-detection metrics (docs/design.md §8), computed exactly on all distinct thresholds.
//
// Tie handling follows scikit-learn: every distinct score is one threshold (a sample is positive
// when score >= threshold), so equal scores enter the curves together.
//   AUROC   = trapezoidal area under (FPR, TPR)                       (roc_auc_score)
//   AP      = Σ_n (R_n − R_{n−1}) · P_n                              (average_precision_score)
//   F1-max  = max over thresholds of 2PR / (P + R + eps); the reference uses eps = 1e-8 for
//             pixels and eps = 0 (0/0 skipped) for images; the threshold is the lowest one that
//             attains the maximum (numpy argmax over sklearn's increasing thresholds)
//   IoU     = |gt ∧ (score > t)| / |gt ∨ (score > t)| at the F1 threshold t (strictly greater,
//             as the reference's cal_iou(gt, pr > best_threshold))
//   AUPRO   exact:     per-region overlap (8-connected regions of the masks, mean over all
//                      regions of the class) against FPR over all distinct thresholds, starting
//                      at (0, 0), trapezoid up to FPR = limit (linear interpolation at the limit),
//                      divided by the limit (anomalib / MVTec AD definition)
//           reference: the reference cal_pro_score: thresholds numpy.arange(min, max, (max−min)/200)
//                      compared in float32 (score > t), keep FPR < limit, min-max rescale the
//                      kept FPRs, trapezoid.
// A metric that is undefined for the data (one class only, no region, constant scores) is
// std::nullopt, with a warning saying why.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vcpclip::io {
class ConfigNode;
}

namespace vcpclip::eval {

using Metric = std::optional<double>;

enum class AuproMode { kExact, kReference };
/// "exact" | "reference"; anything else is a vcpclip::Error naming `where`.
AuproMode parse_aupro_mode(const std::string& text, const std::string& where = "--aupro");
std::string to_string(AuproMode mode);

/// `eval:` section of a run config.
struct MetricsOptions {
  AuproMode aupro = AuproMode::kExact;  ///< eval.aupro: exact | reference
  double aupro_fpr_limit = 0.3;         ///< eval.aupro_fpr_limit: integrate PRO up to this FPR
  int aupro_reference_steps = 200;      ///< eval.aupro_steps: thresholds of the reference mode
  bool curves = false;                  ///< keep decimated ROC / PRO curves (for plots)
  int64_t curve_points = 512;           ///< at most about this many points per kept curve
  /// Implementation knob (tests): a score bin (scores sharing their top 16 key bits) with more
  /// normal pixels than this is counted in a 65,536-entry table, smaller ones are sorted.
  int64_t table_bin_min = 4096;
};
/// Reads eval.aupro, eval.aupro_fpr_limit, eval.aupro_steps, eval.curves and calls finish().
MetricsOptions parse_metrics_options(io::ConfigNode& node);

/// A curve for plotting (x ascending).
struct Curve {
  std::vector<float> x, y;
  bool empty() const { return x.empty(); }
};

struct PixelMetrics {
  Metric auroc, aupro, ap, f1_max, f1_threshold, iou;
  Curve roc;  ///< (FPR, TPR), with MetricsOptions::curves
  Curve pro;  ///< (FPR, PRO) up to the FPR limit, with MetricsOptions::curves
};

struct ImageMetrics {
  Metric auroc, ap, f1_max;
};

/// Metrics of a binary problem given as a small array (image scores). Labels are 0/1.
struct BinaryMetrics {
  Metric auroc, ap, f1_max, f1_threshold;
};
/// Sorts a copy of the scores; NaN scores are a vcpclip::Error. Undefined metrics get a
/// warning appended to `warnings` (prefixed with `what`).
BinaryMetrics binary_metrics(const double* scores, const uint8_t* labels, size_t n, double f1_eps,
                             const std::string& what, std::vector<std::string>* warnings);

/// Pixel data of one class: maps and masks concatenated; `items` gives each image's (offset,
/// height, width) into both arrays. Masks are 0 (normal) / non-zero (defect).
struct PixelData {
  const float* maps = nullptr;
  const uint8_t* masks = nullptr;
  struct Item {
    int64_t offset, height, width;
  };
  std::vector<Item> items;
};

/// All pixel metrics in one sweep over the scores in descending order (see the header comment).
PixelMetrics pixel_metrics(const PixelData& data, const MetricsOptions& opts, std::vector<std::string>* warnings);

/// float → uint32 whose unsigned order is the float order (-0.0 and +0.0 map to the same key).
inline uint32_t sortable_key(float v) {
  if (v == 0.0f) v = 0.0f;
  uint32_t u;
  static_assert(sizeof(u) == sizeof(v));
  __builtin_memcpy(&u, &v, sizeof(u));
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline float key_to_float(uint32_t k) {
  uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  float v;
  __builtin_memcpy(&v, &u, sizeof(v));
  return v;
}

}  // namespace vcpclip::eval
