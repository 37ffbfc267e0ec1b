// `vcpclip data check`: dataset counts and problems from a run config's data section.
#include <iostream>
#include <memory>

#include "command.h"
#include "vcpclip/app/data_check.h"

static vcpclip::cli::CommandRegistrar reg(
    "data", "Dataset tools: `data check` lists classes, counts and problems",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      sub.require_subcommand(1);
      auto a = std::make_shared<vcpclip::app::DataCheckArgs>();
      auto quiet = std::make_shared<bool>(false);
      auto shallow = std::make_shared<bool>(false);
      CLI::App* check = sub.add_subcommand(
          "check", "Classes, counts (normal/anomalous/masks) and problems; exit status 2 when problems exist");
      check->add_option("--config", a->config, "run config (YAML/JSON)")->required()->check(CLI::ExistingFile);
      check->add_option("--section", a->section, "config section whose `data:` mapping is checked (train|eval)")
          ->capture_default_str();
      check->add_option("--workers", a->workers, "decoding threads")->check(CLI::Range(1, 256))->capture_default_str();
      check->add_flag("--no-decode", *shallow, "only check that files exist (faster; no size/readability checks)");
      check->add_flag("--quiet", *quiet, "no progress bar");
      return [a, quiet, shallow, check]() {
        if (!check->parsed()) return 1;
        a->decode = !*shallow;
        a->progress = !*quiet;
        auto rep = vcpclip::app::run_data_check(*a, std::cout);
        return rep.ok() ? 0 : 2;
      };
    });
