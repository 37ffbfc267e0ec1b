#pragma once
// `vcpclip predict` (docs/design.md §6): anomaly maps and image scores for single images or a folder.
//
// For each input image (sorted by path) under OUT, at the image's path relative to the input
// directory it was found in (directories are searched recursively: IN/crack/000.png writes
// OUT/crack/000_map.npy, ...; an image given as a file writes OUT/<stem>*):
//   <stem>.png      heatmap of the pixel map over the resized image
//   <stem>_map.npy  float32 [S, S]: GaussianFilter_σ(α·M_raw + (1-α)·M_post), before any
//                   per-class min-max normalisation
//   <stem>_raw.npy, <stem>_post.npy  (with save_branches) M_raw, M_post float32 [S, S]
// and OUT/scores.json:
//   {"checkpoint": ..., "image_size": S, "alpha": .., "sigma": .., "topk": ..,
//    "images": [{"path": .., "stem": .., "score": .., "score_raw": .., "score_post": ..,
//                "map_min": .., "map_max": .., "heatmap": "<stem>.png" (with predict.heatmap)}, ...],
//    "skipped": [{"path": .., "error": ..}]}
// and OUT/report.html (app/report/predict_html.h): the images, scores, decisions and thumbnails.
//   score = mean(top-k of M_raw) + mean(top-k of M_post), unnormalised.
// With references (--reference, app/few_shot.h) the map is fused and score += "score_few_shot"
// (app::few_shot_score_term: the fusion's part of the score), exactly as eval; scores.json then
// has "few_shot": {k, layers, fusion, weight, references (fingerprint), images}.
// With a calibration (--calibration F [--class NAME], app/decider.h) also <stem>_mask.png (0 ok,
// 255 anomalous, at the input's size), scores.json "calibration": {path, class, method, thresholds}
// and per image "decision": "ok"|"ng", "normalized_score" (threshold at 0.5), "class_score",
// "mask", "mask_area", "regions": [{"x", "y", "width", "height", "area"}].
// scores.json is written (atomically) only after every image has been processed.
// Images are decoded and preprocessed on loader threads while the model computes, and a writer
// thread writes each batch while the next one is computed (app/batch_pipeline.h); with `profile`
// the time per stage (load, decoding, vision tower, Pre-VCP, text tower, Post-VCP + maps,
// post-processing, writing) is printed to stderr and returned in PredictSummary::profile.
// runtime.precision applies to the CLIP towers (common/runtime.h); scores.json "precision" is the one
// used. With runtime.precision auto, a start-up GEMM probe picks fp32 or bf16 (model/precision_probe.h)
// and scores.json also has "precision_probe": {"fp32_gflops", "bf16_gflops", "bf16_speedup",
// "min_bf16_speedup", "rows", "shapes", "seconds"}. A calibration made in another precision is used
// with a warning naming both (app/decider.h).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/app/few_shot.h"
#include "vcpclip/common/runtime.h"
#include "vcpclip/eval/decision.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/config_node.h"
#include "vcpclip/model/model_options.h"

