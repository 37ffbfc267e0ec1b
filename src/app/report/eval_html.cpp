// report.html of `vcpclip eval` (see app/report/eval_html.h).
#include "vcpclip/app/report/eval_html.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "vcpclip/common/error.h"
#include "vcpclip/eval/html.h"
#include "vcpclip/eval/report.h"
#include "vcpclip/io/atomic_file.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

namespace h = eval::html;

namespace {

std::optional<double> number_at(const nlohmann::json& j, const std::string& key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

std::string text_at(const nlohmann::json& j, const std::string& key, const std::string& fallback = "") {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

std::string metric_row(const nlohmann::json& row, const std::string& name, const std::string& src,
                       const std::string& ptr, const char* tr = "<tr>") {
  std::string r = std::string(tr) + "<td>" + h::escape(name) + "</td>";
  for (const auto& c : eval::metric_columns())
    r += h::number_cell(number_at(row, c.key), c.percent ? h::Format::pct2 : h::Format::f3, src, ptr + "/" + c.key);
  return r + "</tr>\n";
}

std::string run_html(const nlohmann::json& run) {
  if (!run.is_object()) return "";
  std::string s = "<dl class=\"meta\">";
  const std::pair<const char*, const char*> rows[] = {
      {"checkpoint", "checkpoint"}, {"config", "config"}, {"dataset", "dataset"}, {"layout", "layout"},
      {"image size", "image_size"}, {"alpha", "alpha"},   {"sigma", "sigma"},     {"top-k", "topk"},
      {"device", "device"},         {"images", "images"}, {"skipped", "skipped"}};
  for (const auto& [label, key] : rows) {
    std::string v = text_at(run, key);
    if (std::string(key) == "checkpoint" && v.empty()) v = "none: the UNTRAINED head (a baseline)";
    if (v.empty()) continue;
    s += "<dt>" + h::escape(label) + "</dt><dd>" + h::escape(v) + "</dd>";
  }
  return s + "</dl>\n";
}

/// Caption of a strip: defect / file, its own pixel AUROC (anomalous) or its score (normal).
std::string strip_caption(const nlohmann::json& s, const char* role = nullptr) {
  std::string c = role ? std::string(role) + ": " : "";
  c += fs::path(text_at(s, "strip")).parent_path().filename().string() + "/" +
       fs::path(text_at(s, "strip")).filename().string();
  const auto auroc = number_at(s, "pixel_auroc");
  if (auroc) c += ", image pixel AUROC " + h::format_number(auroc, h::Format::pct2);
  const auto score = number_at(s, "score");
  if (score) c += ", class-normalised score " + h::format_number(score, h::Format::f3);
  return c;
}

/// Anomalous first by pixel AUROC (best first), then normal ones by score (lowest first).
bool strip_before(const nlohmann::json& a, const nlohmann::json& b) {
  const auto ra = number_at(a, "pixel_auroc"), rb = number_at(b, "pixel_auroc");
  if (ra && rb) return *ra > *rb;
  if (ra || rb) return ra.has_value();
  return number_at(a, "score").value_or(0) < number_at(b, "score").value_or(0);
}

}  // namespace

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  VCP_CHECK(in.good(), "report: cannot read ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    fail("report: ", path, " is not valid JSON: ", e.what());
  }
}

std::string metric_label(const std::string& key) {
  static const std::map<std::string, std::string> words = {
      {"auroc", "AUROC"}, {"aupro", "AUPRO"}, {"ap", "AP"}, {"f1", "F1"}, {"iou", "IoU"}};
  std::string out, word;
  std::istringstream in(key);
  while (std::getline(in, word, '_')) out += (out.empty() ? "" : " ") + (words.count(word) ? words.at(word) : word);
  return out;
}

std::string metrics_table_html(const nlohmann::json& metrics, const std::string& src) {
  std::string s = "<div class=\"scroll\"><table class=\"sortable metrics\"><thead><tr><th>class</th>";
  for (const auto& c : eval::metric_columns())
    s += "<th class=\"num\" title=\"" + h::escape(c.header) + " in metrics.md\">" + h::escape(metric_label(c.key)) +
         (c.percent ? " (%)" : "") + "</th>";
  s += "</tr></thead>\n<tbody>\n";
  const auto& classes = metrics.at("classes");
  for (size_t i = 0; i < classes.size(); ++i)
    s += metric_row(classes[i], text_at(classes[i], "name", "?"), src, "/classes/" + std::to_string(i));
  s += "</tbody>\n<tfoot>\n";
  s +=
      metric_row(metrics.at("mean"), text_at(metrics.at("mean"), "label", "mean"), src, "/mean", "<tr class=\"mean\">");
  s += "</tfoot></table></div>\n";
  return s;
}

std::string class_pictures_html(const nlohmann::json& c, const std::string& prefix) {
  std::string s = "<div class=\"plots\">";
  for (const char* plot : {"roc", "pro"})
    if (c.contains(plot)) s += "<img src=\"" + h::url_path(prefix + text_at(c, plot)) + "\" alt=\"" + plot + "\">";
  s += "</div>\n";
  std::vector<nlohmann::json> rest;
  std::string best, worst;
  for (const auto& st : c.value("strips", nlohmann::json::array())) {
    const std::string path = text_at(st, "strip");
    if (c.contains("best") && c["best"].is_object() && text_at(c["best"], "strip") == path)
      best = h::figure(prefix + path, strip_caption(st, "best"), "strip");
    else if (c.contains("worst") && c["worst"].is_object() && text_at(c["worst"], "strip") == path)
      worst = h::figure(prefix + path, strip_caption(st, "worst"), "strip");
    else
      rest.push_back(st);
  }
  if (!best.empty() || !worst.empty()) s += "<h4>best and worst anomalous image</h4>\n" + best + worst;
  std::map<std::string, std::vector<nlohmann::json>> by_defect;
  for (const auto& st : rest) by_defect[text_at(st, "defect", "?")].push_back(st);
  for (auto& [defect, list] : by_defect) {
    std::stable_sort(list.begin(), list.end(), strip_before);
    s += "<h4>" + h::escape(defect) + " (" + std::to_string(list.size()) + " more)</h4>\n";
    for (const auto& st : list) s += h::figure(prefix + text_at(st, "strip"), strip_caption(st), "strip");
  }
  return s;
}

std::string eval_report_html(const std::string& eval_dir) {
  const fs::path dir(eval_dir);
  const nlohmann::json m = read_json_file((dir / "metrics.json").string());
  const nlohmann::json run = m.value("run", nlohmann::json());
  std::string body;
  if (!m.value("complete", true))
    body += "<p class=\"warn\"><b>Partial result:</b> " + h::escape(text_at(m, "incomplete")) + "</p>\n";
  if (run.is_object() && run.value("untrained_head", false))
    body += "<p class=\"warn\">No checkpoint: these are the numbers of the UNTRAINED head, a baseline.</p>\n";
  body += "<h2>Metrics</h2>\n" + metrics_table_html(m, "metrics.json");
  body += "<p class=\"note\">Values in % (AUPRO: " + h::escape(text_at(m, "aupro_mode")) +
          "); threshold = the pixel F1-max threshold on the class-normalised maps. The same numbers are in "
          "metrics.json, metrics.csv and metrics.md. Click a column to sort.</p>\n";
  for (const auto& w : m.value("warnings", nlohmann::json::array()))
    body += "<p class=\"warn\">" + h::escape(w.is_string() ? w.get<std::string>() : w.dump()) + "</p>\n";
  body += "<h2>Run</h2>\n" + run_html(run);
  const fs::path index = dir / "imgs" / "index.json";
  if (fs::exists(index)) {
    const nlohmann::json idx = read_json_file(index.string());
    body +=
        "<h2>Per class</h2>\n<p class=\"note\">Strips: image | anomaly map | map above the class threshold, "
        "ground truth outlined in green | ground truth.</p>\n<nav class=\"toc\">";
    for (const auto& c : idx.at("classes"))
      body += "<a href=\"#class-" + h::url_path(text_at(c, "name")) + "\">" + h::escape(text_at(c, "name")) + "</a>";
    body += "</nav>\n";
    for (const auto& c : idx.at("classes"))
      body += "<h3 id=\"class-" + h::url_path(text_at(c, "name")) + "\">" + h::escape(text_at(c, "name")) + "</h3>\n" +
              class_pictures_html(c, "");
  } else {
    body += "<p class=\"note\">No pictures: run eval with --export-png (eval.export_png) for plots and strips.</p>\n";
  }
  const auto cls = m.at("classes").size();
  const std::string subtitle = std::to_string(cls) + (cls == 1 ? " class, " : " classes, ") +
                               text_at(run, "images", "?") + " images of " + text_at(run, "dataset", "?");
  return h::page("Evaluation report", subtitle, body);
}

std::string write_eval_report_html(const std::string& eval_dir) {
  const std::string path = (fs::path(eval_dir) / "report.html").string();
  io::write_file_atomically(path, eval_report_html(eval_dir));
  return path;
}

}  // namespace vcpclip::app
