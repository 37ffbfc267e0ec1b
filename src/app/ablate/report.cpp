// `vcpclip ablate` summary: mean ± sample std over seeds, markdown / CSV / JSON tables and the
// grouped bar chart (see include/vcpclip/app/ablate/ablate.h).
#include "vcpclip/eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "vcpclip/app/ablate/ablate.h"
#include "vcpclip/app/ablate/html.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/atomic_file.h"

namespace vcpclip::app {

namespace fs = std::filesystem;

MetricSummary summarize(const std::vector<eval::Metric>& values) {
  MetricSummary s;
  double sum = 0;
  for (const auto& v : values)
    if (v && std::isfinite(*v)) {
      sum += *v;
      ++s.n;
    }
  if (s.n == 0) return s;
  const double mean = sum / static_cast<double>(s.n);
  s.mean = mean;
  if (s.n >= 2) {
    double ss = 0;
    for (const auto& v : values)
      if (v && std::isfinite(*v)) ss += (*v - mean) * (*v - mean);
    s.std = std::sqrt(ss / static_cast<double>(s.n - 1));
  }
  return s;
}

AblationSummary summarize_runs(const AblationConfig& cfg, std::vector<AblationRun> runs) {
  AblationSummary out;
  out.runs = std::move(runs);
  for (const auto& v : cfg.variants) {
    AblationSummary::Row row;
    row.variant = v.name;
    std::vector<const nlohmann::json*> done;
    for (const auto& r : out.runs) {
      if (r.variant != v.name) continue;
      if (r.state == "failed") ++row.failed;
      if ((r.state == "ran" || r.state == "skipped") && r.results.contains("metrics"))
        done.push_back(&r.results["metrics"]);
    }
    row.runs = static_cast<int64_t>(done.size());
    for (const auto& col : eval::metric_columns()) {
      std::vector<eval::Metric> values;
      for (const auto* m : done) {
        const auto it = m->find(col.key);
        if (it != m->end() && it->is_number())
          values.emplace_back(it->get<double>());
        else
          values.emplace_back(std::nullopt);
      }
      row.metrics.emplace_back(col.key, summarize(values));
    }
    out.rows.push_back(std::move(row));
  }
  return out;
}

namespace {

const eval::MetricColumn& column(const std::string& key) {
  for (const auto& c : eval::metric_columns())
    if (key == c.key) return c;
  fail("unknown metric '", key, "'");
}

std::string fmt(double v, bool percent) {
  char b[64];
  if (percent)
    std::snprintf(b, sizeof b, "%.2f", v * 100);
  else
    std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

std::string cell(const MetricSummary& s, bool percent) {
  if (!s.mean) return "n/a";
  std::string t = fmt(*s.mean, percent);
  if (s.std) t += " ± " + fmt(*s.std, percent);
  return t;
}

std::string num(const eval::Metric& m) {
  if (!m) return "";
  char b[64];
  std::snprintf(b, sizeof b, "%.10g", *m);
  return b;
}

nlohmann::json jnum(const eval::Metric& m) {
  if (!m) return nullptr;
  return *m;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

}  // namespace

std::string summary_markdown(const AblationConfig& cfg, const AblationSummary& s) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head = {"variant", "mode", "runs"};
  for (const auto& c : eval::metric_columns()) head.push_back(c.header);
  rows.push_back(head);
  for (const auto& row : s.rows) {
    const auto& v = cfg.variant(row.variant);
    std::vector<std::string> r = {row.variant,
                                  v.train ? "train" : (!v.train_from.empty() ? "eval of " + v.train_from : "eval"),
                                  std::to_string(row.runs) + "/" + std::to_string(cfg.seeds.size()) +
                                      (row.failed ? " (" + std::to_string(row.failed) + " failed)" : "")};
    for (const auto& [key, m] : row.metrics) r.push_back(cell(m, column(key).percent));
    rows.push_back(r);
  }
  std::vector<size_t> w(head.size(), 0);
  auto width = [](const std::string& t) {  // display width (UTF-8: count non-continuation bytes)
    size_t n = 0;
    for (unsigned char ch : t) n += (ch & 0xC0) != 0x80;
    return n;
  };
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], width(r[i]));
  std::ostringstream o;
  o << "# Ablation " << cfg.path << "\n\n";
  o << "base: `" << cfg.base << "`, seeds: ";
  for (size_t i = 0; i < cfg.seeds.size(); ++i) o << (i ? ", " : "") << cfg.seeds[i];
  o << "; mean ± sample std over seeds, in % (threshold: raw)\n\n";
  for (size_t ri = 0; ri < rows.size(); ++ri) {
    o << "|";
    for (size_t i = 0; i < rows[ri].size(); ++i) {
      const auto& t = rows[ri][i];
      const std::string pad(w[i] - width(t), ' ');
      o << " " << (i < 3 ? t + pad : pad + t) << " |";  // numbers right-aligned
    }
    o << "\n";
    if (ri == 0) {
      o << "|";
      for (size_t i = 0; i < w.size(); ++i)
        o << (i < 3 ? ":" + std::string(w[i] + 1, '-') : std::string(w[i] + 1, '-') + ":") << "|";
      o << "\n";
    }
  }
  bool any_error = false;
  for (const auto& r : s.runs)
    if (!r.error.empty()) {
      if (!any_error) o << "\nFailed runs:\n";
      any_error = true;
      o << "- " << r.variant << " seed " << r.seed << ": " << r.error << "\n";
    }
  return o.str();
}

