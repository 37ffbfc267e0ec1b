#pragma once
// Where few-shot references hurt (docs/design.md §13): `eval` with references also scores every
// class without them (zero-shot, same run, same images) and compares the two.
//
//   auto effects = eval::reference_effects(zero_shot_classes, few_shot_classes, k);
//   report.references = effects;                 // metrics.json "references_vs_zero_shot", tables
//   for (auto& e : effects) if (e.worse()) warn(e.warning());
//
// A class is "worse with references" when its pixel AUROC or its image AUROC falls by more than
// 1 point (kWorseBy) below its zero-shot value.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vcpclip/eval/accumulator.h"

namespace vcpclip::eval {

/// A fall of more than this (a fraction: 1 point) counts as references hurting a class.
constexpr double kWorseBy = 0.01;

struct ReferenceEffect {
  std::string name;                          ///< product class
  int64_t k = 0;                             ///< reference images of the class
  Metric pixel_zero_shot, pixel_references;  ///< pixel AUROC without / with the references
  Metric image_zero_shot, image_references;  ///< image AUROC without / with the references

  bool pixel_worse() const;
  bool image_worse() const;
  bool worse() const { return pixel_worse() || image_worse(); }
  /// The plain-words warning for a line engineer ("" when not worse).
  std::string warning() const;
  /// {"name", "k", "pixel_auroc_zero_shot", "pixel_auroc", "pixel_change", "image_auroc_zero_shot",
  ///  "image_auroc", "image_change", "worse", "verdict"} (fractions; null where undefined).
  nlohmann::json to_json() const;
};

/// One effect per class of `with_references` (matched by name in `zero_shot`).
std::vector<ReferenceEffect> reference_effects(const std::vector<ClassMetrics>& zero_shot,
                                               const std::vector<ClassMetrics>& with_references, int64_t k);

/// The comparison as a pipe table (the eval table's style, values in %), "" when `effects` is empty.
std::string reference_effects_table(const std::vector<ReferenceEffect>& effects);

}  // namespace vcpclip::eval
