#pragma once
// Using a calibration (eval/calibration.h) in a run: the settings that must match, the check that
// refuses a calibration made for another checkpoint or config, and the per-image decision that
// `predict --calibration` and vcpclip::Inferencer share.
//
// The settings recorded in calibration.json ("config.settings") are what determines the maps and
// scores, so a difference in any of them makes the calibration's thresholds meaningless:
//   {"model": {"backbone_sha256", "weights_sha256" ("" = random backbone, then "init_seed"),
//              "image_size", "activation", "features_list", "prompt_len", "deep_prompt_len",
//              "deep_prompt_layers", "use_global", "post_vcp", "post_heads", "templates_normal",
//              "templates_abnormal"},
//    "postprocess": {"alpha", "sigma", "topk"}}
// Files are identified by SHA-256, not by path, so a calibration follows its checkpoint and
// weights to another folder or machine.
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>

#include "vcpclip/app/predict.h"
#include "vcpclip/eval/calibration.h"
#include "vcpclip/eval/decision.h"
#include "vcpclip/model/model_options.h"

namespace vcpclip::app {

/// The settings object above for a run (hashes the backbone JSON and the weights file).
/// `few_shot`: null (zero-shot: no "few_shot" key) or {"k", "layers", "fusion", "weight",
/// "references"} (app/few_shot.h; predict gives the fingerprint of its one memory as "references").
nlohmann::json calibration_settings(const model::ModelOptions& model, const PostprocessOptions& pp,
                                    const nlohmann::json& few_shot = nullptr);

/// Reads `path` and checks it against the run. Errors (vcpclip::Error):
///   "calibration F was made for another checkpoint: <P> with SHA-256 <a>, but this run uses <K>
///    with SHA-256 <b>; calibrate again for it (vcpclip calibrate)"
///   "calibration F was made for another config: <key>: <v> in the calibration, <w> in this run;
///    ...; calibrate again with this config (vcpclip calibrate)"
/// With few-shot references, a calibration made with references compares its record for class
/// `class_name` with the run's fingerprint; one made with references refuses a run without them
/// and the other way round ("few_shot: ... in the calibration, absent in this run").
eval::Calibration load_checked_calibration(const std::string& path, const model::ModelOptions& model,
                                           const PostprocessOptions& pp, const std::string& checkpoint,
                                           const nlohmann::json& few_shot = nullptr,
                                           const std::string& class_name = "");

/// The warning for a calibration made in another precision than the run's (README "Precision and
/// BLAS kernels"); "" when they agree. `calibrated` is the file's "precision" ("" = not recorded,
/// warned about only when the run is not fp32):
///   "calibration F was made in fp32 and this run uses bf16: its thresholds were set on fp32 maps;
///    decisions near a threshold may differ (calibrate in bf16, or run in fp32)"
///   "calibration F does not record its precision (made by an older vcpclip, normally in fp32) and this
///    run uses bf16: decisions near a threshold may differ (calibrate again, or run in fp32)"
std::string calibration_precision_warning(const std::string& path, const std::string& calibrated, Precision used);

class Decider;

/// The product class for a method whose prompts name it (model::MethodInfo::needs_class_name):
/// `flag` (--class, InferencerOptions::class_name) if given, else the calibration's class, else a
/// vcpclip::Error for `who` saying how to give one. "" for methods that need no class name.
std::string product_class(const model::ModelOptions& model, const std::string& flag, const Decider* decider,
                          const std::string& who);

/// One class of a checked calibration, applied image by image.
class Decider {
 public:
  /// load_checked_calibration + Calibration::find(class_name).
  Decider(const std::string& calibration_path, const std::string& class_name, const model::ModelOptions& model,
          const PostprocessOptions& pp, const std::string& checkpoint, const nlohmann::json& few_shot = nullptr);

  /// Decision for one image: `map` the [S,S] pixel map (CPU float32), `score` eval's image
  /// score, `input_size` the size of the mask (the input image's size).
  eval::Decision decide(const at::Tensor& map, double score, cv::Size input_size) const;

  /// predict --calibration: decide() with eval_score(score_raw, score_post), the mask written to
  /// `mask_path` (write_mask_png) and released from the returned decision.
  eval::Decision apply(const at::Tensor& map, double score_raw, double score_post, cv::Size input_size,
                       const std::string& mask_path, double score_few_shot = 0) const;

  /// eval's image score from predict's two top-k means: their float32 sum (as eval::image_score).
  /// With references, eval adds score_few_shot (float32) to that sum (app::fuse_references).
  static double eval_score(double score_raw, double score_post, double score_few_shot = 0);

  /// The calibration's class that decisions use.
  const std::string& class_name() const { return cls_.name; }

  /// {"path", "class", "method", "image_threshold", "pixel_threshold"} for scores.json.
  nlohmann::json describe() const;
  /// Logs calibration_precision_warning(path, the calibration's precision, used) as a warning when
  /// there is one, and returns it.
  std::string warn_if_other_precision(Precision used) const;

  const eval::ClassCalibration& calibration() const { return cls_; }

 private:
  std::string path_, method_, precision_;
  eval::ClassCalibration cls_;
};

/// The scores.json fields of a decision: "decision", "normalized_score", "class_score", "mask"
/// (the PNG's file name), "mask_area", "regions": [{"x", "y", "width", "height", "area"}].
nlohmann::json decision_json(const eval::Decision& d, const std::string& mask_file);

/// Writes the mask as an 8-bit PNG (0 = ok, 255 = anomalous); errors name the file.
void write_mask_png(const std::string& path, const cv::Mat& mask);

}  // namespace vcpclip::app
