// Calibration: eval's F1-optimal thresholds taken exactly (ties, scores closer than float32), the
// midpoint decision thresholds and their confusion counts, numpy-linear quantiles, the strict
// calibration.json reader (round trip, exact error messages) and the settings comparison.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/test_util.h"
#include "vcpclip/eval/calibration.h"

using namespace vcpclip::eval;
using vcpclip::testing::error_of;
namespace fs = std::filesystem;

namespace {

/// 6 images of 2×2 pixels: three normal, three anomalous. Scores 0.5 and 0.5 + 1e-12 are the
/// same float32 but different images (normal / anomalous).
ClassAccumulator widget() {
  ClassAccumulator acc("widget");
  const float maps[6][4] = {{0.0f, 0.1f, 0.2f, 0.1f},  {0.1f, 0.3f, 0.2f, 0.0f}, {0.2f, 0.4f, 0.1f, 0.0f},
                            {0.9f, 0.35f, 0.1f, 0.0f}, {0.8f, 0.7f, 0.6f, 0.0f}, {1.0f, 0.2f, 0.5f, 0.5f}};
  const uint8_t masks[6][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {1, 1, 0, 0}, {1, 1, 0, 0}, {1, 0, 1, 0}};
  const double scores[6] = {0.0, 0.25, 0.5, 0.5 + 1e-12, 0.75, 1.0};
  for (int i = 0; i < 6; ++i)
    acc.add("widget/" + std::to_string(i), maps[i], masks[i], 2, 2, scores[i], i >= 3 ? 1 : 0);
  return acc;
}

Calibration sample_calibration() {
  ClassAccumulator acc = widget();
  const auto ranges = class_ranges({acc});
  acc.normalize();
  const auto metrics = acc.compute(MetricsOptions{});
  std::string why;
  Calibration c;
  c.method = "f1";
  c.created = "2025-01-01T00:00:00Z";
  c.version = "0.1.0";
  c.data = {{"layout", "mvtec"}, {"root", "/data"}};
  c.checkpoint = "k.pth";
  c.checkpoint_sha256 = std::string(64, 'a');
  c.config_path = "c.yaml";
  c.settings = {{"postprocess", {{"sigma", 8.0}}}};
  c.classes.push_back(*f1_class_calibration(ranges[0], acc, metrics, &why));
  c.skipped.emplace_back("empty", "no images");
  return c;
}

std::string write_text(const std::string& name, const std::string& text) {
  const auto p = fs::temp_directory_path() / name;
  std::ofstream(p) << text;
  return p.string();
}

}  // namespace

TEST(Calibration, F1ThresholdsAreEvalsExactlyAndDecideLikeEval) {
  ClassAccumulator acc = widget();
  const auto ranges = class_ranges({acc});
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_EQ(ranges[0].score_min, 0.0);
  EXPECT_EQ(ranges[0].score_max, 1.0);
  EXPECT_EQ(ranges[0].map_min, 0.0f);
  EXPECT_EQ(ranges[0].map_max, 1.0f);
  acc.normalize();
  const auto metrics = acc.compute(MetricsOptions{});
  std::string why;
  const auto c = f1_class_calibration(ranges[0], acc, metrics, &why);
  ASSERT_TRUE(c) << why;
  // Images: F1 = 1 at the anomalous 0.5 + 1e-12, which float32 cannot tell from the normal 0.5.
  EXPECT_EQ(*c->image_f1, 1.0);
  EXPECT_EQ(*c->image_f1_threshold, 0.5 + 1e-12);
  EXPECT_GT(c->image_threshold, 0.5);
  EXPECT_LT(c->image_threshold, 0.5 + 1e-12);
  EXPECT_EQ(*c->image_confusion, (Confusion{3, 0, 0, 3}));
  // Pixels: F1 0.8 at 0.7 and at 0.35 (a tie); eval takes the lower one. The decision threshold is
  // the midpoint to the next lower value, 0.3.
  EXPECT_EQ(*c->pixel_f1_threshold, double(0.35f));
  EXPECT_EQ(*c->pixel_f1_threshold, *metrics.pixel.f1_threshold);
  EXPECT_EQ(c->pixel_threshold, double(0.3f) + (double(0.35f) - double(0.3f)) / 2);
  EXPECT_EQ(*c->pixel_confusion, (Confusion{6, 3, 0, 15}));
  EXPECT_NEAR(c->pixel_confusion->f1(), *metrics.pixel.f1_max, 1e-7);
  EXPECT_NEAR(c->image_confusion->f1(), *metrics.image.f1_max, 1e-12);
  EXPECT_EQ(c->images, 6);
  EXPECT_EQ(c->anomalous, 3);
}

