#pragma once
// report.html of `vcpclip ablate` (README "Reports"), written beside summary.json from its
// contents: the summary table (per variant: mode, runs, mean ± sample std over seeds of every
// metric, in %; sortable; each number tagged with its JSON pointer into summary.json,
// eval/html.h), the bar chart (summary.png, a relative link), and every run with its state and
// a link to its own eval/report.html; with `out_dir` and runs that exported their pictures
// (eval.export_png), each class's same test images under every variant side by side.
#include <nlohmann/json.hpp>
#include <string>

namespace vcpclip::app {

/// The page for a parsed summary.json (app/ablate/ablate.h summary_json).
std::string ablate_report_html(const nlohmann::json& summary, const std::string& out_dir = "");

}  // namespace vcpclip::app
