// `vcpclip score --maps DIR --config C [--out DIR] [--aupro exact|reference] [--set k=v]...`:
// metrics (DESIGN §8) from saved per-image maps and scores.json (see vcpclip/app/score.h).
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
      return [a]() {
        vcpclip::app::ScoreRequest req;
        req.maps_dir = a->maps;
        req.config_path = a->config;
        req.out_dir = a->out;
        req.overrides = a->overrides;
        if (!a->aupro.empty()) req.aupro = vcpclip::eval::parse_aupro_mode(a->aupro, "--aupro");
        const auto res = vcpclip::app::run_score(req);
        std::printf("%s", vcpclip::eval::report_table(res.report).c_str());
        int failed = 0;
        for (const auto& c : res.report.classes) failed += c.error.empty() ? 0 : 1;
        std::printf("%zu classes scored (%d failed) in %.2f s, AUPRO %s%s%s\n", res.report.classes.size() - failed,
                    failed, res.seconds, res.report.aupro_mode.c_str(), a->out.empty() ? "" : "; reports in ",
                    a->out.c_str());
        VCP_CHECK(failed < int(res.report.classes.size()), "no class could be scored (see the errors above)");
        return 0;
      };
    });
