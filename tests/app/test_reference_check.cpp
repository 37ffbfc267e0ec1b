// calibrate --method quantile with references: held-out good images, false alarms with and without
// the references (app/calibrate/reference_check.h), on hand-made accumulators whose answer is known.
#include <gtest/gtest.h>

#include "support/test_util.h"
#include "vcpclip/app/calibrate/reference_check.h"

using namespace vcpclip;
using vcpclip::testing::error_of;

namespace {

/// One class of n good 2×2 images; image i has score scores[i] and a flat map of that value.
eval::ClassAccumulator good_images(const std::string& name, const std::vector<double>& scores) {
  eval::ClassAccumulator acc(name);
  for (size_t i = 0; i < scores.size(); ++i) {
    const std::vector<float> map(4, static_cast<float>(scores[i]));
    acc.add("img" + std::to_string(i), map.data(), nullptr, 2, 2, scores[i], 0);
  }
  return acc;
}

}  // namespace

TEST(ReferenceCheck, HeldOutGoodImagesAboveTheOthersThresholdAreFalseAlarms) {
  // 8 images: positions 3 and 7 are held out. Without references they score inside the range of
  // the others (no false alarm); with references both score above every other image (2 alarms).
  const std::vector<double> without = {0.1, 0.5, 0.3, 0.2, 0.4, 0.6, 0.35, 0.45};
  const std::vector<double> with = {0.1, 0.5, 0.3, 0.9, 0.4, 0.6, 0.35, 0.95};
  const auto checks =
      app::held_out_false_alarms({good_images("tile", with)}, {good_images("tile", without)}, 0.99, 0.999);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].held_out, 2);
  EXPECT_EQ(checks[0].false_alarms_with, 2);
  EXPECT_EQ(checks[0].false_alarms_without, 0);
  EXPECT_EQ(checks[0].warning(),
            "references raise false alarms on class 'tile': of 2 good images held out of the calibration, 2 were "
            "called defective with the references and 0 without them; the reference images probably do not show how "
            "good 'tile' parts normally vary: add more varied good images, or inspect this product without "
            "references (few_shot.k: 0)");
  const auto j = app::held_out_json(checks);
  EXPECT_EQ(j.at("classes")[0].at("share_with_references").get<double>(), 1.0);
  EXPECT_EQ(j.at("classes")[0].at("references_raise_false_alarms").get<bool>(), true);
  EXPECT_NE(app::held_out_table(checks).find("tile"), std::string::npos);
  // The same scores both ways: no warning. A class of 3 holds out its last image; of 1, none.
  const auto same = app::held_out_false_alarms(
      {good_images("a", without), good_images("b", {0.1, 0.2, 0.9}), good_images("c", {0.5})},
      {good_images("a", without), good_images("b", {0.1, 0.2, 0.15}), good_images("c", {0.5})}, 0.99, 0.999);
  ASSERT_EQ(same.size(), 2u);
  EXPECT_EQ(same[0].warning(), "");
  EXPECT_EQ(same[1].held_out, 1);
  EXPECT_EQ(same[1].false_alarms_with, 1);
  EXPECT_EQ(same[1].false_alarms_without, 0);
  EXPECT_EQ(error_of([&] { app::held_out_false_alarms({good_images("a", without)}, {}, 0.99, 0.999); }),
            "reference check: 1 classes with references, 0 without");
}
