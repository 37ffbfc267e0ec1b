// Where few-shot references hurt (eval/reference_effect.h): the 1-point rule, the plain-words
// warning, the table and the metrics.json entry, exact text.
#include <gtest/gtest.h>

#include "vcpclip/eval/reference_effect.h"
#include "vcpclip/eval/report.h"

using namespace vcpclip::eval;

namespace {

ClassMetrics cls(const std::string& name, double pixel, double image) {
  ClassMetrics m;
  m.name = name;
  m.pixel.auroc = pixel;
  m.image.auroc = image;
  return m;
}

}  // namespace

TEST(ReferenceEffect, MoreThanOnePointDownIsWorse) {
  const auto effects = reference_effects({cls("checker", 0.912, 0.898), cls("bottle", 0.94, 0.80)},
                                         {cls("checker", 0.893, 0.801), cls("bottle", 0.931, 0.791)}, 4);
  ASSERT_EQ(effects.size(), 2u);
  EXPECT_TRUE(effects[0].pixel_worse());
  EXPECT_TRUE(effects[0].image_worse());
  // 0.9 points down on both: not worse.
  EXPECT_FALSE(effects[1].worse());
  EXPECT_EQ(effects[1].warning(), "");
  EXPECT_EQ(effects[0].warning(),
            "references made class 'checker' WORSE: with its 4 reference images, finding where the defects are "
            "(pixel AUROC) fell from 91.20 % to 89.30 % and, telling good from defective parts (image AUROC) fell "
            "from 89.80 % to 80.10 % compared with no references. The reference images probably do not show how "
            "good 'checker' parts normally vary (position, pattern, lighting): add more varied good images, or "
            "inspect this product without references (few_shot.k: 0)");
  const auto one = reference_effects({cls("wood", 0.95, 0.90)}, {cls("wood", 0.99, 0.85)}, 1);
  EXPECT_FALSE(one[0].pixel_worse());
  EXPECT_EQ(one[0].warning(),
            "references made class 'wood' WORSE: with its 1 reference image, telling good from defective parts "
            "(image AUROC) fell from 90.00 % to 85.00 % compared with no references. The reference images probably "
            "do not show how good 'wood' parts normally vary (position, pattern, lighting): add more varied good "
            "images, or inspect this product without references (few_shot.k: 0)");
  const auto j = effects[0].to_json();
  EXPECT_EQ(j.at("verdict"), "worse with references");
  EXPECT_NEAR(j.at("pixel_change").get<double>(), -0.019, 1e-12);
  EXPECT_NEAR(j.at("image_auroc_zero_shot").get<double>(), 0.898, 1e-12);
}

TEST(ReferenceEffect, UndefinedValuesNeverCountAsWorse) {
  ClassMetrics none;
  none.name = "plate";
  const auto e = reference_effects({none}, {cls("plate", 0.5, 0.5)}, 2);
  EXPECT_FALSE(e[0].worse());
  EXPECT_TRUE(e[0].to_json().at("pixel_change").is_null());
  EXPECT_TRUE(e[0].to_json().at("pixel_auroc_zero_shot").is_null());
}

TEST(ReferenceEffect, TableAndMetricsJson) {
  EvaluationReport r;
  r.classes = {cls("checker", 0.893, 0.801), cls("bottle", 0.99, 1.0)};
  EXPECT_EQ(reference_effects_table({}), "");
  EXPECT_EQ(report_json(r).count("references_vs_zero_shot"), 0u);
  r.references = reference_effects({cls("checker", 0.912, 0.898), cls("bottle", 0.94, 0.80)}, r.classes, 4);
  EXPECT_EQ(reference_effects_table(r.references),
            "| references vs zero-shot | auroc_px zero-shot | auroc_px with refs | change | auroc_sp zero-shot | "
            "auroc_sp with refs | change | verdict               |\n"
            "|-------------------------|--------------------|--------------------|--------|--------------------|---"
            "-----------------|--------|-----------------------|\n"
            "| checker                 | 91.20              | 89.30              | -1.90  | 89.80              | "
            "80.10              | -9.70  | WORSE with references |\n"
            "| bottle                  | 94.00              | 99.00              | +5.00  | 80.00              | "
            "100.00             | +20.00 | not worse             |\n");
  const auto j = report_json(r);
  ASSERT_EQ(j.at("references_vs_zero_shot").size(), 2u);
  EXPECT_EQ(j.at("references_vs_zero_shot")[0].at("worse"), true);
  EXPECT_NE(report_table(r).find("| checker                 | 91.20"), std::string::npos);
  EXPECT_NE(report_markdown(r).find("## References vs zero-shot"), std::string::npos);
}