std::string summary_csv(const AblationSummary& s) {
  std::ostringstream o;
  o << "variant,runs,failed";
  for (const auto& c : eval::metric_columns()) o << "," << c.key << "_mean," << c.key << "_std," << c.key << "_n";
  o << "\n";
  for (const auto& row : s.rows) {
    o << csv_field(row.variant) << "," << row.runs << "," << row.failed;
    for (const auto& [key, m] : row.metrics) o << "," << num(m.mean) << "," << num(m.std) << "," << m.n;
    o << "\n";
  }
  return o.str();
}

nlohmann::json summary_json(const AblationConfig& cfg, const AblationSummary& s) {
  nlohmann::json j;
  j["config"] = cfg.path;
  j["base"] = cfg.base;
  j["out_dir"] = cfg.out_dir;
  j["seeds"] = cfg.seeds;
  j["chart_metrics"] = cfg.metrics;
  j["variants"] = nlohmann::json::array();
  for (const auto& row : s.rows) {
    const auto& v = cfg.variant(row.variant);
    nlohmann::json jv = {{"name", v.name},
                         {"train", v.train},
                         {"train_from", v.train_from},
                         {"checkpoint", v.checkpoint},
                         {"overrides", cfg.variant_overrides(v.name)},
                         {"runs", row.runs},
                         {"failed", row.failed}};
    nlohmann::json sum = nlohmann::json::object();
    for (const auto& [key, m] : row.metrics) sum[key] = {{"mean", jnum(m.mean)}, {"std", jnum(m.std)}, {"n", m.n}};
    jv["summary"] = sum;
    j["variants"].push_back(jv);
  }
  j["runs"] = nlohmann::json::array();
  for (const auto& r : s.runs) {
    nlohmann::json jr = {{"variant", r.variant}, {"seed", r.seed}, {"state", r.state}};
    if (!r.error.empty()) jr["error"] = r.error;
    if (r.results.contains("metrics")) jr["metrics"] = r.results["metrics"];
    if (r.results.contains("finished_at")) jr["finished_at"] = r.results["finished_at"];
    j["runs"].push_back(jr);
  }
  return j;
}

// ---------------------------------------------------------------------------------------------
// Bar chart

namespace {

const int kFont = cv::FONT_HERSHEY_SIMPLEX;
const double kScale = 0.45;
const cv::Scalar kBlack(0, 0, 0), kGrey(120, 120, 120), kGrid(225, 225, 225);

cv::Size text_size(const std::string& t, double scale = kScale) {
  int base = 0;
  return cv::getTextSize(t, kFont, scale, 1, &base);
}

void put(cv::Mat& img, const std::string& t, cv::Point p, double scale = kScale, const cv::Scalar& c = kBlack) {
  cv::putText(img, t, p, kFont, scale, c, 1, cv::LINE_AA);
}

/// Text rotated 90° counter-clockwise with its top-left corner at `tl` (clipped to the image).
void put_vertical(cv::Mat& img, const std::string& t, cv::Point tl, double scale = kScale) {
  const auto sz = text_size(t, scale);
  cv::Mat patch(sz.height + 8, sz.width + 4, CV_8UC3, cv::Scalar(255, 255, 255));
  put(patch, t, {2, sz.height + 3}, scale);
  cv::Mat rot;
  cv::rotate(patch, rot, cv::ROTATE_90_COUNTERCLOCKWISE);
  cv::Rect r(tl.x, tl.y, rot.cols, rot.rows);
  r &= cv::Rect(0, 0, img.cols, img.rows);
  if (r.area() > 0) rot(cv::Rect(0, 0, r.width, r.height)).copyTo(img(r));
}

}  // namespace

