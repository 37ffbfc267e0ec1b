// report.html of `vcpclip predict` (see app/report/predict_html.h).
#include "vcpclip/app/report/predict_html.h"

#include <filesystem>

#include "vcpclip/eval/html.h"
#include "vcpclip/io/atomic_file.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

namespace h = eval::html;

namespace {

std::optional<double> number_at(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

std::string string_at(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

/// A thumbnail linking to its full-size file, or a dash when the entry names none.
std::string thumb(const nlohmann::json& e, const char* key, const std::string& alt) {
  const std::string file = string_at(e, key);
  if (file.empty()) return "<td class=\"note\">&ndash;</td>";
  const std::string url = h::url_path(file);
  return "<td><a href=\"" + url + "\"><img class=\"thumb\" src=\"" + url + "\" alt=\"" + h::escape(alt) +
         "\"></a></td>";
}

std::string row(const nlohmann::json& e, size_t i, bool calibrated) {
  const std::string ptr = "/images/" + std::to_string(i);
  std::string r = "<tr><td class=\"num\" data-sort=\"" + std::to_string(i + 1) + "\">" + std::to_string(i + 1) +
                  "</td><td class=\"path\">" + h::escape(string_at(e, "path")) + "</td>";
  r += h::number_cell(number_at(e, "score"), h::Format::f4, "scores.json", ptr + "/score");
  if (calibrated) {
    r += h::number_cell(number_at(e, "normalized_score"), h::Format::f3, "scores.json", ptr + "/normalized_score");
    const std::string d = string_at(e, "decision");
    const bool ng = d == "ng";
    r += "<td data-sort=\"" + std::string(ng ? "1" : "0") + "\"><span class=\"badge " + (ng ? "ng" : "ok") +
         "\" data-src=\"scores.json\" data-ptr=\"" + ptr + "/decision\" data-fmt=\"upper\">" +
         h::escape(ng ? "NG" : (d == "ok" ? "OK" : d)) + "</span></td>";
    const auto area = number_at(e, "mask_area");
    r += "<td class=\"num\" data-sort=\"" + (area ? std::to_string(int64_t(*area)) : std::string()) + "\">" +
         (area ? std::to_string(int64_t(*area)) + " px" : std::string("n/a")) + "</td>";
  }
  r += thumb(e, "heatmap", "heatmap of " + string_at(e, "path"));
  if (calibrated) r += thumb(e, "mask", "mask of " + string_at(e, "path"));
  return r + "</tr>\n";
}

std::string calibration_html(const nlohmann::json& c) {
  std::string s = "<dl class=\"meta\">";
  const std::pair<const char*, const char*> rows[] = {
      {"calibration", "path"}, {"class", "class"}, {"method", "method"}};
  for (const auto& [label, key] : rows)
    s += "<dt>" + std::string(label) + "</dt><dd>" + h::escape(string_at(c, key)) + "</dd>";
  s += "<dt>image threshold</dt><dd>" +
       h::number_cell(number_at(c, "image_threshold"), h::Format::f4, "scores.json", "/calibration/image_threshold",
                      "span") +
       "</dd><dt>pixel threshold</dt><dd>" +
       h::number_cell(number_at(c, "pixel_threshold"), h::Format::f4, "scores.json", "/calibration/pixel_threshold",
                      "span") +
       "</dd></dl>\n";
  return s;
}

}  // namespace

std::string predict_report_html(const nlohmann::json& scores) {
  const auto& images = scores.at("images");
  const bool calibrated = scores.contains("calibration") && scores["calibration"].is_object();
  size_t ng = 0;
  for (const auto& e : images) ng += string_at(e, "decision") == "ng";
  std::string body;
  if (calibrated) {
    body += "<h2>Decisions</h2>\n<p><span class=\"badge ng\">NG</span> " + std::to_string(ng) +
            " &nbsp; <span class=\"badge ok\">OK</span> " + std::to_string(images.size() - ng) + " of " +
            std::to_string(images.size()) +
            " images. NG when the normalised score reaches 0.5 (the calibration's image threshold); the mask marks "
            "the pixels above its pixel threshold.</p>\n" +
            calibration_html(scores["calibration"]);
  } else {
    body += "<p class=\"note\">No calibration given (--calibration): scores only, no OK/NG decisions or masks.</p>\n";
  }
  body +=
      "<h2>Images</h2>\n<table class=\"sortable images\"><thead><tr><th class=\"num\">#</th><th>image</th>"
      "<th class=\"num\">score</th>";
  if (calibrated) body += "<th class=\"num\">normalised score</th><th>decision</th><th class=\"num\">defect area</th>";
  body += "<th>heatmap</th>";
  if (calibrated) body += "<th>mask</th>";
  body += "</tr></thead>\n<tbody>\n";
  for (size_t i = 0; i < images.size(); ++i) body += row(images[i], i, calibrated);
  body +=
      "</tbody></table>\n<p class=\"note\">Click a column to sort; click a thumbnail for the full-size file. "
      "score = mean of the top-k raw-map values + mean of the top-k Post-VCP-map values (unnormalised).</p>\n";
  const auto& skipped = scores.value("skipped", nlohmann::json::array());
  if (!skipped.empty()) {
    body += "<h2>Skipped (unreadable)</h2>\n<ul>";
    for (const auto& s : skipped)
      body += "<li>" + h::escape(string_at(s, "path")) + ": " + h::escape(string_at(s, "error")) + "</li>";
    body += "</ul>\n";
  }
  body += "<h2>Run</h2>\n<dl class=\"meta\"><dt>checkpoint</dt><dd>" + h::escape(string_at(scores, "checkpoint")) +
          "</dd><dt>image size</dt><dd>" + h::escape(scores.value("image_size", nlohmann::json()).dump()) +
          "</dd><dt>alpha, sigma, top-k</dt><dd>" + h::escape(scores.value("alpha", nlohmann::json()).dump()) + ", " +
          h::escape(scores.value("sigma", nlohmann::json()).dump()) + ", " +
          h::escape(scores.value("topk", nlohmann::json()).dump()) + "</dd></dl>\n";
  const std::string subtitle = std::to_string(images.size()) + " images" +
                               (calibrated ? ", " + std::to_string(ng) + " NG" : std::string()) +
                               (skipped.empty() ? "" : ", " + std::to_string(skipped.size()) + " skipped");
  return h::page("Prediction report", subtitle, body);
}

std::string write_predict_report_html(const std::string& out_dir, const nlohmann::json& scores) {
  const std::string path = (fs::path(out_dir) / "report.html").string();
  io::write_file_atomically(path, predict_report_html(scores));
  return path;
}

}  // namespace vcpclip::app
