// `vcpclip calibrate --config C --checkpoint K [--out DIR] [--method f1|quantile]
//  [--image-quantile Q] [--pixel-quantile Q] [--set k=v]... [--no-progress]`: per-class thresholds
// for OK/NG decisions and masks (docs/design.md §6, §8) -> DIR/calibration.json. All logic lives in
// vcpclip::app::run_calibrate.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "vcpclip/app/calibrate/calibrate.h"
#include "vcpclip/app/config/run_config.h"

namespace {

struct CalibrateArgs {
  std::string config, checkpoint, out, method = "f1";
  double image_quantile = 0.99, pixel_quantile = 0.999;
  std::vector<std::string> overrides;
  bool no_progress = false;
};

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "calibrate", "Per-class thresholds for OK/NG decisions and masks (calibration.json for predict --calibration)",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto a = std::make_shared<CalibrateArgs>();
      sub.add_option("--config,-c", a->config,
                     "run config (sections runtime, model, postprocess, eval with eval.data); default: the "
                     "config.yaml beside the checkpoint");
      sub.add_option("--checkpoint,-k", a->checkpoint,
                     "the head's checkpoint in its method's official layout (.pth; model.method)")
          ->required();
      sub.add_option("--out,-o", a->out, "output directory for calibration.json (default: runs/calibrate)");
      sub.add_option("--method", a->method,
                     "f1: eval's F1-optimal thresholds on the labelled eval.data; quantile: quantiles of its normal "
                     "images only")
          ->check(CLI::IsMember({"f1", "quantile"}));
      sub.add_option("--image-quantile", a->image_quantile, "quantile method: of the normal images' scores (0.99)");
      sub.add_option("--pixel-quantile", a->pixel_quantile, "quantile method: of the normal images' pixels (0.999)");
      sub.add_flag("--no-progress", a->no_progress, "no progress bar");
      sub.add_option("--set", a->overrides, "config override key=value (e.g. eval.data.split=train), repeatable");
      return [a]() {
        const auto config = vcpclip::app::find_run_config(a->config, a->checkpoint, "calibrate");
        auto cfg = vcpclip::app::load_run_config(config, a->overrides);
        auto req = vcpclip::app::make_calibrate_request(cfg);
        req.eval.checkpoint = a->checkpoint;
        if (!a->out.empty()) req.eval.out_dir = a->out;
        req.eval.progress = !a->no_progress;
        req.method = a->method;
        req.image_quantile = a->image_quantile;
        req.pixel_quantile = a->pixel_quantile;
        auto cal = vcpclip::app::run_calibrate(req);
        std::printf("%s", vcpclip::app::format_calibration_table(cal).c_str());
        std::printf("%s calibration of %zu classes -> %s\n", cal.method.c_str(), cal.classes.size(),
                    vcpclip::app::calibration_path(req.eval.out_dir).c_str());
        return 0;
      };
    });
