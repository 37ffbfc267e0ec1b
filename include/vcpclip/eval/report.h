#pragma once
// Evaluation reports: metrics.json, metrics.csv, metrics.md and a table for the terminal.
//
// metrics.json (values are fractions in [0, 1]; an undefined value is null, never NaN):
//   {"aupro_mode": "exact", "complete": true,
//    "classes": [{"name": "bottle", "num_images": 83, "num_anomalous": 63, "num_skipped": 0,
//                 "pixel_auroc": .., "pixel_aupro": .., "pixel_ap": .., "pixel_f1_max": ..,
//                 "pixel_f1_threshold": .., "pixel_iou": .., "image_auroc": .., "image_ap": ..,
//                 "image_f1_max": .., "warnings": [..], "error": ".." (only if it failed)}, ...],
//    "mean": {"label": "mean", "classes": 15, "classes_total": 15, "images": 1725,
//             "images_total": 1725, <the same metric keys>},  mean over the classes where defined
//    "incomplete": "..." (only when complete is false: what is missing),
//    "warnings": [every warning of the run],
//    "references_vs_zero_shot": [ReferenceEffect::to_json, ...] (only for eval with references)}
// metrics.csv: one row per class and a last row named by the mean's label; empty cell = undefined.
// With few-shot references the terminal table and metrics.md add the "references vs zero-shot"
// table (eval/reference_effect.h), and a class made worse by them has a plain-words warning.
// metrics.md:  the reference's table (tabulate "pipe"): objects | auroc_px | aupro_px | ap_px |
//              f1_px | iou | auroc_sp | ap_sp | f1_sp | threshold, in % with 2 decimals (the
//              threshold with 3), the mean row, "n/a" where undefined, then the warnings.
// A partial result (a class without metrics, or skipped images) says so everywhere: "complete":
// false, the mean row is labelled "mean over 1 of 2 classes" (or "... 11 of 12 images"), and
// metrics.md starts with a "Partial result" line. Commands refuse to report one unless asked
// (require_complete).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vcpclip/eval/accumulator.h"
#include "vcpclip/eval/reference_effect.h"

namespace vcpclip::eval {

struct EvaluationReport {
  std::string aupro_mode = "exact";
  std::vector<ClassMetrics> classes;
  std::vector<std::string> warnings;        ///< run-level warnings (class warnings stay in classes)
  std::vector<ReferenceEffect> references;  ///< eval with few-shot references: each class vs zero-shot
};

/// What a report covers: classes with metrics of all classes, images scored of all test images
/// (a class that failed counts its images as not scored; skipped images are not scored).
struct Coverage {
  int64_t classes = 0, classes_total = 0;
  int64_t images = 0, images_total = 0;
  bool complete() const { return classes == classes_total && images == images_total; }
  /// "mean" when complete, else "mean over 1 of 2 classes", "mean over 11 of 12 images" or both
  /// ("mean over 1 of 2 classes, 6 of 12 images").
  std::string mean_label() const;
};
Coverage coverage(const EvaluationReport& report);

/// One line saying what is missing, "" when complete: "1 of 2 classes could not be scored
/// (class 'a': <error>); 1 of 12 images skipped (unreadable)".
std::string incomplete_summary(const EvaluationReport& report);

/// Refuses a partial result before anything is written: a class without metrics needs
/// `allow_partial`; skipped images need `allow_partial` or `skip_bad`. The vcpclip::Error is
/// the incomplete_summary plus the flag that would accept it. No class with metrics at all is
/// always an error.
void require_complete(const EvaluationReport& report, bool allow_partial, bool skip_bad);

/// Mean over the classes where each metric is defined (ClassMetrics with name "mean",
/// num_images / num_anomalous summed). A metric undefined for some classes gets a warning.
ClassMetrics mean_metrics(const std::vector<ClassMetrics>& classes);

/// The metric columns in report order: key (json/csv), header (markdown), value.
struct MetricColumn {
  const char* key;
  const char* header;
  Metric (*get)(const ClassMetrics&);
  bool percent;
};
const std::vector<MetricColumn>& metric_columns();

nlohmann::json report_json(const EvaluationReport& report);
std::string report_csv(const EvaluationReport& report);
std::string report_markdown(const EvaluationReport& report);
/// Aligned table for the terminal (the markdown table without the warnings; with references, the
/// references vs zero-shot table after it).
std::string report_table(const EvaluationReport& report);

/// Writes DIR/metrics.json (with `run` as its "run" entry unless null), DIR/metrics.csv and
/// DIR/metrics.md (DIR is created): all three are written to temporary files first and only then
/// renamed into place, so a full disk leaves the previous reports (or none), never a mix; the
/// error names the file.
void write_reports(const EvaluationReport& report, const std::string& dir, const nlohmann::json& run = nullptr);

}  // namespace vcpclip::eval
