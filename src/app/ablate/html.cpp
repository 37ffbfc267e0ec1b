// report.html of `vcpclip ablate` (see app/ablate/html.h).
#include "vcpclip/app/ablate/html.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <vector>

#include "vcpclip/app/report/eval_html.h"
#include "vcpclip/eval/html.h"
#include "vcpclip/eval/report.h"

namespace vcpclip::app {

namespace h = eval::html;

namespace {

std::string str(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

std::optional<double> num(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

/// "mean ± std" of one metric of variant i, both numbers tagged.
std::string summary_cell(const nlohmann::json& s, const std::string& ptr, h::Format f) {
  const auto mean = num(s, "mean"), sd = num(s, "std");
  std::string c = "<td class=\"num\" data-sort=\"" + (mean ? h::format_number(mean, h::Format::f4) : "") + "\">" +
                  h::number_cell(mean, f, "summary.json", ptr + "/mean", "span");
  if (sd) c += " &plusmn; " + h::number_cell(sd, f, "summary.json", ptr + "/std", "span");
  return c + "</td>";
}

std::string summary_table(const nlohmann::json& j) {
  const size_t seeds = j.value("seeds", nlohmann::json::array()).size();
  std::string s =
      "<table class=\"sortable summary\"><thead><tr><th>variant</th><th>mode</th><th class=\"num\">runs</th>";
  for (const auto& c : eval::metric_columns())
    s += "<th class=\"num\">" + h::escape(metric_label(c.key)) + (c.percent ? " (%)" : "") + "</th>";
  s += "</tr></thead>\n<tbody>\n";
  const auto& variants = j.at("variants");
  for (size_t i = 0; i < variants.size(); ++i) {
    const auto& v = variants[i];
    const std::string mode =
        v.value("train", false) ? "train" : (str(v, "train_from").empty() ? "eval" : "eval of " + str(v, "train_from"));
    const int64_t runs = v.value("runs", int64_t(0)), failed = v.value("failed", int64_t(0));
    s += "<tr><td>" + h::escape(str(v, "name")) + "</td><td>" + h::escape(mode) + "</td><td class=\"num\">" +
         std::to_string(runs) + "/" + std::to_string(seeds) +
         (failed ? " (" + std::to_string(failed) + " failed)" : std::string()) + "</td>";
    for (const auto& c : eval::metric_columns()) {
      const auto& sum = v.at("summary");
      const nlohmann::json m = sum.contains(c.key) ? sum[c.key] : nlohmann::json::object();
      s += summary_cell(m, "/variants/" + std::to_string(i) + "/summary/" + c.key,
                        c.percent ? h::Format::pct2 : h::Format::f3);
    }
    s += "</tr>\n";
  }
  return s + "</tbody></table>\n";
}

std::string runs_table(const nlohmann::json& j) {
  std::string s =
      "<table class=\"sortable runs\"><thead><tr><th>variant</th><th class=\"num\">seed</th><th>state</th>"
      "<th class=\"num\">pixel AUROC (%)</th><th class=\"num\">image AUROC (%)</th><th>report</th>"
      "</tr></thead>\n<tbody>\n";
  const auto& runs = j.value("runs", nlohmann::json::array());
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    const std::string seed = r.value("seed", nlohmann::json()).dump();
    const std::string ptr = "/runs/" + std::to_string(i) + "/metrics/";
    const nlohmann::json m = r.value("metrics", nlohmann::json::object());
    const std::string eval_report = str(r, "variant") + "/seed_" + seed + "/eval/report.html";
    s += "<tr><td>" + h::escape(str(r, "variant")) + "</td><td class=\"num\">" + h::escape(seed) + "</td><td>" +
         h::escape(str(r, "state")) + (str(r, "error").empty() ? "" : ": " + h::escape(str(r, "error"))) + "</td>" +
         h::number_cell(num(m, "pixel_auroc"), h::Format::pct2, "summary.json", ptr + "pixel_auroc") +
         h::number_cell(num(m, "image_auroc"), h::Format::pct2, "summary.json", ptr + "image_auroc") +
         "<td><a href=\"" + h::url_path(eval_report) + "\">eval report</a></td></tr>\n";
  }
  return s + "</tbody></table>\n";
}

/// The strips a class shows in every column: the first variant's worst and best anomalous image
/// and its first normal image (the same test images for every variant).
std::vector<const nlohmann::json*> chosen_strips(const nlohmann::json& cls) {
  std::vector<const nlohmann::json*> out;
  if (!cls.contains("strips")) return out;
  std::vector<std::string> want;
  for (const char* which : {"worst", "best"})
    if (cls.contains(which) && cls[which].is_object()) want.push_back(str(cls[which], "strip"));
  for (const auto& st : cls.at("strips"))
    if (!st.value("anomalous", true)) {
      want.push_back(str(st, "strip"));
      break;
    }
  for (const auto& w : want)
    for (const auto& st : cls.at("strips"))
      if (str(st, "strip") == w && std::find(out.begin(), out.end(), &st) == out.end()) out.push_back(&st);
  return out;
}

/// Each class's chosen test images (rows) under every variant (columns), first seed, from the
/// runs' eval/imgs/index.json (written when the runs set eval.export_png); "" when none has one.
std::string strips_side_by_side(const nlohmann::json& j, const std::string& out_dir) {
  const auto& seeds = j.value("seeds", nlohmann::json::array());
  if (seeds.empty() || out_dir.empty()) return "";
  const std::string seed_dir = "/seed_" + seeds[0].dump() + "/eval/";
  std::vector<std::string> names;
  std::map<std::string, nlohmann::json> index;  // variant -> its imgs/index.json
  for (const auto& v : j.at("variants")) {
    names.push_back(str(v, "name"));
    const auto path = std::filesystem::path(out_dir) / (names.back() + seed_dir + "imgs/index.json");
    if (std::filesystem::exists(path)) index[names.back()] = read_json_file(path.string());
  }
  if (index.empty()) return "";
  std::string lead;  // the first variant, in the config's order, that exported pictures
  for (const auto& n : names)
    if (lead.empty() && index.count(n)) lead = n;
  const nlohmann::json& first = index.at(lead);
  const std::string columns = "repeat(" + std::to_string(names.size()) + ", minmax(160px, 1fr))";
  std::string s = "<h2>Pictures, side by side</h2>\n<p class=\"note\">Seed " + h::escape(seeds[0].dump()) +
                  ". Each row is one test image (the worst and the best anomalous image of " + h::escape(lead) +
                  " and a normal one), each column a variant. Strips: image | anomaly map | map above the "
                  "class threshold, ground truth outlined in green | ground truth.</p>\n";
  for (const auto& cls : first.value("classes", nlohmann::json::array())) {
    s += "<h3>" + h::escape(str(cls, "name")) + "</h3>\n<div style=\"display:grid; grid-template-columns:" + columns +
         "; gap:8px; overflow-x:auto\">";
    for (const auto& n : names) s += "<div><h4>" + h::escape(n) + "</h4></div>";
    for (const auto* st : chosen_strips(cls))
      for (const auto& n : names) {
        const std::string rel = n + seed_dir + str(*st, "strip");
        const bool have = index.count(n) && std::filesystem::exists(std::filesystem::path(out_dir) / rel);
        s += have ? "<div><img style=\"width:100%\" src=\"" + h::url_path(rel) + "\" alt=\"" +
                        h::escape(n + ": " + str(*st, "strip")) + "\"></div>"
                  : "<div><p class=\"note\">not exported</p></div>";
      }
    s += "</div>\n";
  }
  return s;
}

}  // namespace

std::string ablate_report_html(const nlohmann::json& j, const std::string& out_dir) {
  std::string seeds;
  for (const auto& s : j.value("seeds", nlohmann::json::array())) seeds += (seeds.empty() ? "" : ", ") + s.dump();
  std::string body = "<h2>Summary</h2>\n" + summary_table(j) +
                     "<p class=\"note\">Mean &plusmn; sample standard deviation over the seeds (" + h::escape(seeds) +
                     "), in % (the threshold raw). The same numbers are in summary.json, summary.csv and "
                     "summary.md. Click a column to sort.</p>\n";
  body += "<h2>Chart</h2>\n" + h::figure("summary.png", "class mean per variant; error bars: standard deviation");
  body += strips_side_by_side(j, out_dir);
  body += "<h2>Runs</h2>\n" + runs_table(j);
  body += "<h2>Configuration</h2>\n<dl class=\"meta\"><dt>ablation</dt><dd>" + h::escape(str(j, "config")) +
          "</dd><dt>base</dt><dd>" + h::escape(str(j, "base")) + "</dd></dl>\n";
  return h::page(
      "Ablation report",
      std::to_string(j.at("variants").size()) + " variants over seeds " + seeds + " (" + str(j, "config") + ")", body);
}

}  // namespace vcpclip::app
