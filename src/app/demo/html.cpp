// report.html of `vcpclip demo` (see app/demo/html.h).
#include "vcpclip/app/demo/html.h"

#include <cstdio>
#include <filesystem>
#include <map>

#include "vcpclip/app/report/eval_html.h"
#include "vcpclip/eval/html.h"
#include "vcpclip/eval/report.h"
#include "vcpclip/io/atomic_file.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

namespace h = eval::html;

namespace {

std::optional<double> num(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

/// Class means, untrained | trained | change.
std::string comparison(const nlohmann::json* u, const nlohmann::json& t) {
  std::string s = "<table class=\"compare\"><thead><tr><th>class mean</th>";
  if (u) s += "<th class=\"num\">untrained head</th>";
  s += "<th class=\"num\">trained head</th>";
  if (u) s += "<th class=\"num\">change</th>";
  s += "</tr></thead>\n<tbody>\n";
  for (const auto& c : eval::metric_columns()) {
    const h::Format f = c.percent ? h::Format::pct2 : h::Format::f3;
    const std::string ptr = std::string("/mean/") + c.key;
    const auto tv = num(t.at("mean"), c.key);
    s += "<tr><td>" + h::escape(metric_label(c.key)) + (c.percent ? " (%)" : "") + "</td>";
    if (u) s += h::number_cell(num(u->at("mean"), c.key), f, "eval_untrained/metrics.json", ptr);
    s += h::number_cell(tv, f, "eval/metrics.json", ptr);
    if (u) {
      const auto uv = num(u->at("mean"), c.key);
      std::string change = "n/a", cls;
      if (uv && tv) {
        const double k = c.percent ? 100.0 : 1.0;
        char b[32];
        std::snprintf(b, sizeof b, c.percent ? "%+.2f" : "%+.3f", (*tv - *uv) * k);
        change = b;
        if (c.percent) cls = *tv >= *uv ? " up" : " down";
      }
      s += "<td class=\"num" + cls + "\">" + change + "</td>";
    }
    s += "</tr>\n";
  }
  return s + "</tbody></table>\n";
}

/// The few-shot runs of the demo (DIR/eval_<k>shot/metrics.json), by k.
std::map<int, nlohmann::json> few_shot_runs(const fs::path& dir) {
  std::map<int, nlohmann::json> runs;
  if (!fs::is_directory(dir)) return runs;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    int k = 0;
    char tail[8] = {0};
    if (std::sscanf(name.c_str(), "eval_%dshot%7s", &k, tail) == 1 && k > 0 && fs::exists(e.path() / "metrics.json"))
      runs[k] = read_json_file((e.path() / "metrics.json").string());
  }
  return runs;
}

/// Class means and per-class pixel/image AUROC, zero-shot | k-shot... | change at the largest k.
std::string few_shot_comparison(const nlohmann::json& zero, const std::map<int, nlohmann::json>& runs) {
  std::string s = "<table class=\"compare\"><thead><tr><th>class mean</th><th class=\"num\">zero-shot</th>";
  for (const auto& [k, m] : runs) s += "<th class=\"num\">" + std::to_string(k) + "-shot</th>";
  s += "<th class=\"num\">change at " + std::to_string(runs.rbegin()->first) + "-shot</th></tr></thead>\n<tbody>\n";
  auto row = [&](const std::string& label, const std::string& ptr, const nlohmann::json& z, auto pick) {
    s += "<tr><td>" + h::escape(label) + "</td>" + h::number_cell(pick(z), h::Format::pct2, "eval/metrics.json", ptr);
    for (const auto& [k, m] : runs)
      s += h::number_cell(pick(m), h::Format::pct2, "eval_" + std::to_string(k) + "shot/metrics.json", ptr);
    const auto a = pick(z), b = pick(runs.rbegin()->second);
    std::string change = "n/a", cls;
    if (a && b) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%+.2f", (*b - *a) * 100.0);
      change = buf;
      cls = *b >= *a ? " up" : " down";
    }
    s += "<td class=\"num" + cls + "\">" + change + "</td></tr>\n";
  };
  for (const auto& c : eval::metric_columns())
    if (c.percent)
      row(metric_label(c.key) + " (%)", std::string("/mean/") + c.key, zero,
          [&](const nlohmann::json& m) { return num(m.at("mean"), c.key); });
  const auto& classes = zero.at("classes");
  for (size_t i = 0; i < classes.size(); ++i)
    for (const char* key : {"pixel_auroc", "image_auroc"}) {
      const std::string name = classes[i].value("name", "?");
      row(name + ": " + metric_label(key) + " (%)", "/classes/" + std::to_string(i) + "/" + key, zero,
          [&](const nlohmann::json& m) -> std::optional<double> {
            const auto& cs = m.at("classes");
            if (i >= cs.size() || cs[i].value("name", "") != name) return std::nullopt;
            return num(cs[i], key);
          });
    }
  return s + "</tbody></table>\n";
}

