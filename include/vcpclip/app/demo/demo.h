#pragma once
// `vcpclip demo [--out DIR] [--config C] [--set key=value]...`: the README's main job — the whole
// VCP-CLIP protocol end to end, by default without any download (configs/demo.yaml, embedded in
// the binary at build time):
//
//   1. synthetic data: every `demo.synthetic` set whose `out` is the root of train.data,
//      train.val_data or eval.data is generated (VisA-layout auxiliary set, MVTec-layout target
//      set; their product classes never overlap); one already complete (same options, recorded in
//      <out>.synth.json) is reused. Sections pointing at real datasets skip generation.
//   2. model: model.backbone "configs/models/demo.json" not found from the working directory or
//      the config is written from the built-in copy to DIR/model/demo.json. When model.weights is
//      `demo.backbone.out`, the demo backbone is made from the training images
//      (app/demo_backbone.h; reused when unchanged).
//   3. eval of the UNTRAINED head (same seeded init) → DIR/eval_untrained/ (demo.untrained_baseline;
//      with PNGs when eval.export_png, for the side-by-side report)
//   4. train (train::run_training, the request `vcpclip train -c` builds) → DIR/train/last.pth
//   5. eval of the trained head → DIR/eval/ (metrics.json, metrics.md, imgs/... PNGs, imgs/index.json)
//   5b. the same with k = 1, 2, 4 references per target class from its train/good images
//      (demo.few_shot, app/demo/few_shot.h) → DIR/eval_<k>shot/
//   6. DIR/report.html (app/demo/html.h: untrained vs trained side by side, metrics and strips),
//      then DIR/summary.json (written last, atomically: its presence means the demo finished); on
//      the output stream the metric tables, a trained-vs-untrained comparison and, last, the one
//      file to open: "demo finished in 14.2 s. Open DIR/report.html".
//
// Demo config = a run config (app/config/run_config.h: runtime, model, postprocess, train, eval) plus
//   demo:
//     out_dir: runs/demo              # DIR; --out overrides; "${out_dir}" in any string value of
//                                     # the file (after --set) is replaced by it
//     untrained_baseline: true        # evaluate the untrained head too
//     synthetic:                      # name: {out, layout, set, classes, images, train_images, size,
//       aux: {out: "${out_dir}/data/aux", layout: visa, set: auxiliary, ...}   #  seed, kinds}
//     backbone: {out: "${out_dir}/model/demo_backbone.safetensors", ...}   # (optional) app/demo_backbone.h
//     few_shot: {shots: [1, 2, 4], seed: 0}   # app/demo/few_shot.h
// Unknown keys anywhere are errors naming the key and the file.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/demo/few_shot.h"
#include "vcpclip/app/demo_backbone.h"
#include "vcpclip/app/evaluate.h"
#include "vcpclip/data/synthetic.h"
#include "vcpclip/train/trainer.h"

namespace vcpclip::app {

/// configs/demo.yaml as embedded into the binary by the build (cmake/demo_config.cpp.in).
const std::string& embedded_demo_config();
/// configs/models/demo.json (the demo's backbone config) as embedded by the build.
const std::string& embedded_demo_backbone();

struct DemoConfig {
  std::string path;                   ///< config file, or "<built-in configs/demo.yaml>"
  std::string out_dir = "runs/demo";  ///< DIR
  bool untrained_baseline = true;
  std::vector<data::SynthOptions> synthetic;  ///< candidate synthetic sets (out already substituted)
  std::optional<BackboneRecipe> backbone;     ///< demo.backbone (out already substituted)
  DemoFewShotOptions few_shot;                ///< demo.few_shot (app/demo/few_shot.h)
  RunConfig run;                              ///< everything else (train.out_dir / eval.out_dir as configured)
  YAML::Node demo_effective;                  ///< the resolved `demo:` section (out_dir as used)
};

/// The demo's resolved config (the `demo:` section and the run config, every key as used): what
/// `vcpclip demo` writes to DIR/config.yaml, and reads back with -c.
std::string demo_config_text(const DemoConfig& cfg);

/// Loads a demo config: `path` "" = the built-in one. `overrides` ("a.b=v", any key including
/// demo.*) are applied first, then `out_dir_override` (non-empty: replaces demo.out_dir), then
/// "${out_dir}" substitution, then the strict run-config parse. Needs model, train.data and
/// eval.data sections (errors name them).
DemoConfig load_demo_config(const std::string& path, const std::vector<std::string>& overrides = {},
                            const std::string& out_dir_override = "");

struct DemoOptions {
  bool progress = true;
};

struct DemoResult {
  std::vector<std::string> generated;  ///< synthetic sets written by this run
  train::TrainSummary train;
  std::optional<EvalResult> untrained;
  EvalResult trained;
  std::vector<FewShotRun> few_shot;  ///< the trained head with k references per class, per k
  double seconds = 0;
  nlohmann::json summary;  ///< what DIR/summary.json holds
};

/// Runs the demo (see the header comment); writes progress to stderr, the tables and the files to
/// open to `out`.
/// Errors: those of the stages (vcpclip::Error naming the stage's file); summary.json is then absent.
DemoResult run_demo(const DemoConfig& cfg, std::ostream& out, const DemoOptions& opts = {});

/// The "trained vs untrained" comparison table (pixel/image metrics of the class means).
std::string format_demo_comparison(const EvalResult* untrained, const EvalResult& trained);

}  // namespace vcpclip::app
