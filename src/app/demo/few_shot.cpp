// The demo's few-shot stage (see include/vcpclip/app/demo/few_shot.h).
#include "vcpclip/app/demo/few_shot.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <sstream>

#include "vcpclip/common/error.h"
#include "vcpclip/eval/report.h"

namespace vcpclip::app {

namespace {

nlohmann::json metrics_of(const eval::ClassMetrics& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& c : eval::metric_columns()) {
    const auto v = c.get(m);
    j[c.key] = v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  }
  return j;
}

nlohmann::json classes_of(const EvalResult& r) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& c : r.report.classes) j[c.name] = metrics_of(c);
  return j;
}

std::string cell(const eval::Metric& m, double scale) {
  char b[32];
  if (m)
    std::snprintf(b, sizeof b, "%.2f", *m * scale);
  else
    std::snprintf(b, sizeof b, "-");
  return b;
}

}  // namespace

DemoFewShotOptions parse_demo_few_shot(io::ConfigNode& node) {
  DemoFewShotOptions o;
  o.shots = node.get<std::vector<int64_t>>("shots", o.shots);
  o.seed = static_cast<uint64_t>(node.get<int64_t>("seed", static_cast<int64_t>(o.seed)));
  node.finish();
  for (auto k : o.shots) VCP_CHECK(k >= 1, "config key ", node.where("shots"), ": expected k ≥ 1, found ", k);
  return o;
}

std::vector<FewShotRun> run_demo_few_shot(const EvalRequest& zero_shot, const DemoFewShotOptions& opts) {
  std::vector<FewShotRun> runs;
  for (auto k : opts.shots) {
    EvalRequest r = zero_shot;
    r.few_shot.k = k;
    r.few_shot.seed = opts.seed;
    r.out_dir = zero_shot.out_dir + "_" + std::to_string(k) + "shot";
    r.eval.export_png = false;
    r.eval.save_maps = false;
    spdlog::info("demo: evaluating the trained head with {} reference image(s) per class -> {}", k, r.out_dir);
    runs.push_back({k, run_eval(r), r.out_dir});
  }
  return runs;
}

std::string format_few_shot_comparison(const EvalResult& zero_shot, const std::vector<FewShotRun>& runs) {
  if (runs.empty()) return "";
  std::ostringstream s;
  char line[256];
  s << "\nFew-shot: k normal train images per target class as references (docs/design.md §13):\n";
  std::string head = "class mean (%)         zero-shot";
  for (const auto& r : runs) {
    std::snprintf(line, sizeof line, " %9s", (std::to_string(r.k) + "-shot").c_str());
    head += line;
  }
  s << head << "    change\n";
  for (const auto& c : eval::metric_columns()) {
    const double scale = c.percent ? 100.0 : 1.0;
    const auto z = c.get(zero_shot.mean), last = c.get(runs.back().result.mean);
    std::snprintf(line, sizeof line, "%-22s %10s", c.header, cell(z, scale).c_str());
    std::string row = line;
    for (const auto& r : runs) {
      std::snprintf(line, sizeof line, " %9s", cell(c.get(r.result.mean), scale).c_str());
      row += line;
    }
    char change[32] = "";
    if (z && last) std::snprintf(change, sizeof change, "%+.2f", (*last - *z) * scale);
    std::snprintf(line, sizeof line, " %9s\n", change);
    s << row << line;
  }
  s << "per class, pixel AUROC / image AUROC (%): zero-shot -> " << runs.back().k << "-shot\n";
  for (size_t i = 0; i < zero_shot.report.classes.size(); ++i) {
    const auto& z = zero_shot.report.classes[i];
    const auto& f = runs.back().result.report.classes.at(i);
    std::snprintf(line, sizeof line, "  %-20s %6s -> %6s   %6s -> %6s\n", z.name.c_str(),
                  cell(z.pixel.auroc, 100).c_str(), cell(f.pixel.auroc, 100).c_str(), cell(z.image.auroc, 100).c_str(),
                  cell(f.image.auroc, 100).c_str());
    s << line;
  }
  return s.str();
}

nlohmann::json few_shot_json(const EvalResult& zero_shot, const std::vector<FewShotRun>& runs, uint64_t seed) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : runs)
    j.push_back({{"k", r.k},
                 {"seed", seed},
                 {"out_dir", r.out_dir},
                 {"references", r.result.few_shot},
                 {"mean", metrics_of(r.result.mean)},
                 {"classes", classes_of(r.result)}});
  return {{"zero_shot_classes", classes_of(zero_shot)}, {"runs", j}};
}

}  // namespace vcpclip::app
