// `vcpclip predict --config C --checkpoint K --input IMG|DIR [--input ...] --out OUT
//  [--save-branches] [--skip-bad] [--calibration F [--class NAME]] [--reference DIR|F [--save-reference F]]
//  [--profile] [--set key=value]...`:
// anomaly maps, heatmaps and image scores (docs/design.md §6), with a calibration also OK/NG decisions,
// masks and regions. All logic lives in vcpclip::app::run_predict.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/predict.h"

namespace {

struct PredictArgs {
  std::string config;
  std::vector<std::string> overrides;
  vcpclip::app::PredictFlags flags;
  bool no_progress = false;
};

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "predict", "Anomaly maps, heatmaps and image scores for images or folders",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto a = std::make_shared<PredictArgs>();
      sub.add_option("--config,-c", a->config,
                     "run config (sections model, postprocess, predict, runtime); default: the config.yaml beside "
                     "the checkpoint");
      sub.add_option("--checkpoint,-k", a->flags.checkpoint, "the method's checkpoint in its official layout (.pth)")
          ->required();
      sub.add_option("--input,-i", a->flags.inputs,
                     "image file or directory, searched recursively; outputs mirror its sub-folders (repeatable)")
          ->required();
      sub.add_option("--out,-o,--output", a->flags.out_dir, "output directory (--output: old name)")->required();
      sub.add_flag("--save-branches", a->flags.save_branches, "also write <stem>_raw.npy and <stem>_post.npy");
      sub.add_flag("--skip-bad", a->flags.skip_bad, "warn about unreadable images and go on (default: fail)");
      sub.add_option("--calibration", a->flags.calibration,
                     "calibration.json (vcpclip calibrate): OK/NG decision, <stem>_mask.png and regions per image");
      sub.add_option("--class", a->flags.class_name,
                     "the product class: the calibration's (default: its only class), and the one APRIL-GAN's prompts "
                     "name (model.method april_gan)");
      sub.add_option("--reference", a->flags.reference,
                     "few-shot: folder of normal images of the product, or a saved reference memory (.safetensors)");
      sub.add_option("--save-reference", a->flags.save_reference,
                     "few-shot: write the reference memory built from --reference to this .safetensors file");
      sub.add_flag("--profile", a->flags.profile, "print the time per stage (load, decode, towers, maps, writing)");
      sub.add_flag("--serial", a->flags.serial,
                   "write each batch before computing the next (default: a writer thread overlaps them; same outputs)");
      sub.add_flag("--no-progress", a->no_progress, "no progress bar");
      sub.add_option("--set", a->overrides, "config override key=value (e.g. predict.batch_size=4)");
      return [a]() {
        a->flags.progress = !a->no_progress;
        const auto config = vcpclip::app::find_run_config(a->config, a->flags.checkpoint, "predict");
        const auto cfg = vcpclip::app::load_run_config(config, a->overrides);
        auto summary = vcpclip::app::run_predict(vcpclip::app::make_predict_request(cfg, a->flags));
        std::printf("%zu images -> %s/scores.json (%zu skipped, %.2f img/s)\n", summary.images.size(),
                    a->flags.out_dir.c_str(), summary.skipped.size(), summary.images_per_second);
        return 0;
      };
    });
