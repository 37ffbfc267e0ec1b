// `vcpclip predict --config C --checkpoint K --input IMG|DIR [--input ...] --output OUT
//  [--save-branches] [--skip-bad] [--calibration F [--class NAME]] [--set key=value]...`: anomaly maps,
//  heatmaps and image scores, with a calibration also OK/NG decisions and masks
// (DESIGN §6). All logic lives in vcpclip::app::run_predict.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "vcpclip/app/predict.h"

namespace {

struct PredictArgs {
  std::string config, checkpoint, output, calibration, class_name;
  std::vector<std::string> inputs, overrides;
  bool save_branches = false, skip_bad = false, no_progress = false;
};

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "predict", "Anomaly maps, heatmaps and image scores for images or folders",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto a = std::make_shared<PredictArgs>();
      sub.add_option("--config,-c", a->config, "run config (sections model, postprocess, predict, runtime)")
          ->required();
      sub.add_option("--checkpoint,-k", a->checkpoint, "VCP checkpoint in the reference layout (.pth)")->required();
      sub.add_option("--input,-i", a->inputs, "image file or directory (repeatable)")->required();
      sub.add_option("--output,-o", a->output, "output directory")->required();
      sub.add_flag("--save-branches", a->save_branches, "also write <stem>_raw.npy and <stem>_post.npy");
      sub.add_flag("--skip-bad", a->skip_bad, "warn about unreadable images and go on (default: fail)");
      sub.add_option("--calibration", a->calibration,
                     "calibration.json (vcpclip calibrate): OK/NG decision, <stem>_mask.png and regions per image");
      sub.add_option("--class", a->class_name, "the calibration's class (default: its only class)");
      sub.add_option("--set", a->overrides, "config override key=value (e.g. predict.batch_size=4)");
      return [a]() {
        auto req = vcpclip::app::load_predict_config(a->config, a->overrides);
        req.checkpoint = a->checkpoint;
        req.inputs = a->inputs;
        req.output = a->output;
        req.save_branches = a->save_branches;
        req.skip_bad = a->skip_bad;
        req.calibration = a->calibration;
        req.class_name = a->class_name;
        auto summary = vcpclip::app::run_predict(req);
        std::printf("%zu images -> %s/scores.json (%zu skipped, %.2f img/s)\n", summary.images.size(),
                    a->output.c_str(), summary.skipped.size(), summary.images_per_second);
        return 0;
      };
    });