TEST(Calibration, F1ThresholdAtTheClassMinimumKeepsAMarginBelowIt) {
  // Every image anomalous but one, which scores highest: F1 is best when all are flagged, i.e. at
  // the lowest score (class score 0). The threshold must not sit on that score, where the last
  // float32 bits of another batching would decide; it lies half the normalised range below it.
  ClassAccumulator acc("all");
  const float map[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  const uint8_t mask[4] = {1, 1, 1, 1};
  acc.add("a", map, mask, 2, 2, 0.1, 1);
  acc.add("b", map, mask, 2, 2, 0.2, 1);
  acc.add("c", map, mask, 2, 2, 0.3, 0);
  const auto ranges = class_ranges({acc});
  acc.normalize();
  const auto metrics = acc.compute(MetricsOptions{});
  std::string why;
  const auto c = f1_class_calibration(ranges[0], acc, metrics, &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(*c->image_f1_threshold, 0.0);
  EXPECT_EQ(c->image_threshold, -0.5);
  EXPECT_EQ(*c->image_confusion, (Confusion{2, 1, 0, 0}));
  EXPECT_EQ(c->pixel_threshold, -0.5) << "all pixels are defects: every one is flagged";
}

TEST(Calibration, F1NeedsAnomalies) {
  ClassAccumulator acc("plain");
  const float map[2] = {0.1f, 0.2f};
  acc.add("a", map, nullptr, 1, 2, 0.3, 0);
  acc.add("b", map, nullptr, 1, 2, 0.4, 0);
  const auto ranges = class_ranges({acc});
  acc.normalize();
  std::string why;
  EXPECT_FALSE(f1_class_calibration(ranges[0], acc, acc.compute(MetricsOptions{}), &why));
  EXPECT_EQ(why, "no anomalous image, so no F1-optimal image threshold (use the quantile method)");
}

TEST(Calibration, QuantilesAreNumpyLinear) {
  std::vector<double> v{4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(quantile(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile(v, 0.99), 3.97);
  EXPECT_DOUBLE_EQ(quantile(v, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(quantile(v, 0.0), 1.0);
  std::vector<float> one{7.0f};
  EXPECT_EQ(quantile(one, 0.3), 7.0);
  std::vector<double> none;
  EXPECT_EQ(error_of([&] { quantile(none, 0.5); }), "quantile of no values");
  EXPECT_EQ(error_of([&] { quantile(v, 1.5); }), "quantile: expected q in [0, 1], found 1.5");
}

TEST(Calibration, QuantileMethodOnNormalImages) {
  ClassAccumulator acc("nut");
  const float maps[4][2] = {{0.0f, 1.0f}, {2.0f, 3.0f}, {4.0f, 5.0f}, {6.0f, 8.0f}};
  for (int i = 0; i < 4; ++i) acc.add("nut/" + std::to_string(i), maps[i], nullptr, 1, 2, 1.0 + i, 0);
  const auto c = quantile_class_calibration(acc, 0.5, 0.75);
  EXPECT_EQ(c.score_min, 1.0);
  EXPECT_EQ(c.score_max, 4.0);
  EXPECT_EQ(c.map_min, 0.0f);
  EXPECT_EQ(c.map_max, 8.0f);
  EXPECT_DOUBLE_EQ(c.image_threshold, 0.5);  // median of 0, 1/3, 2/3, 1
  // pixels / 8: 0, .125, .25, .375, .5, .625, .75, 1 -> 0.75-quantile at h = 5.25
  EXPECT_DOUBLE_EQ(c.pixel_threshold, 0.625 + 0.25 * 0.125);
  EXPECT_FALSE(c.image_f1 || c.image_confusion || c.pixel_confusion);
  acc.add("nut/bad", maps[0], nullptr, 1, 2, 2.0, 1);
  EXPECT_EQ(error_of([&] { quantile_class_calibration(acc, 0.5, 0.5); }),
            "quantile calibration: class 'nut', image 'nut/bad' is anomalous; the quantile method uses normal "
            "images only");
}

TEST(Calibration, JsonRoundTripIsExact) {
  const Calibration c = sample_calibration();
  const auto path = (fs::temp_directory_path() / "calibration.json").string();
  write_calibration(c, path);
  const Calibration r = read_calibration(path);
  EXPECT_EQ(to_json(r), to_json(c));
  ASSERT_EQ(r.classes.size(), 1u);
  EXPECT_EQ(r.classes[0].image_threshold, c.classes[0].image_threshold);
  EXPECT_EQ(r.classes[0].pixel_threshold, c.classes[0].pixel_threshold);
  EXPECT_EQ(*r.classes[0].image_confusion, *c.classes[0].image_confusion);
  EXPECT_EQ(r.skipped, c.skipped);
  EXPECT_EQ(r.checkpoint_sha256, c.checkpoint_sha256);
}

TEST(Calibration, ReaderErrorsNameFileAndKey) {
  EXPECT_EQ(error_of([] { read_calibration("/nonexistent/calibration.json"); }),
            "cannot read calibration file /nonexistent/calibration.json (missing or unreadable)");
  const auto bad = write_text("bad.json", "{ not json");
  EXPECT_EQ(error_of([&] { read_calibration(bad); }).rfind("calibration file " + bad + " is not valid JSON: ", 0), 0u);
  const auto other = write_text("other.json", "{\"format\": \"something\"}");
  EXPECT_EQ(error_of([&] { read_calibration(other); }),
            "calibration file " + other + ": not a vcpclip calibration (expected \"format\": \"vcpclip-calibration\")");
  auto j = to_json(sample_calibration());
  j["version"] = 2;
  EXPECT_EQ(error_of([&] { calibration_from_json(j, "F"); }),
            "calibration file F: version 2 is not supported (expected 1)");
  j = to_json(sample_calibration());
  j["classes"][0].erase("pixel_threshold");
  EXPECT_EQ(error_of([&] { calibration_from_json(j, "F"); }),
            "calibration file F: missing key 'classes[0].pixel_threshold'");
  j = to_json(sample_calibration());
  j["classes"][0]["image_threshold"] = "high";
  EXPECT_EQ(error_of([&] { calibration_from_json(j, "F"); }),
            "calibration file F: key 'classes[0].image_threshold' has the wrong type (found \"high\")");
  j = to_json(sample_calibration());
  j["checkpoint"].erase("sha256");
  EXPECT_EQ(error_of([&] { calibration_from_json(j, "F"); }), "calibration file F: missing key 'checkpoint.sha256'");
  j = to_json(sample_calibration());
  j["method"] = "guess";
  EXPECT_EQ(error_of([&] { calibration_from_json(j, "F"); }),
            "calibration file F: method must be 'f1' or 'quantile', found 'guess'");
}

TEST(Calibration, FindAClass) {
  Calibration c = sample_calibration();
  EXPECT_EQ(c.find("", "F").name, "widget");
  EXPECT_EQ(c.find("widget", "F").name, "widget");
  EXPECT_EQ(error_of([&] { c.find("bolt", "F"); }), "calibration F has no class 'bolt' (it has: widget)");
  c.classes.push_back(c.classes[0]);
  c.classes.back().name = "gear";
  EXPECT_EQ(error_of([&] { c.find("", "F"); }), "calibration F has 2 classes (widget, gear): choose one with --class");
}

TEST(Calibration, SettingsDifferences) {
  const nlohmann::json cal = {{"model", {{"image_size", 64}, {"weights_sha256", "ab"}}},
                              {"postprocess", {{"sigma", 8.0}}}};
  EXPECT_TRUE(settings_differences(cal, cal).empty());
  nlohmann::json run = {{"model", {{"image_size", 128}, {"init_seed", 3}}}, {"postprocess", {{"sigma", 8}}}};
  EXPECT_EQ(settings_differences(cal, run),
            (std::vector<std::string>{"model.image_size: 64 in the calibration, 128 in this run",
                                      "model.init_seed: absent in the calibration, 3 in this run",
                                      "model.weights_sha256: \"ab\" in the calibration, absent in this run"}));
}
