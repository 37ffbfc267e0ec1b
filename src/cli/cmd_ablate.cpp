// `vcpclip ablate --config C [--out DIR] [--only V]... [--set k=v]... [--dry-run] [--no-progress]`: runs the
// variants × seeds of an ablation config (train + eval, or eval only), skipping finished runs,
// and writes out_dir/summary.{md,csv,json,png}. All logic lives in vcpclip::app::run_ablation.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "vcpclip/app/ablate/ablate.h"

namespace {

struct AblateArgs {
  std::string config, out;
  std::vector<std::string> only, overrides;
  bool dry_run = false, no_progress = false;
};

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "ablate", "Run an ablation (variants x seeds of a run config), resumable; mean +/- std table and bar chart",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto a = std::make_shared<AblateArgs>();
      sub.add_option("--config,-c", a->config, "ablation config (configs/ablations/<name>.yaml)")->required();
      sub.add_option("--out,-o", a->out, "output directory (default: out_dir of the config)");
      sub.add_option("--only", a->only, "run only these variants (and those they train_from); repeatable")
          ->delimiter(',');
      sub.add_option("--set", a->overrides,
                     "config override key=value for every run (after the config's top-level `set`; a variant's "
                     "own `set` wins), repeatable");
      sub.add_flag("--dry-run", a->dry_run, "validate the config and list the runs and their state; run nothing");
      sub.add_flag("--no-progress", a->no_progress, "no progress bars");
      return [a]() {
        const auto cfg = vcpclip::app::load_ablation_config(a->config, a->out, a->overrides);
        vcpclip::app::AblateOptions opts;
        opts.only = a->only;
        opts.dry_run = a->dry_run;
        opts.progress = !a->no_progress;
        const auto summary = vcpclip::app::run_ablation(cfg, opts);
        if (a->dry_run) {
          std::printf("ablation %s: base %s, %zu variant(s) x %zu seed(s) -> %s\n", cfg.path.c_str(), cfg.base.c_str(),
                      cfg.variants.size(), cfg.seeds.size(), cfg.out_dir.c_str());
          for (const auto& r : summary.runs) {
            const auto& v = cfg.variant(r.variant);
            std::printf(
                "  %-28s seed %-6llu %-8s %s\n", r.variant.c_str(), static_cast<unsigned long long>(r.seed),
                r.state == "skipped" ? "done" : "pending",
                v.train ? "train + eval" : (v.train_from.empty() ? "eval" : ("eval of " + v.train_from).c_str()));
          }
          return 0;
        }
        std::printf("%s", vcpclip::app::summary_markdown(cfg, summary).c_str());
        std::printf("-> %s/summary.{md,csv,json,png}\n", cfg.out_dir.c_str());
        return 0;
      };
    });
