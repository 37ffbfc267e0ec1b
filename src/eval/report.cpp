// metrics.json / metrics.csv / metrics.md writers.
#include "vcpclip/eval/report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "vcpclip/common/error.h"
#include "vcpclip/eval/html.h"
#include "vcpclip/io/atomic_file.h"

namespace vcpclip::eval {

const std::vector<MetricColumn>& metric_columns() {
  static const std::vector<MetricColumn> cols = {
      {"pixel_auroc", "auroc_px", [](const ClassMetrics& m) { return m.pixel.auroc; }, true},
      {"pixel_aupro", "aupro_px", [](const ClassMetrics& m) { return m.pixel.aupro; }, true},
      {"pixel_ap", "ap_px", [](const ClassMetrics& m) { return m.pixel.ap; }, true},
      {"pixel_f1_max", "f1_px", [](const ClassMetrics& m) { return m.pixel.f1_max; }, true},
      {"pixel_iou", "iou", [](const ClassMetrics& m) { return m.pixel.iou; }, true},
      {"image_auroc", "auroc_sp", [](const ClassMetrics& m) { return m.image.auroc; }, true},
      {"image_ap", "ap_sp", [](const ClassMetrics& m) { return m.image.ap; }, true},
      {"image_f1_max", "f1_sp", [](const ClassMetrics& m) { return m.image.f1_max; }, true},
      {"pixel_f1_threshold", "threshold", [](const ClassMetrics& m) { return m.pixel.f1_threshold; }, false},
  };
  return cols;
}

namespace {

Metric* slot(ClassMetrics& m, const std::string& key) {
  if (key == "pixel_auroc") return &m.pixel.auroc;
  if (key == "pixel_aupro") return &m.pixel.aupro;
  if (key == "pixel_ap") return &m.pixel.ap;
  if (key == "pixel_f1_max") return &m.pixel.f1_max;
  if (key == "pixel_iou") return &m.pixel.iou;
  if (key == "pixel_f1_threshold") return &m.pixel.f1_threshold;
  if (key == "image_auroc") return &m.image.auroc;
  if (key == "image_ap") return &m.image.ap;
  return &m.image.f1_max;
}

nlohmann::json value(const Metric& m) {
  if (!m || !std::isfinite(*m)) return nullptr;
  return *m;
}

/// The same text as report.html's cells (eval/html.h).
std::string cell(const Metric& m, bool percent) {
  return html::format_number(m, percent ? html::Format::pct2 : html::Format::f3);
}

std::vector<std::vector<std::string>> table_rows(const EvaluationReport& r, ClassMetrics* mean_out) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head = {"objects"};
  for (const auto& c : metric_columns()) head.push_back(c.header);
  rows.push_back(head);
  ClassMetrics mean = mean_metrics(r.classes);
  auto add = [&](const ClassMetrics& m, const std::string& name) {
    std::vector<std::string> row = {name};
    for (const auto& c : metric_columns()) row.push_back(cell(c.get(m), c.percent));
    rows.push_back(row);
  };
  for (const auto& m : r.classes) add(m, m.name);
  add(mean, coverage(r).mean_label());
  if (mean_out) *mean_out = mean;
  return rows;
}

std::string pipe_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], row[i].size());
  std::ostringstream os;
  auto line = [&](const std::vector<std::string>& row) {
    os << "|";
    for (size_t i = 0; i < row.size(); ++i) {
      const size_t pad = w[i] - row[i].size();
      if (i == 0)
        os << " " << row[i] << std::string(pad, ' ') << " |";
      else
        os << " " << std::string(pad, ' ') << row[i] << " |";
    }
    os << "\n";
  };
  line(rows[0]);
  os << "|";
  for (size_t i = 0; i < w.size(); ++i)
    os << (i == 0 ? ":" + std::string(w[i] + 1, '-') : std::string(w[i] + 1, '-') + ":") << "|";
  os << "\n";
  for (size_t r = 1; r < rows.size(); ++r) line(rows[r]);
  return os.str();
}

