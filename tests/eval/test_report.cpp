// Report writers: null (never NaN) for undefined values, means over defined classes, exact text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

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
