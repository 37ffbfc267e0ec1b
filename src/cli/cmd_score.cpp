// `vcpclip score --maps DIR --config C [--out DIR] [--aupro exact|reference] [--skip-bad]
// [--allow-partial] [--set k=v]...`:
// metrics (docs/design.md §8) from saved per-image maps and scores.json (see vcpclip/app/score.h).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "vcpclip/app/score.h"
#include "vcpclip/common/error.h"

namespace {
struct ScoreArgs {
  std::string maps, config, out, aupro;
  std::vector<std::string> overrides;
  bool skip_bad = false, allow_partial = false;
};
}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "score", "Metrics from saved anomaly maps (<class>/<defect>/<stem>.npy + scores.json)",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto a = std::make_shared<ScoreArgs>();
      sub.add_option("--maps,-m", a->maps, "directory with <class>/<defect>/<stem>.npy and scores.json")->required();
      sub.add_option("--data,--config,-c", a->config, "run config whose eval.data section is the test set")->required();
      sub.add_option("--out,-o", a->out, "write metrics.json, metrics.csv, metrics.md here");
      sub.add_option("--aupro", a->aupro, "exact | reference (default: eval.aupro of the config, else exact)");
      sub.add_option("--set", a->overrides, "config override key=value (e.g. eval.aupro=reference)");
      sub.add_flag("--skip-bad", a->skip_bad, "leave out images whose map or score is missing or unusable");
      sub.add_flag("--allow-partial", a->allow_partial,
                   "report even when a class cannot be scored (the mean row says what it covers)");
      return [a]() {
        vcpclip::app::ScoreRequest req;
        req.maps_dir = a->maps;
        req.config_path = a->config;
        req.out_dir = a->out;
        req.overrides = a->overrides;
        req.skip_bad = a->skip_bad;
        req.allow_partial = a->allow_partial;
        if (!a->aupro.empty()) req.aupro = vcpclip::eval::parse_aupro_mode(a->aupro, "--aupro");
        const auto res = vcpclip::app::run_score(req);
        std::printf("%s", vcpclip::eval::report_table(res.report).c_str());
        const auto cov = vcpclip::eval::coverage(res.report);
        std::printf("%lld of %lld classes scored in %.2f s, AUPRO %s%s%s\n", static_cast<long long>(cov.classes),
                    static_cast<long long>(cov.classes_total), res.seconds, res.report.aupro_mode.c_str(),
                    a->out.empty() ? "" : "; reports in ", a->out.c_str());
        const std::string missing = vcpclip::eval::incomplete_summary(res.report);
        if (!missing.empty()) std::printf("PARTIAL RESULT: %s\n", missing.c_str());
        return 0;
      };
    });
