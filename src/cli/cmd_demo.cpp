// `vcpclip demo [--out DIR] [--config C] [--set key=value]...`: synthetic data, the demo backbone,
// training, zero-shot evaluation of the untrained and the trained head (configs/demo.yaml, built
// in). All logic lives in vcpclip::app::run_demo.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "vcpclip/app/demo/demo.h"

namespace {

struct DemoArgs {
  std::string config, out;
  std::vector<std::string> overrides;
  bool no_progress = false, print_config = false;
};

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "demo",
    "Run the whole protocol without downloads: synthetic auxiliary/target sets of disjoint products, the "
    "demo backbone, training on the auxiliary set, zero-shot evaluation of the untrained and trained head on the "
    "target set, anomaly-map PNGs and report.html to open (configs/demo.yaml, built in)",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto a = std::make_shared<DemoArgs>();
      sub.add_option("--out,-o", a->out, "output directory (default: demo.out_dir = runs/demo)");
      sub.add_option("--config,-c", a->config, "demo config (default: the built-in configs/demo.yaml)");
      sub.add_option("--set", a->overrides,
                     "config override key=value (e.g. demo.synthetic.target.seed=7), repeatable");
      sub.add_flag("--no-progress", a->no_progress, "no progress bars");
      sub.add_flag("--print-config", a->print_config, "print the built-in demo config and exit");
      return [a]() {
        if (a->print_config) {
          std::cout << vcpclip::app::embedded_demo_config();
          return 0;
        }
        auto cfg = vcpclip::app::load_demo_config(a->config, a->overrides, a->out);
        vcpclip::app::DemoOptions o;
        o.progress = !a->no_progress;
        vcpclip::app::run_demo(cfg, std::cout, o);
        return 0;
      };
    });