namespace {

const cv::Scalar kPalette[] = {{180, 119, 31}, {14, 127, 255},  {44, 160, 44},   {40, 39, 214},  {189, 103, 148},
                               {75, 86, 140},  {194, 119, 227}, {127, 127, 127}, {34, 189, 188}, {207, 190, 23}};

/// Geometry of the grouped bar chart: one group per variant, one bar per chart metric.
struct ChartLayout {
  int nb = 0, ng = 0;  ///< bars per group, groups
  int bar = 16, bar_gap = 2, group_gap = 28, group_w = 0;
  int left = 70, right = 24, top = 0, plot_w = 0, plot_h = 300, W = 0, H = 0;
  bool vertical_names = false;
  double title_scale = 0.55;
  std::string title;
  std::vector<std::string> names;  ///< group labels (shortened)
  std::vector<cv::Point> legend;   ///< legend item positions
  int y0() const { return top + plot_h; }
  int ypix(double pct) const {
    return y0() - static_cast<int>(std::lround(std::clamp(pct, 0.0, 100.0) / 100.0 * plot_h));
  }
  int group_x(int g) const {
    return left + (plot_w - ng * (group_w + group_gap)) / 2 + group_gap / 2 + g * (group_w + group_gap);
  }
};

ChartLayout chart_layout(const AblationConfig& cfg, const AblationSummary& s) {
  ChartLayout L;
  L.nb = static_cast<int>(cfg.metrics.size());
  L.ng = static_cast<int>(s.rows.size());
  L.group_w = L.nb * L.bar + (L.nb - 1) * L.bar_gap;
  int name_w = 0;
  for (const auto& r : s.rows) {
    L.names.push_back(r.variant.size() > 32 ? r.variant.substr(0, 31) + "~" : r.variant);
    name_w = std::max(name_w, text_size(L.names.back()).width);
  }
  L.vertical_names = name_w > L.group_w + L.group_gap - 6;
  L.title = fs::path(cfg.path).stem().string() + ": mean +/- std over " + std::to_string(cfg.seeds.size()) + " seed" +
            (cfg.seeds.size() == 1 ? "" : "s");
  std::vector<int> item_w;
  int legend_w = 0;
  for (const auto& m : cfg.metrics) {
    item_w.push_back(14 + 6 + text_size(m).width + 18);
    legend_w += item_w.back();
  }
  // Wide enough for the groups, the title and (up to a limit) a one-line legend.
  L.plot_w = std::max(
      {L.ng * (L.group_w + L.group_gap), 360, text_size(L.title, L.title_scale).width, std::min(legend_w, 900)});
  L.W = L.left + L.plot_w + L.right;
  int lx = L.left, ly = 46;  // legend rows wrapped to the plot width, then the plot
  for (size_t m = 0; m < item_w.size(); ++m) {
    if (lx + item_w[m] > L.left + L.plot_w && lx > L.left) {
      lx = L.left;
      ly += 18;
    }
    L.legend.emplace_back(lx, ly);
    lx += item_w[m];
  }
  L.top = ly + 24;
  L.H = L.top + L.plot_h + (L.vertical_names ? name_w + 16 : 26) + 34;
  return L;
}

/// Title, legend, axes, grid, y ticks (0..100 %) and axis labels.
void draw_frame(cv::Mat& img, const ChartLayout& L, const std::vector<std::string>& metrics) {
  put(img, L.title, {L.left, 24}, L.title_scale);
  for (int m = 0; m < L.nb; ++m) {
    cv::rectangle(img, cv::Rect(L.legend[m].x, L.legend[m].y - 10, 14, 12), kPalette[m % 10], cv::FILLED);
    put(img, metrics[m], {L.legend[m].x + 20, L.legend[m].y});
  }
  const int x0 = L.left, y0 = L.y0();
  for (int t = 0; t <= 100; t += 10) {
    const int y = L.ypix(t);
    if (t > 0) cv::line(img, {x0 + 1, y}, {x0 + L.plot_w, y}, kGrid, 1);
    cv::line(img, {x0 - 5, y}, {x0, y}, kBlack, 1);
    const std::string lab = std::to_string(t);
    const auto sz = text_size(lab);
    put(img, lab, {x0 - 8 - sz.width, y + sz.height / 2});
  }
  cv::line(img, {x0, L.top}, {x0, y0}, kBlack, 1);
  cv::line(img, {x0, y0}, {x0 + L.plot_w, y0}, kBlack, 1);
  put_vertical(img, "score (%)", {8, L.top + L.plot_h / 2 - text_size("score (%)").width / 2});
  put(img, "variant", {x0 + L.plot_w / 2 - text_size("variant").width / 2, L.H - 10});
}

/// One group: a bar per metric (every metric is in [0, 1], shown in %), error bars = std, label.
void draw_group(cv::Mat& img, const ChartLayout& L, int g, const AblationSummary::Row& row,
                const std::vector<std::string>& metrics) {
  const int gx = L.group_x(g), y0 = L.y0();
  for (int m = 0; m < L.nb; ++m) {
    const int bx = gx + m * (L.bar + L.bar_gap);
    MetricSummary ms;
    for (const auto& [key, v] : row.metrics)
      if (key == metrics[m]) ms = v;
    if (!ms.mean) {
      put_vertical(img, "n/a", {bx + 1, y0 - 28}, 0.35);
      continue;
    }
    const int yt = L.ypix(*ms.mean * 100.0);
    if (yt < y0) cv::rectangle(img, cv::Rect(bx, yt, L.bar, y0 - yt), kPalette[m % 10], cv::FILLED);
    if (ms.std) {
      const int cx = bx + L.bar / 2, ya = L.ypix((*ms.mean - *ms.std) * 100.0),
                yb = L.ypix((*ms.mean + *ms.std) * 100.0);
      cv::line(img, {cx, ya}, {cx, yb}, kBlack, 1);
      cv::line(img, {cx - 4, ya}, {cx + 4, ya}, kBlack, 1);
      cv::line(img, {cx - 4, yb}, {cx + 4, yb}, kBlack, 1);
    }
  }
  const int cx = gx + L.group_w / 2;
  const auto sz = text_size(L.names[g]);
  if (L.vertical_names)
    put_vertical(img, L.names[g], {cx - (sz.height + 8) / 2, y0 + 6});
  else
    put(img, L.names[g], {cx - sz.width / 2, y0 + 6 + sz.height});
}

}  // namespace