std::vector<std::string> all_warnings(const EvaluationReport& r, const ClassMetrics& mean) {
  std::vector<std::string> out = r.warnings;
  for (const auto& c : r.classes) {
    if (!c.error.empty()) out.push_back("class '" + c.name + "' not evaluated: " + c.error);
    out.insert(out.end(), c.warnings.begin(), c.warnings.end());
  }
  out.insert(out.end(), mean.warnings.begin(), mean.warnings.end());
  return out;
}

std::string csv_value(const Metric& m) {
  if (!m || !std::isfinite(*m)) return "";
  char b[64];
  std::snprintf(b, sizeof b, "%.10g", *m);
  return b;
}

}  // namespace

std::string Coverage::mean_label() const {
  std::vector<std::string> parts;
  if (classes != classes_total) parts.push_back(msg(classes, " of ", classes_total, " classes"));
  if (images != images_total) parts.push_back(msg(images, " of ", images_total, " images"));
  if (parts.empty()) return "mean";
  return "mean over " + parts[0] + (parts.size() > 1 ? ", " + parts[1] : "");
}

Coverage coverage(const EvaluationReport& r) {
  Coverage c;
  c.classes_total = int64_t(r.classes.size());
  for (const auto& m : r.classes) {
    c.images_total += m.num_images + m.num_skipped;
    if (!m.error.empty()) continue;
    ++c.classes;
    c.images += m.num_images;
  }
  return c;
}

