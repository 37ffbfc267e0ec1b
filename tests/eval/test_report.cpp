// Report writers: null (never NaN) for undefined values, means over defined classes, exact text.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "support/file_size_limit.h"
#include "support/test_util.h"
#include "vcpclip/eval/report.h"

using namespace vcpclip::eval;

namespace {
EvaluationReport sample_report() {
  EvaluationReport r;
  ClassMetrics a;
  a.name = "bottle";
  a.num_images = 4;
  a.num_anomalous = 2;
  a.pixel = {0.9, 0.8, 0.5, 0.6, 0.25, 0.4};  // auroc aupro ap f1 thr iou
  a.image = {1.0, 1.0, 1.0};
  ClassMetrics b;
  b.name = "good_only";
  b.num_images = 2;
  b.pixel.f1_threshold = std::nullopt;
  b.pixel.auroc = std::numeric_limits<double>::quiet_NaN();  // must never reach the JSON as NaN
  b.warnings.push_back("class 'good_only': all images are normal");
  r.classes = {a, b};
  return r;
}
}  // namespace

TEST(Report, JsonHasNullForUndefinedAndMeansOverDefinedClasses) {
  const auto j = report_json(sample_report());
  EXPECT_EQ(j["aupro_mode"], "exact");
  ASSERT_EQ(j["classes"].size(), 2u);
  EXPECT_DOUBLE_EQ(j["classes"][0]["pixel_auroc"].get<double>(), 0.9);
  EXPECT_TRUE(j["classes"][1]["pixel_auroc"].is_null());
  EXPECT_TRUE(j["classes"][1]["image_ap"].is_null());
  EXPECT_DOUBLE_EQ(j["mean"]["pixel_aupro"].get<double>(), 0.8);
  EXPECT_EQ(j["mean"]["classes"], 2);
  const std::string text = j.dump();
  EXPECT_EQ(text.find("NaN"), std::string::npos);
  EXPECT_EQ(text.find("nan"), std::string::npos);
  ASSERT_GE(j["warnings"].size(), 2u);
  EXPECT_EQ(j["warnings"][0], "class 'good_only': all images are normal");
  EXPECT_EQ(j["warnings"][1], "mean pixel_auroc is over 1 of 2 classes (undefined for good_only)");
}

TEST(Report, CsvAndMarkdownText) {
  const auto r = sample_report();
  std::istringstream csv(report_csv(r));
  std::string l0, l1, l2, l3;
  std::getline(csv, l0), std::getline(csv, l1), std::getline(csv, l2), std::getline(csv, l3);
  EXPECT_EQ(l0,
            "class,num_images,num_anomalous,pixel_auroc,pixel_aupro,pixel_ap,pixel_f1_max,pixel_iou,image_auroc,"
            "image_ap,image_f1_max,pixel_f1_threshold");
  EXPECT_EQ(l1, "bottle,4,2,0.9,0.8,0.5,0.6,0.4,1,1,1,0.25");
  EXPECT_EQ(l2, "good_only,2,0,,,,,,,,,");
  EXPECT_EQ(l3, "mean,6,2,0.9,0.8,0.5,0.6,0.4,1,1,1,0.25");
  const std::string table = report_table(r);
  EXPECT_EQ(table,
            "| objects   | auroc_px | aupro_px | ap_px | f1_px |   iou | auroc_sp |  ap_sp |  f1_sp | threshold |\n"
            "|:----------|---------:|---------:|------:|------:|------:|---------:|-------:|-------:|----------:|\n"
            "| bottle    |    90.00 |    80.00 | 50.00 | 60.00 | 40.00 |   100.00 | 100.00 | 100.00 |     0.250 |\n"
            "| good_only |      n/a |      n/a |   n/a |   n/a |   n/a |      n/a |    n/a |    n/a |       n/a |\n"
            "| mean      |    90.00 |    80.00 | 50.00 | 60.00 | 40.00 |   100.00 | 100.00 | 100.00 |     0.250 |\n");
  const std::string md = report_markdown(r);
  EXPECT_NE(md.find(table), std::string::npos);
  EXPECT_NE(md.find("- class 'good_only': all images are normal\n"), std::string::npos);
}

