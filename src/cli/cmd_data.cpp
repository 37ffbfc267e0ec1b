// `vcpclip data check -c C [--section train|eval] [--set k=v]...`: dataset counts and problems from a
// run config's data section. All logic lives in vcpclip::app (app/data_check.h).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/data_check.h"

namespace {

struct DataCheckArgs {
  std::string config;
  std::vector<std::string> overrides;
  vcpclip::app::DataCheckFlags flags;
  bool shallow = false, no_progress = false;
};

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "data", "Dataset tools: `data check` lists classes, counts and problems",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      sub.require_subcommand(1);
      auto a = std::make_shared<DataCheckArgs>();
      CLI::App* check = sub.add_subcommand(
          "check", "Classes, counts (normal/anomalous/masks) and problems; exit status 2 when problems exist");
      check->add_option("--config,-c", a->config, "run config (YAML/JSON)")->required();
      check->add_option("--section", a->flags.section, "which data section is checked: train (train.data) or eval")
          ->check(CLI::IsMember({"train", "eval"}))
          ->capture_default_str();
      check->add_option("--set", a->overrides, "config override key=value (e.g. train.data.root=data/visa)");
      check->add_option("--workers", a->flags.workers, "decoding threads")
          ->check(CLI::Range(1, 256))
          ->capture_default_str();
      check->add_flag("--no-decode", a->shallow, "only check that files exist (faster; no size/readability checks)");
      check->add_flag("--no-progress,--quiet", a->no_progress, "no progress bar");
      return [a, check]() {
        if (!check->parsed()) return 1;
        a->flags.decode = !a->shallow;
        a->flags.progress = !a->no_progress;
        const auto cfg = vcpclip::app::load_run_config(a->config, a->overrides);
        const auto req = vcpclip::app::make_data_check_request(cfg, a->flags);
        return vcpclip::app::run_data_check(req, std::cout).ok() ? 0 : 2;
      };
    });
