#pragma once
// `vcpclip eval` (docs/design.md §6, §8): zero-shot evaluation of a VCP-CLIP checkpoint on a test set.
//
// For every test image (data loader with workers, batches of eval.batch_size):
//   M_raw, M_post = model->predict_maps(images)
//   pixel map     = GaussianFilter_σ(α·M_raw + (1−α)·M_post)      (postprocess.alpha, .sigma)
//   image score   = mean(top-k of M_raw) + mean(top-k of M_post)  (postprocess.topk)
// (the same post-processing as `vcpclip predict`), accumulated per product class (maps once as
// float32, masks as bytes); then per class: min-max normalisation of the maps and of the scores
// (reference test.py) and the metrics of docs/design.md §8; the mean over the classes that have them.
//
// Partial results are failures (eval/report.h): a class without test images stops the run before
// the model runs, an unreadable image stops it where it is met, unless the request allows them
// (allow_partial for classes, eval.data.skip_bad for images); the reports then say what the mean
// covers ("mean over 1 of 2 classes").
//
// Output directory:
//   config.yaml                             the resolved run config (app/config/run_config.h)
//   metrics.json, metrics.csv, metrics.md   per-class and mean metrics (+ run information)
//   maps/<class>/<defect>/<stem>.npy        (save_maps) float32 [S,S] pixel maps, unnormalised
//   maps/scores.json                        (save_maps) what `vcpclip score` reads back
//   maps/<class>/<defect>/<stem>.zero_shot.npy  (save_maps, few_shot.k > 0) what the fusion combined,
//   maps/<class>/<defect>/<stem>.few_shot_raw.npy   float32 [S,S]: the zero-shot pixel map before the
//   maps/<class>/<defect>/<stem>.few_shot_normalized.npy  fusion, D and D̂ (docs/design.md §13)
//   maps/few_shot.json                      (save_maps, few_shot.k > 0) the settings, each class's memory
//                                           statistics, per image the zero-shot and fused scores, max D,
//                                           max D̂ and the memory's normal_max
//   imgs/<class>/<defect>/<stem>.png        (export_png) 4-panel strip (image | mask | heatmap |
//   imgs/<class>/<defect>/<stem>_heatmap.png  prediction at the class F1 threshold) + heatmap
//   imgs/<class>/roc.png, imgs/<class>/pro.png  (export_png) pixel ROC and PRO curves
//   references/<class>.safetensors          (few_shot.k > 0) the class's reference memory
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/few_shot.h"
#include "vcpclip/eval/accumulator.h"
#include "vcpclip/eval/report.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/vcp_clip.h"  // build_vcp_clip, for callers of run_eval(req, model)

namespace vcpclip::app {

struct EvalRequest {
  RuntimeOptions runtime;
  model::ModelOptions model;
  PostprocessOptions postprocess;
  EvalSection eval;         ///< eval.data must be set
  std::string checkpoint;   ///< reference-layout .pth; "" = untrained head (seeded), with a warning
  std::string out_dir;      ///< output directory (created)
  std::string config_path;  ///< recorded in metrics.json
  /// The resolved config (app::run_config_file_text), written to out_dir/config.yaml; "" = none.
  std::string config_text;
  bool progress = true;  ///< progress bar on stderr
  /// --calibration-out: also write the f1 calibration of the run here (app/calibrate/calibrate.h); "" = none
  std::string calibration_out;
  bool profile = false;        ///< time per stage on stderr and in EvalResult::profile
  bool allow_partial = false;  ///< --allow-partial: report even when classes have no metrics
  /// --serial: each batch accumulated before the next forward pass (default: a writer thread
  /// overlaps them, app/batch_pipeline.h; the same results in the same order)
  bool serial = false;
  /// `few_shot:` (app/few_shot.h): with k > 0 each class's maps and scores are fused with the
  /// few-shot map of its own references (never a test image); memories saved to OUT/references/.
  FewShotOptions few_shot;
};

/// Builds a request from a loaded run config ("eval needs a `model` / `eval.data` section in F"
/// otherwise). out_dir = eval.out_dir; save_maps / export_png from the eval section.
EvalRequest make_eval_request(const RunConfig& cfg);

struct EvalResult {
  eval::EvaluationReport report;              ///< classes in dataset order (empty ones: error set), run warnings
  eval::ClassMetrics mean;                    ///< eval::mean_metrics(report.classes)
  int64_t images = 0;                         ///< images evaluated
  int64_t skipped = 0;                        ///< unreadable samples skipped (eval.data.skip_bad)
  double seconds = 0, images_per_second = 0;  ///< model + post-processing throughput
  nlohmann::json profile;                     ///< with EvalRequest::profile: StageTimer::to_json + "gpu_busy_share"
  std::optional<double> gpu_busy_share;       ///< CUDA: device busy share of the batch loop (BatchPipeline)
  nlohmann::json few_shot;                    ///< few_shot_settings of the run (null: zero-shot)
  /// With references: the metrics of the same images without them (report.references compares)
  std::vector<eval::ClassMetrics> zero_shot_classes;
};

/// Runs the whole evaluation; builds the model from req.model and loads req.checkpoint.
/// Errors: unreadable image without skip_bad (vcpclip::Error naming the file), empty test set,
/// a class without metrics unless allow_partial (eval::require_complete: no metrics written then).
EvalResult run_eval(const EvalRequest& req);
/// Same with an already built model (tests); req.checkpoint is loaded into it when non-empty and
/// req.runtime.precision applied. `load_seconds`: the model's build time, for the profile.
EvalResult run_eval(const EvalRequest& req, model::Method model, double load_seconds = 0);

/// The terminal table of a result (eval::report_table) followed by the run's warnings.
std::string format_eval_table(const EvalResult& result);

}  // namespace vcpclip::app
