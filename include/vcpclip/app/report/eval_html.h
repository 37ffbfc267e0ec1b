#pragma once
// report.html of `vcpclip eval` (README "Reports"): the page a person opens after an evaluation,
// written by app::run_eval beside metrics.json, from the files of the output folder only:
//   - the metrics table of metrics.json (per class and the mean, in % as in metrics.md, the
//     threshold with 3 decimals; sortable; every number tagged with its JSON pointer, eval/html.h),
//     the run (checkpoint, dataset, post-processing) and every warning;
//   - per class (with eval.export_png, from imgs/index.json, app/report/eval_png.h): the pixel ROC and
//     PRO plots, the best and the worst anomalous strip, then every other exported strip grouped
//     by defect (anomalous ones by their own pixel AUROC, best first; normal ones by score, lowest
//     first).
// Images are relative links into imgs/, so the folder can be copied as a whole.
#include <nlohmann/json.hpp>
#include <string>

namespace vcpclip::app {

/// The metrics table of a parsed metrics.json; `src` is the file's path relative to the page
/// (the data-src of its numbers).
std::string metrics_table_html(const nlohmann::json& metrics, const std::string& src);

/// The pictures of one class entry of imgs/index.json (plots, best/worst, strips by defect);
/// `prefix` is the evaluation folder relative to the page ("" or "eval/").
std::string class_pictures_html(const nlohmann::json& index_class, const std::string& prefix);

/// The whole page for an evaluation folder (reads DIR/metrics.json and, when present,
/// DIR/imgs/index.json). Error (vcpclip::Error naming the file) when metrics.json is missing or
/// unreadable.
std::string eval_report_html(const std::string& eval_dir);

/// Writes DIR/report.html (atomically) and returns its path.
std::string write_eval_report_html(const std::string& eval_dir);

/// Reads and parses a JSON file (vcpclip::Error naming it when missing or malformed).
nlohmann::json read_json_file(const std::string& path);

/// A metric key as a person reads it: "pixel_auroc" -> "pixel AUROC", "image_f1_max" -> "image F1 max".
std::string metric_label(const std::string& key);

}  // namespace vcpclip::app
