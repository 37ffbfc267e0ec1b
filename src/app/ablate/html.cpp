// report.html of `vcpclip ablate` (see app/ablate/html.h).
#include "vcpclip/app/ablate/html.h"

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

}  // namespace

std::string ablate_report_html(const nlohmann::json& j) {
  std::string seeds;
  for (const auto& s : j.value("seeds", nlohmann::json::array())) seeds += (seeds.empty() ? "" : ", ") + s.dump();
  std::string body = "<h2>Summary</h2>\n" + summary_table(j) +
                     "<p class=\"note\">Mean &plusmn; sample standard deviation over the seeds (" + h::escape(seeds) +
                     "), in % (the threshold raw). The same numbers are in summary.json, summary.csv and "
                     "summary.md. Click a column to sort.</p>\n";
  body += "<h2>Chart</h2>\n" + h::figure("summary.png", "class mean per variant; error bars: standard deviation");
  body += "<h2>Runs</h2>\n" + runs_table(j);
  body += "<h2>Configuration</h2>\n<dl class=\"meta\"><dt>ablation</dt><dd>" + h::escape(str(j, "config")) +
          "</dd><dt>base</dt><dd>" + h::escape(str(j, "base")) + "</dd></dl>\n";
  return h::page(
      "Ablation report",
      std::to_string(j.at("variants").size()) + " variants over seeds " + seeds + " (" + str(j, "config") + ")", body);
}

}  // namespace vcpclip::app
