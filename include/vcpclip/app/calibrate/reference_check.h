#pragma once
// `calibrate --method quantile` with few-shot references (docs/design.md §13): the calibration set
// has only good images, so the check of whether the references help holds some of them out.
// Every 4th good image of a class (positions 3, 7, 11, ...; the last one when the class has 2 or 3)
// is held out; the quantile calibration of the others decides on it, once with the references
// (the fused scores) and once without them (the zero-shot scores). A held-out good image called
// defective is a false alarm. OUT/reference_check.json holds the counts per class.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vcpclip/eval/accumulator.h"

namespace vcpclip::app {

struct HeldOutCheck {
  std::string name;                  ///< product class
  int64_t held_out = 0;              ///< good images held out
  int64_t false_alarms_with = 0;     ///< of them called defective with the references
  int64_t false_alarms_without = 0;  ///< ... and without them (zero-shot)
  /// Plain words when the references raise the false alarms ("" otherwise).
  std::string warning() const;
};

/// The check per class (accumulators of the same good images in the same order, unnormalised:
/// `with` fused, `without` zero-shot). Classes with fewer than 2 images are left out.
std::vector<HeldOutCheck> held_out_false_alarms(const std::vector<eval::ClassAccumulator>& with,
                                                const std::vector<eval::ClassAccumulator>& without,
                                                double image_quantile, double pixel_quantile);

/// {"held_out": "every 4th good image of each class", "classes": [{"name", "held_out",
///  "false_alarms_with_references", "false_alarms_without_references", "share_with_references",
///  "share_without_references"}]}
nlohmann::json held_out_json(const std::vector<HeldOutCheck>& checks);

/// Terminal table: class | held out | false alarms with references | without.
std::string held_out_table(const std::vector<HeldOutCheck>& checks);

}  // namespace vcpclip::app