std::string strip_figure(const nlohmann::json* st, const std::string& prefix) {
  if (!st) return "<div><p class=\"note\">not exported for this head</p></div>";
  std::string cap = st->value("defect", "?") + "/" + fs::path(st->value("strip", "")).filename().string();
  if (num(*st, "pixel_auroc"))
    cap += ", image pixel AUROC " + h::format_number(num(*st, "pixel_auroc"), h::Format::pct2);
  return "<div>" + h::figure(prefix + st->value("strip", ""), cap, "strip") + "</div>";
}

/// One class: plots and strips of the same images in two columns (untrained | trained).
std::string class_pair(const nlohmann::json* u, const nlohmann::json& t) {
  std::string s = "<div class=\"pair\"><div><h4>untrained head</h4>";
  if (u)
    for (const char* plot : {"roc", "pro"})
      s += "<img class=\"plot\" style=\"width:49%\" src=\"" + h::url_path("eval_untrained/" + u->value(plot, "")) +
           "\" alt=\"" + plot + " (untrained)\">";
  s += "</div><div><h4>trained head</h4>";
  for (const char* plot : {"roc", "pro"})
    s += "<img class=\"plot\" style=\"width:49%\" src=\"" + h::url_path("eval/" + t.value(plot, "")) + "\" alt=\"" +
         plot + " (trained)\">";
  s += "</div></div>\n";
  // the same test image side by side: the trained head's strips in its order, then the others
  std::map<std::string, const nlohmann::json*> of_u;
  if (u && u->contains("strips"))  // pointers into *u, which outlives them
    for (const auto& st : u->at("strips")) of_u[st.value("strip", "")] = &st;
  std::vector<std::pair<const nlohmann::json*, const nlohmann::json*>> rows;
  for (const auto& st : t.at("strips")) {
    const auto it = of_u.find(st.value("strip", ""));
    rows.emplace_back(it == of_u.end() ? nullptr : it->second, &st);
    if (it != of_u.end()) of_u.erase(it);
  }
  for (const auto& [path, st] : of_u) rows.emplace_back(st, nullptr);
  for (const auto& [us, ts] : rows)
    s += "<div class=\"pair\">" + strip_figure(us, "eval_untrained/") + strip_figure(ts, "eval/") + "</div>\n";
  return s;
}

}  // namespace

std::string demo_report_html(const std::string& demo_dir, const std::string& headline) {
  const fs::path dir(demo_dir);
  const nlohmann::json t = read_json_file((dir / "eval" / "metrics.json").string());
  std::optional<nlohmann::json> u;
  if (fs::exists(dir / "eval_untrained" / "metrics.json"))
    u = read_json_file((dir / "eval_untrained" / "metrics.json").string());
  std::string body = "<h2>Untrained vs trained head</h2>\n" + comparison(u ? &*u : nullptr, t) +
                     "<p class=\"note\">Zero-shot on product classes the head never saw in training; means over "
                     "the classes, in %. The untrained head is the same model before training (same seeded "
                     "initialisation): the baseline that training has to beat.</p>\n";
  const auto shots = few_shot_runs(dir);
  if (!shots.empty())
    body += "<h2>Zero-shot vs few-shot</h2>\n" + few_shot_comparison(t, shots) +
            "<p class=\"note\">The trained head again, now also comparing every test patch with the patches of k "
            "good images of the same product, drawn from its train/good images, never a test image (README "
            "\"Few-shot: reference images\"). In %.</p>\n";
  body += "<h2>Per class</h2>\n<h3>trained head</h3>\n" + metrics_table_html(t, "eval/metrics.json");
  if (u) body += "<h3>untrained head</h3>\n" + metrics_table_html(*u, "eval_untrained/metrics.json");
  const fs::path ti = dir / "eval" / "imgs" / "index.json", ui = dir / "eval_untrained" / "imgs" / "index.json";
  if (fs::exists(ti)) {
    const nlohmann::json tj = read_json_file(ti.string());
    const nlohmann::json untrained_index = fs::exists(ui) ? read_json_file(ui.string()) : nlohmann::json::object();
    std::map<std::string, nlohmann::json> uj;
    for (const auto& c : untrained_index.value("classes", nlohmann::json::array())) uj[c.value("name", "")] = c;
    body +=
        "<h2>Pictures, side by side</h2>\n<p class=\"note\">Strips: image | anomaly map | map above the class "
        "threshold, ground truth outlined in green | ground truth. Left: untrained head, right: trained head, "
        "the same test image on each row.</p>\n";
    for (const auto& c : tj.at("classes")) {
      const std::string name = c.value("name", "");
      body += "<h3>" + h::escape(name) + "</h3>\n" + class_pair(uj.count(name) ? &uj.at(name) : nullptr, c);
    }
  }
  body += "<h2>More</h2>\n<p><a href=\"eval/report.html\">trained head: full evaluation report</a>";
  if (u) body += " &middot; <a href=\"eval_untrained/report.html\">untrained head: full evaluation report</a>";
  body += " &middot; <a href=\"summary.json\">summary.json</a></p>\n";
  return h::page("vcpclip demo", headline, body);
}

std::string write_demo_report_html(const std::string& demo_dir, const std::string& headline) {
  const std::string path = (fs::path(demo_dir) / "report.html").string();
  io::write_file_atomically(path, demo_report_html(demo_dir, headline));
  return path;
}

}  // namespace vcpclip::app
