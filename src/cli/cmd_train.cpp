// `vcpclip train --config C [--out DIR] [--set key=value]... [--resume] [--init-from K] [--max-steps N]`:
// trains VCP-CLIP's head (docs/design.md §7). All logic lives in vcpclip::app::run_train.
#include <cstdio>
#include <memory>

#include "command.h"
#include "vcpclip/app/train.h"

static vcpclip::cli::CommandRegistrar reg(
    "train", "Train the VCP head on an auxiliary dataset (data parallel via RANK/WORLD_SIZE env)",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto c = std::make_shared<vcpclip::app::TrainCommand>();
      auto no_progress = std::make_shared<bool>(false);
      auto out = std::make_shared<std::string>();
      sub.add_option("--config,-c", c->config, "run config (sections runtime, model, train with train.data)")
          ->required();
      sub.add_option("-o,--out", *out, "output directory (default: train.out_dir)");
      sub.add_option("--set", c->overrides, "config override key=value (e.g. train.epochs=2), repeatable");
      sub.add_flag("--resume", c->flags.resume, "continue the run in train.out_dir from its resume.pt");
      sub.add_option("--init-from", c->flags.init_from,
                     "start from this checkpoint's trainable tensors (fresh optimizer)");
      sub.add_option("--max-steps", c->flags.max_steps, "stop after this many optimizer steps in total");
      sub.add_flag("--no-progress", *no_progress, "no progress bar");
      return [c, no_progress, out]() {
        c->flags.progress = !*no_progress;
        if (!out->empty()) c->overrides.push_back("train.out_dir=" + *out);  // after --set: -o wins
        auto s = vcpclip::app::run_train(*c);
        if (!s.last_checkpoint.empty())
          std::printf("%lld epoch(s), %lld step(s)%s -> %s\n", static_cast<long long>(s.epochs_done),
                      static_cast<long long>(s.steps), s.stopped_early ? " (stopped at max_steps)" : "",
                      s.last_checkpoint.c_str());
        return 0;
      };
    });