TEST(Report, WritesThreeFiles) {
  const auto dir = std::filesystem::temp_directory_path() / "vcpclip_test_report";
  std::filesystem::remove_all(dir);
  write_reports(sample_report(), dir.string());
  for (const char* f : {"metrics.json", "metrics.csv", "metrics.md"}) {
    std::ifstream in(dir / f);
    EXPECT_TRUE(in.good()) << f;
  }
  std::ifstream in(dir / "metrics.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["classes"][0]["name"], "bottle");
  std::filesystem::remove_all(dir);
}

namespace {
/// bottle scored; candle failed (its 3 images not scored); screw scored with 1 of 4 images skipped.
EvaluationReport partial_report() {
  EvaluationReport r = sample_report();
  r.classes.pop_back();
  ClassMetrics failed;
  failed.name = "candle";
  failed.num_images = 3;
  failed.error = "missing anomaly map m/candle/good/000.npy for image 'candle/good/000'";
  ClassMetrics skipped = r.classes[0];
  skipped.name = "screw";
  skipped.num_images = 3;
  skipped.num_skipped = 1;
  r.classes.push_back(failed);
  r.classes.push_back(skipped);
  return r;
}
}  // namespace

TEST(Report, CompleteReportSaysSo) {
  const auto r = sample_report();
  const auto c = coverage(r);
  EXPECT_TRUE(c.complete());
  EXPECT_EQ(c.mean_label(), "mean");
  EXPECT_EQ(incomplete_summary(r), "");
  const auto j = report_json(r);
  EXPECT_TRUE(j["complete"].get<bool>());
  EXPECT_FALSE(j.contains("incomplete"));
  EXPECT_EQ(j["mean"]["label"], "mean");
  EXPECT_EQ(j["mean"]["images"], 6);
  EXPECT_EQ(j["mean"]["images_total"], 6);
  EXPECT_NO_THROW(require_complete(r, false, false));
}

TEST(Report, PartialReportIsLabelledEverywhere) {
  const auto r = partial_report();
  const auto c = coverage(r);
  EXPECT_FALSE(c.complete());
  EXPECT_EQ(c.classes, 2);
  EXPECT_EQ(c.classes_total, 3);
  EXPECT_EQ(c.images, 7);         // bottle 4 + screw 3
  EXPECT_EQ(c.images_total, 11);  // + candle 3 + 1 skipped
  const std::string label = "mean over 2 of 3 classes, 7 of 11 images";
  EXPECT_EQ(c.mean_label(), label);
  const std::string summary =
      "1 of 3 classes could not be scored (class 'candle': missing anomaly map m/candle/good/000.npy for image "
      "'candle/good/000'); 1 of 11 images skipped (unreadable)";
  EXPECT_EQ(incomplete_summary(r), summary);

  const auto j = report_json(r);
  EXPECT_FALSE(j["complete"].get<bool>());
  EXPECT_EQ(j["incomplete"], summary);
  EXPECT_EQ(j["mean"]["label"], label);
  EXPECT_EQ(j["mean"]["classes"], 2);
  EXPECT_EQ(j["mean"]["classes_total"], 3);
  EXPECT_TRUE(j["classes"][1]["pixel_auroc"].is_null());  // the failed class stays null
  EXPECT_EQ(j["classes"][2]["num_skipped"], 1);
  EXPECT_DOUBLE_EQ(j["mean"]["pixel_auroc"].get<double>(), 0.9);  // over bottle and screw

  std::istringstream csv(report_csv(r));
  std::string line, last;
  while (std::getline(csv, line)) last = line;
  EXPECT_EQ(last, "\"" + label + "\",7,4,0.9,0.8,0.5,0.6,0.4,1,1,1,0.25");
  EXPECT_NE(report_table(r).find("| " + label + " |"), std::string::npos) << report_table(r);
  const std::string md = report_markdown(r);
  EXPECT_NE(md.find("**Partial result:** " + summary + ".\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| " + label + " |"), std::string::npos) << md;
}

TEST(Report, RequireCompleteRefusesPartialResultsUnlessAllowed) {
  const auto r = partial_report();
  EXPECT_EQ(vcpclip::testing::error_of([&] { require_complete(r, false, true); }),
            "incomplete result, no metrics written: " + incomplete_summary(r) +
                " (--allow-partial reports what could be scored, labelled as partial)");
  EXPECT_NO_THROW(require_complete(r, true, false));
  // Only skipped images: accepted with skip_bad (the user asked for it) or allow_partial.
  EvaluationReport only_skipped = sample_report();
  only_skipped.classes[0].num_skipped = 2;
  EXPECT_NE(vcpclip::testing::error_of([&] { require_complete(only_skipped, false, false); }), "(no error)");
  EXPECT_NO_THROW(require_complete(only_skipped, false, true));
  EXPECT_EQ(coverage(only_skipped).mean_label(), "mean over 6 of 8 images");
  // Nothing scored at all is an error even when partial results are allowed.
  EvaluationReport none;
  none.classes = {partial_report().classes[1]};
  EXPECT_EQ(vcpclip::testing::error_of([&] { require_complete(none, true, true); }),
            "no class could be scored, no metrics written: 1 of 1 classes could not be scored (class 'candle': "
            "missing anomaly map m/candle/good/000.npy for image 'candle/good/000')");
}

TEST(Report, FullDiskKeepsThePreviousReportsAndNoTemporary) {
  const auto dir = std::filesystem::temp_directory_path() / ("vcpclip_test_report_full_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  write_reports(sample_report(), dir.string());
  std::map<std::string, std::string> before;
  for (const char* f : {"metrics.json", "metrics.csv", "metrics.md"})
    before[f] = vcpclip::testing::slurp((dir / f).string());
  // The limit lets the two smaller new files through and stops the largest: none of the three may
  // change, although two were written completely.
  const auto r = partial_report();
  std::vector<std::pair<size_t, std::string>> sizes = {{report_json(r).dump(2).size() + 1, "metrics.json"},
                                                       {report_csv(r).size(), "metrics.csv"},
                                                       {report_markdown(r).size(), "metrics.md"}};
  std::sort(sizes.begin(), sizes.end());
  std::string error;
  {
    vcpclip::testing::FileSizeLimit limit(sizes[1].first);
    error = vcpclip::testing::error_of([&] { write_reports(r, dir.string()); });
  }
  const std::string failed = (dir / sizes[2].second).string();
  EXPECT_EQ(error.rfind("cannot write " + failed + " (temporary file " + failed + ".tmp.", 0), 0u) << error;
  EXPECT_NE(error.find("): File too large"), std::string::npos) << error;
  for (const auto& [f, text] : before) EXPECT_EQ(vcpclip::testing::slurp((dir / f).string()), text) << f;
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 3);
  std::filesystem::remove_all(dir);
}
