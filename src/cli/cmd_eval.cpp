// `vcpclip eval --config C [--checkpoint K] [--out DIR] [--save-maps] [--export-png] [--skip-bad]
// [--allow-partial] [--calibration-out F] [--profile] [--set k=v]...`: zero-shot evaluation of a
// VCP-CLIP checkpoint on the test set of `eval.data` (docs/design.md §6, §8). All logic lives in
// vcpclip::app::run_eval.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/evaluate.h"

namespace {

struct EvalArgs {
  std::string config, checkpoint, out, calibration_out;
  std::vector<std::string> overrides;
  bool save_maps = false, export_png = false, no_progress = false, profile = false, skip_bad = false,
       allow_partial = false, serial = false;
};

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "eval", "Evaluate a checkpoint on a test set: per-class and mean pixel/image metrics (AUROC, AUPRO, AP, F1, IoU)",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto a = std::make_shared<EvalArgs>();
      sub.add_option("--config,-c", a->config,
                     "run config (sections runtime, model, postprocess, eval with eval.data); default: the "
                     "config.yaml beside the checkpoint");
      sub.add_option("--checkpoint,-k", a->checkpoint,
                     "the head's checkpoint in its method's official layout (.pth; model.method); omitted: untrained "
                     "(seeded) head as a baseline");
      sub.add_option("--out,-o", a->out, "output directory (default: eval.out_dir)");
      sub.add_flag("--save-maps", a->save_maps, "write maps/<class>/<defect>/<stem>.npy and maps/scores.json");
      sub.add_flag("--export-png", a->export_png,
                   "write imgs/<class>/<defect>/<stem>.png strips, heatmaps, ROC/PRO plots");
      sub.add_option("--calibration-out", a->calibration_out,
                     "also write the F1-optimal calibration of this set to this file (see vcpclip calibrate)")
          ->needs("--checkpoint");
      sub.add_flag("--skip-bad", a->skip_bad, "leave unreadable test images out (as eval.data.skip_bad: true)");
      sub.add_flag("--allow-partial", a->allow_partial,
                   "report even when a class cannot be scored (the mean row says what it covers)");
      sub.add_flag("--no-progress", a->no_progress, "no progress bar");
      sub.add_flag("--profile", a->profile, "print the time per stage (load, decode, towers, maps, metrics, writing)");
      sub.add_flag("--serial", a->serial,
                   "accumulate each batch before computing the next (default: a writer thread overlaps them)");
      sub.add_option("--set", a->overrides, "config override key=value (e.g. eval.batch_size=4), repeatable");
      return [a]() {
        // Flags that set config keys become overrides, so that config.yaml records them.
        auto overrides = a->overrides;
        if (!a->out.empty()) overrides.push_back("eval.out_dir=" + vcpclip::io::yaml_quoted(a->out));
        if (a->save_maps) overrides.push_back("eval.save_maps=true");
        if (a->export_png) overrides.push_back("eval.export_png=true");
        if (a->skip_bad) overrides.push_back("eval.data.skip_bad=true");
        const auto config = vcpclip::app::find_run_config(a->config, a->checkpoint, "eval");
        auto req = vcpclip::app::make_eval_request(vcpclip::app::load_run_config(config, overrides));
        req.checkpoint = a->checkpoint;
        req.progress = !a->no_progress;
        req.calibration_out = a->calibration_out;
        req.profile = a->profile;
        req.allow_partial = a->allow_partial;
        req.serial = a->serial;
        auto result = vcpclip::app::run_eval(req);
        std::printf("%s", vcpclip::app::format_eval_table(result).c_str());
        const std::string missing = vcpclip::eval::incomplete_summary(result.report);
        if (!missing.empty()) std::printf("PARTIAL RESULT: %s\n", missing.c_str());
        std::printf("%lld images, %.2f img/s -> %s/metrics.json\n", static_cast<long long>(result.images),
                    result.images_per_second, req.out_dir.c_str());
        return 0;
      };
    });