namespace vcpclip::app {

/// The `postprocess:` section is eval's (eval/postprocess.h).
using eval::PostprocessOptions;

/// `predict:` section.
struct PredictOptions {
  int64_t batch_size = 8;      ///< images per forward pass
  bool heatmap = true;         ///< write <stem>.png
  double heatmap_alpha = 0.5;  ///< weight of the heatmap over the image in <stem>.png
};
PredictOptions parse_predict_options(io::ConfigNode& node);

/// What the command line adds to a run config.
struct PredictFlags {
  std::string checkpoint;           ///< reference-layout .pth (required)
  std::vector<std::string> inputs;  ///< image files and/or directories
  std::string out_dir;              ///< output directory (created)
  bool save_branches = false;
  bool skip_bad = false;
  bool progress = true;
  bool profile = false;        ///< print the time per stage
  bool serial = false;         ///< --serial: no writer thread (each batch written before the next)
  std::string calibration;     ///< --calibration: decisions, masks, regions (app/decider.h); "" = none
  std::string class_name;      ///< --class: the calibration's class ("" = its only class)
  std::string reference;       ///< --reference: folder of normal images or saved memory ("" = none)
  std::string save_reference;  ///< --save-reference: write the memory built from --reference here
};

/// Everything a predict run needs.
struct PredictRequest {
  RuntimeOptions runtime;
  model::ModelOptions model;
  PostprocessOptions postprocess;
  PredictOptions predict;
  std::string checkpoint;           ///< reference-layout .pth (required)
  std::vector<std::string> inputs;  ///< image files and/or directories (searched recursively, sorted)
  std::string out_dir;              ///< output directory (created)
  bool save_branches = false;
  bool skip_bad = false;  ///< unreadable images: warn and continue instead of failing
  bool progress = true;
  std::string calibration;  ///< --calibration: decisions, masks, regions (app/decider.h); "" = none
  std::string class_name;   ///< --class: the calibration's class ("" = its only class)
  bool profile = false;     ///< time per stage (stderr table + PredictSummary::profile)
  /// The batches overlap (app/batch_pipeline.h): the next forward pass runs while a writer thread
  /// writes the previous batch. serial: each batch is written before the next starts. Same outputs.
  bool serial = false;
  /// Few-shot (app/few_shot.h): `reference` a folder of normal images of the product (k of them
  /// when few_shot.k > 0, else all) or a memory saved by --save-reference / eval
  /// (OUT/references/<class>.safetensors); "" = few_shot.folder, or zero-shot.
  FewShotOptions few_shot;
  std::string reference;
  std::string save_reference;
};

struct RunConfig;
/// The request of a loaded run config (runtime, model, postprocess, predict sections; "predict
/// needs a `model` section in F" without one) and the command-line flags.
PredictRequest make_predict_request(const RunConfig& cfg, const PredictFlags& flags);

struct PredictedImage {
  std::string path, stem;
  double score = 0, score_raw = 0, score_post = 0;
  double score_few_shot = 0;  ///< the few-shot part of the score, app::few_shot_score_term (0 without references)
  float map_min = 0, map_max = 0;
  std::optional<eval::Decision> decision;  ///< with a calibration (its mask already written and released)
};

struct PredictSummary {
  std::vector<PredictedImage> images;
  std::vector<std::pair<std::string, std::string>> skipped;  ///< (path, error)
  double seconds = 0;  ///< from the first decoded image to the last written one (no loading)
  double images_per_second = 0;
  nlohmann::json profile;  ///< with PredictRequest::profile: StageTimer::to_json of the run + "gpu_busy_share"
  /// CUDA: the share of the batch loop's wall time with device work outstanding (BatchPipeline)
  std::optional<double> gpu_busy_share;
};

/// One input image and where its outputs go.
struct InputImage {
  std::string path;  ///< the image file
  std::string stem;  ///< output stem relative to OUT: "<sub/folders>/<file stem>" for images found
                     ///< in a directory (its relative path), the file stem for a file given as it is
  bool operator==(const InputImage& o) const { return path == o.path && stem == o.stem; }
};

/// Lists the image files of `inputs`: files kept as given, directories searched recursively for
/// .png .jpg .jpeg .bmp .tif .tiff (sorted by relative path; hidden entries skipped). Stems are
/// made unique with _2, _3, ... where two images would write the same outputs. Errors: a missing
/// path, a directory without images.
std::vector<InputImage> collect_images(const std::vector<std::string>& inputs);

/// Output stems for the images: the given stems, made unique with _2, _3, ... on collisions.
std::vector<std::string> unique_stems(const std::vector<std::string>& stems);

/// Runs the whole predict command. Without skip_bad, the first unreadable image is a
/// vcpclip::Error naming it (nothing is written for it, and no scores.json).
PredictSummary run_predict(const PredictRequest& req);

}  // namespace vcpclip::app