std::vector<unsigned char> summary_png(const AblationConfig& cfg, const AblationSummary& s) {
  const ChartLayout L = chart_layout(cfg, s);
  cv::Mat img(L.H, L.W, CV_8UC3, cv::Scalar(255, 255, 255));
  draw_frame(img, L, cfg.metrics);
  for (int g = 0; g < L.ng; ++g) draw_group(img, L, g, s.rows[g], cfg.metrics);
  std::vector<unsigned char> png;
  VCP_CHECK(cv::imencode(".png", img, png), "cannot encode the ablation chart as PNG");
  return png;
}

void write_summary(const AblationConfig& cfg, const AblationSummary& s) {
  fs::create_directories(cfg.out_dir);
  const fs::path d(cfg.out_dir);
  io::write_file_atomically((d / "summary.md").string(), summary_markdown(cfg, s));
  io::write_file_atomically((d / "summary.csv").string(), summary_csv(s));
  const nlohmann::json j = summary_json(cfg, s);
  io::write_file_atomically((d / "summary.json").string(), j.dump(2) + "\n");
  const auto png = summary_png(cfg, s);
  io::write_file_atomically((d / "summary.png").string(),
                            std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
  io::write_file_atomically((d / "report.html").string(), ablate_report_html(j, cfg.out_dir));
}

}  // namespace vcpclip::app