std::string incomplete_summary(const EvaluationReport& r) {
  const Coverage c = coverage(r);
  std::vector<std::string> parts;
  if (c.classes != c.classes_total) {
    std::string failed;
    for (const auto& m : r.classes)
      if (!m.error.empty()) failed += (failed.empty() ? "" : "; ") + msg("class '", m.name, "': ", m.error);
    parts.push_back(
        msg(c.classes_total - c.classes, " of ", c.classes_total, " classes could not be scored (", failed, ")"));
  }
  int64_t skipped = 0;
  for (const auto& m : r.classes) skipped += m.num_skipped;
  if (skipped > 0) parts.push_back(msg(skipped, " of ", c.images_total, " images skipped (unreadable)"));
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

void require_complete(const EvaluationReport& r, bool allow_partial, bool skip_bad) {
  const Coverage c = coverage(r);
  VCP_CHECK(c.classes > 0 || c.classes_total == 0,
            "no class could be scored, no metrics written: ", incomplete_summary(r));
  if (c.complete() || allow_partial) return;
  if (c.classes == c.classes_total && skip_bad) return;  // only skipped images, as asked
  fail("incomplete result, no metrics written: ", incomplete_summary(r),
       " (--allow-partial reports what could be scored, labelled as partial)");
}

ClassMetrics mean_metrics(const std::vector<ClassMetrics>& classes) {
  ClassMetrics mean;
  mean.name = "mean";
  for (const auto& c : classes) {
    if (!c.error.empty()) continue;
    mean.num_images += c.num_images;
    mean.num_anomalous += c.num_anomalous;
    mean.num_skipped += c.num_skipped;
  }
  for (const auto& col : metric_columns()) {
    double sum = 0;
    int n = 0;
    std::string missing;
    for (const auto& c : classes) {
      const Metric v = col.get(c);
      if (v && std::isfinite(*v)) {
        sum += *v;
        ++n;
      } else {
        missing += (missing.empty() ? "" : ", ") + c.name;
      }
    }
    if (n > 0) *slot(mean, col.key) = sum / n;
    if (!missing.empty() && !classes.empty())
      mean.warnings.push_back("mean " + std::string(col.key) + " is over " + std::to_string(n) + " of " +
                              std::to_string(classes.size()) + " classes (undefined for " + missing + ")");
  }
  return mean;
}

nlohmann::json report_json(const EvaluationReport& r) {
  nlohmann::json j;
  const Coverage cov = coverage(r);
  j["aupro_mode"] = r.aupro_mode;
  j["complete"] = cov.complete();
  j["classes"] = nlohmann::json::array();
  for (const auto& c : r.classes) {
    nlohmann::json o;
    o["name"] = c.name;
    o["num_images"] = c.num_images;
    o["num_anomalous"] = c.num_anomalous;
    o["num_skipped"] = c.num_skipped;
    for (const auto& col : metric_columns()) o[col.key] = value(col.get(c));
    o["warnings"] = c.warnings;
    if (!c.error.empty()) o["error"] = c.error;
    j["classes"].push_back(o);
  }
  const ClassMetrics mean = mean_metrics(r.classes);
  nlohmann::json m;
  m["label"] = cov.mean_label();
  m["classes"] = cov.classes;
  m["classes_total"] = cov.classes_total;
  m["images"] = cov.images;
  m["images_total"] = cov.images_total;
  for (const auto& col : metric_columns()) m[col.key] = value(col.get(mean));
  j["mean"] = m;
  if (!cov.complete()) j["incomplete"] = incomplete_summary(r);
  j["warnings"] = all_warnings(r, mean);
  if (!r.references.empty()) {
    j["references_vs_zero_shot"] = nlohmann::json::array();
    for (const auto& e : r.references) j["references_vs_zero_shot"].push_back(e.to_json());
  }
  return j;
}

std::string report_csv(const EvaluationReport& r) {
  std::ostringstream os;
  os << "class,num_images,num_anomalous";
  for (const auto& col : metric_columns()) os << "," << col.key;
  os << "\n";
  auto row = [&](const ClassMetrics& m, std::string name) {
    if (name.find_first_of(",\"\n") != std::string::npos) {
      std::string q = "\"";
      for (char ch : name) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      name = q + "\"";
    }
    os << name << "," << m.num_images << "," << m.num_anomalous;
    for (const auto& col : metric_columns()) os << "," << csv_value(col.get(m));
    os << "\n";
  };
  for (const auto& c : r.classes) row(c, c.name);
  row(mean_metrics(r.classes), coverage(r).mean_label());
  return os.str();
}

std::string report_table(const EvaluationReport& r) {
  const std::string refs = reference_effects_table(r.references);
  return pipe_table(table_rows(r, nullptr)) + (refs.empty() ? "" : "\n" + refs);
}

std::string report_markdown(const EvaluationReport& r) {
  ClassMetrics mean;
  auto rows = table_rows(r, &mean);
  std::ostringstream os;
  os << "# Evaluation metrics\n\n";
  const std::string missing = incomplete_summary(r);
  if (!missing.empty()) os << "**Partial result:** " << missing << ".\n\n";
  os << "AUPRO: " << r.aupro_mode << ". Values in %, threshold = pixel F1-max threshold.\n\n";
  os << pipe_table(rows);
  if (!r.references.empty())
    os << "\n## References vs zero-shot\n\nAUROC in %, the same images scored without and with the few-shot "
          "references; WORSE = a fall of more than 1 point.\n\n"
       << reference_effects_table(r.references);
  const auto warns = all_warnings(r, mean);
  if (!warns.empty()) {
    os << "\n## Warnings\n\n";
    for (const auto& w : warns) os << "- " << w << "\n";
  }
  return os.str();
}

void write_reports(const EvaluationReport& r, const std::string& dir, const nlohmann::json& run) {
  io::make_directories(dir);
  nlohmann::json j = report_json(r);
  if (!run.is_null()) j["run"] = run;
  io::AtomicFileWriter json(dir + "/metrics.json"), csv(dir + "/metrics.csv"), md(dir + "/metrics.md");
  json.write(j.dump(2) + "\n");
  csv.write(report_csv(r));
  md.write(report_markdown(r));
  json.commit();
  csv.commit();
  md.commit();
}

}  // namespace vcpclip::eval
