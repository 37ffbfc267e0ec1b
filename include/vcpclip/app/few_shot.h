#pragma once
// Few-shot references (docs/design.md §13): the `few_shot:` section of a run config and the
// reference memories eval, predict, calibrate and the Inferencer build from it.
//
//   few_shot:
//     k: 4                  # reference images per class (0 = zero-shot, the default)
//     seed: 0               # which k of the candidate images (drawn without replacement)
//     folder: ""            # source: a folder of normal images (all classes share it) ...
//     data: {layout: mvtec, root: ...}   # ... or a dataset's train split, good images, per class
//                           # (neither: eval.data's dataset with split train)
//     layers: []            # 1-based vision blocks ([] = model.features_list)
//     fusion: relative      # (default) pixel map += weight·max(0, D̂ − margin); image score +=
//                           #   weight·(max Z − median Z)·max(0, max D̂ − normal_max), Z the image's
//                           #   zero-shot pixel map (docs/design.md §13)
//                           # add: APRIL-GAN's: pixel map += weight·D, image score += weight·max D
//                           # normalized: D scaled by the references' own normal variation,
//                           #   pixel map += weight·max(0, D̂ − margin), score += its max
//     weight: 1.0
//     margin: 1.0           # relative, normalized: standard deviations of normal variation ignored
//                           #   in the map (default 1 for relative, 3 for normalized)
//
// Reference images are decoded and resized exactly as test images (data::read_rgb,
// data::preprocess_image); the references of one memory must share one size and channel count.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/data/datasets.h"
#include "vcpclip/io/config_node.h"
#include "vcpclip/model/model_options.h"
#include "vcpclip/model/reference_memory.h"

namespace vcpclip::model {
class MethodImpl;
struct MethodMaps;
}  // namespace vcpclip::model
namespace vcpclip::eval {
struct PostprocessedMaps;
}  // namespace vcpclip::eval

namespace vcpclip::app {

struct FewShotOptions {
  int64_t k = 0;                          ///< 0 = zero-shot (the section's default)
  uint64_t seed = 0;                      ///< draws the k references among the candidates
  std::string folder;                     ///< source folder ("" = a dataset)
  std::optional<data::DataOptions> data;  ///< source dataset (train split, good images)
  std::vector<int64_t> layers;            ///< [] = model.features_list
  std::string fusion = "relative";        ///< "relative", "add" (APRIL-GAN) or "normalized" (docs/design.md §13)
  double weight = 1.0;                    ///< factor on the few-shot term in the fusion
  /// relative, normalized: D̂ below this (normal variation) adds nothing to the map; the section's
  /// default is 1 for relative and 3 for normalized (this struct's default goes with "relative")
  double margin = 1.0;
  /// normalized: "fixed" (D̂ − margin) or "references" (D̂ − normal_max − margin: above the largest
  /// D̂ of the references' own normal patches)
  std::string threshold = "fixed";
  /// normalized: subtract each image's own median D̂ first (a reference that fits this image
  /// badly everywhere raises D̂ everywhere; a defect raises it locally)
  bool center = false;

