#pragma once
// report.html of `vcpclip predict` (README "Reports"), written beside scores.json from its
// contents only: a sortable table of the images (input path, score, and with a calibration the
// normalised score, the OK/NG decision and the defect area) with thumbnails of the heatmap
// overlay and of the mask. The thumbnails are relative links to the files that the entries name
// ("heatmap", "mask": paths relative to the output folder), so the folder can be copied.
// Every number and decision is tagged with its JSON pointer into scores.json (eval/html.h).
#include <nlohmann/json.hpp>
#include <string>

namespace vcpclip::app {

/// The page for a parsed scores.json (app/predict.h).
std::string predict_report_html(const nlohmann::json& scores);

/// Writes OUT/report.html (atomically) and returns its path.
std::string write_predict_report_html(const std::string& out_dir, const nlohmann::json& scores);

}  // namespace vcpclip::app
