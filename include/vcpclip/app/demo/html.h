#pragma once
// report.html of `vcpclip demo` (README "Reports"): the one file the demo tells you to open,
// DIR/report.html, built from the files of the run only: the untrained head (baseline) and the
// trained head side by side, as class means (with the change), per class (both metrics tables)
// and as pictures (per class the ROC / PRO plots and the strips of the same test images in two
// columns), with links to each evaluation's own report.html. Numbers are tagged with their JSON
// pointer into eval/metrics.json or eval_untrained/metrics.json (eval/html.h).
#include <string>

namespace vcpclip::app {

/// The page for a demo folder: DIR/eval/ (trained) and, when present, DIR/eval_untrained/;
/// `headline` is the subtitle (what was trained on what).
std::string demo_report_html(const std::string& demo_dir, const std::string& headline);

/// Writes DIR/report.html (atomically) and returns its path.
std::string write_demo_report_html(const std::string& demo_dir, const std::string& headline);

}  // namespace vcpclip::app