  bool enabled() const { return k > 0; }
};

/// Reads the `few_shot:` section (calls finish(); every key checked: k ≥ 0, layers ≥ 1 and
/// increasing, fusion "relative", "add" or "normalized", weight > 0, margin ≥ 0 (default 3 for
/// normalized, 1 otherwise), not both folder and data).
FewShotOptions parse_few_shot_options(io::ConfigNode& node);

/// The few-shot term T [B, S, S] float32 of a batch's maps (docs/design.md §13): add: weight·D;
/// normalized and relative: weight·max(0, D̂ − margin) (normalized's options threshold and center
/// apply to it). The pixel map gets + T. Undefined without references; normalized or relative with
/// a memory lacking its normal statistics is an error.
at::Tensor few_shot_term(const model::MethodMaps& maps, const FewShotOptions& opts);

/// What the image score gets [B] float32 (undefined without references): add, normalized: max T;
/// relative: weight·(max Z − median Z)·max(0, max D̂ − normal_max), with `zero_shot_pixel` Z
/// [B, S, S] the zero-shot pixel maps before the fusion (median: the lower middle value).
at::Tensor few_shot_score_term(const model::MethodMaps& maps, const at::Tensor& zero_shot_pixel, const at::Tensor& term,
                               const FewShotOptions& opts);

/// Fuses references into post-processed maps (eval, calibrate, the Inferencer): pixel += T,
/// score += few_shot_score_term (nothing without references).
void fuse_references(eval::PostprocessedMaps& out, const model::MethodMaps& maps, const FewShotOptions& opts);

/// The layers a memory uses: opts.layers, or features_list when empty.
std::vector<int64_t> few_shot_layers(const FewShotOptions& opts, const model::ModelOptions& model);

/// k of `candidates` drawn without replacement with `seed` (std::mt19937_64 shuffle), returned in
/// candidate order. Fewer than k candidates: error naming `what`.
std::vector<std::string> sample_references(const std::vector<std::string>& candidates, int64_t k, uint64_t seed,
                                           const std::string& what);

/// The identity a memory records and is checked against (SHA-256 of backbone JSON, weights and
/// checkpoint; "" checkpoint = untrained head).
model::ReferenceIdentity run_identity(const model::ModelOptions& model, const std::string& checkpoint);

/// Decodes `files` like test images, checks they share size and channel count, builds the memory
/// on the model's device and fills images, hashes and identity.
model::ReferenceMemory build_memory_from_files(model::MethodImpl& model, const std::vector<std::string>& files,
                                               const std::vector<int64_t>& layers,
                                               const model::ReferenceIdentity& identity);

/// Where the references of one run come from (predict, the Inferencer, serve): `given` (--reference
/// or InferencerOptions::reference), else opts.folder; "" when neither is set (zero-shot). When
/// opts.k asks for references and there is no source, the error starts with `who` and ends with
/// `how_to_give` (how the caller's user gives references).
std::string reference_source(const std::string& given, const FewShotOptions& opts, const std::string& who,
                             const std::string& how_to_give);

/// predict --reference / InferencerOptions::reference: a folder (all its images; k of them when
/// k > 0) or a saved memory (.safetensors, checked against `identity` and `layers`).
model::ReferenceMemory reference_from_path(model::MethodImpl& model, const std::string& path, int64_t k, uint64_t seed,
                                           const std::vector<int64_t>& layers,
                                           const model::ReferenceIdentity& identity);

/// eval: one memory per class, from the class's own normal train images (opts.data, else
/// `test_set` with split train), or from opts.folder for every class. `test_images` are the
/// evaluated files: a reference among them is an error. Saved to `save_dir`/<class>.safetensors
/// when save_dir is non-empty.
std::map<std::string, model::ReferenceMemory> class_memories(model::MethodImpl& model, const FewShotOptions& opts,
                                                             const data::DataOptions& test_set,
                                                             const std::vector<std::string>& classes,
                                                             const std::vector<std::string>& test_images,
                                                             const model::ReferenceIdentity& identity,
                                                             const std::string& save_dir);

/// The record of one memory (predict, Inferencer): {"k", "layers", "fusion", "weight",
/// "references": fingerprint} (+ "margin", "threshold", "center" for normalized, "margin" for relative).
nlohmann::json memory_settings(const FewShotOptions& opts, const model::ReferenceMemory& memory);

/// calibration.json's record: null without references, else {"k", "layers", "fusion", "weight",
/// "references": {class: fingerprint}} (+ "margin" for the normalized fusion).
nlohmann::json few_shot_settings(const FewShotOptions& opts,
                                 const std::map<std::string, model::ReferenceMemory>& memories);

}  // namespace vcpclip::app
