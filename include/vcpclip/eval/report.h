#pragma once
// Evaluation reports: metrics.json, metrics.csv, metrics.md and a table for the terminal.
//
// metrics.json (values are fractions in [0, 1]; an undefined value is null, never NaN):
//   {"aupro_mode": "exact",
//    "classes": [{"name": "bottle", "num_images": 83, "num_anomalous": 63,
//                 "pixel_auroc": .., "pixel_aupro": .., "pixel_ap": .., "pixel_f1_max": ..,
//                 "pixel_f1_threshold": .., "pixel_iou": .., "image_auroc": .., "image_ap": ..,
//                 "image_f1_max": .., "warnings": [..], "error": ".." (only if it failed)}, ...],
//    "mean": {"classes": 15, <the same metric keys>},   mean over the classes where defined
//    "warnings": [every warning of the run]}
// metrics.csv: one row per class and a last row "mean"; empty cell = undefined.
// metrics.md:  the reference's table (tabulate "pipe"): objects | auroc_px | aupro_px | ap_px |
//              f1_px | iou | auroc_sp | ap_sp | f1_sp | threshold, in % with 2 decimals (the
//              threshold with 3), a "mean" row, "n/a" where undefined, then the warnings.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vcpclip/eval/accumulator.h"

namespace vcpclip::eval {

struct EvaluationReport {
  std::string aupro_mode = "exact";
  std::vector<ClassMetrics> classes;
  std::vector<std::string> warnings;  ///< run-level warnings (class warnings stay in classes)
};

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
/// Aligned table for the terminal (the markdown table without the warnings).
std::string report_table(const EvaluationReport& report);

/// Writes DIR/metrics.json, DIR/metrics.csv, DIR/metrics.md atomically (DIR is created).
void write_reports(const EvaluationReport& report, const std::string& dir);

}  // namespace vcpclip::eval
