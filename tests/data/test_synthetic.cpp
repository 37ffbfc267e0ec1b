// Synthetic data: determinism, disjoint sets, exact and visible defects, layouts, speed.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "vcpclip/common/error.h"
#include "vcpclip/data/synthetic.h"

namespace fs = std::filesystem;
using namespace vcpclip::data;

TEST(Synthetic, SetsAreDisjoint) {
  auto aux = synthetic_class_names("auxiliary", 12), tgt = synthetic_class_names("target", 12);
  std::set<std::string> a(aux.begin(), aux.end());
  EXPECT_EQ(a.size(), 12u);
  for (const auto& t : tgt) EXPECT_EQ(a.count(t), 0u) << t;
  EXPECT_EQ(aux[4], "stripes_2");
  EXPECT_THROW(synthetic_class_names("other", 2), vcpclip::Error);
}

TEST(Synthetic, DeterministicAndDefectsAreExactAndVisible) {
  for (const std::string set : {"auxiliary", "target"})
    for (int ci = 0; ci < 4; ++ci)
      for (const auto& d : synthetic_defects(set, ci))
        for (uint64_t seed : {1u, 2u}) {
          SCOPED_TRACE(set + " " + std::to_string(ci) + " " + d + " " + std::to_string(seed));
          SynthItem a = render_synthetic(set, ci, d, seed, 96);
          SynthItem b = render_synthetic(set, ci, d, seed, 96);
          EXPECT_EQ(cv::norm(a.rgb, b.rgb, cv::NORM_INF), 0);
          EXPECT_EQ(cv::norm(a.mask, b.mask, cv::NORM_INF), 0);
          const int area = cv::countNonZero(a.mask);
          EXPECT_GE(area, 96 * 96 / 800);
          EXPECT_LT(area, 96 * 96 / 4);
          // Same seed, no defect: the same product; the difference must sit inside the mask.
          SynthItem g = render_synthetic(set, ci, "good", seed, 96);
          EXPECT_EQ(cv::countNonZero(g.mask), 0);
          cv::Mat diff, grey;
          cv::absdiff(a.rgb, g.rgb, diff);
          cv::cvtColor(diff, grey, cv::COLOR_RGB2GRAY);
          const double inside = cv::mean(grey, a.mask)[0], outside = cv::mean(grey, a.mask == 0)[0];
          EXPECT_GT(inside, 25.0) << "defect not visible enough";
          EXPECT_GT(inside, 4 * outside + 5) << "inside " << inside << " outside " << outside;
        }
}

TEST(Synthetic, VisaLayoutMatchesTheRealFile) {
  const fs::path root = fs::temp_directory_path() / "vcpclip_test_synth_visa";
  fs::remove_all(root);
  SynthOptions o;
  o.layout = "visa";
  o.out = root.string();
  o.classes = 2;
  o.images = 5;
  o.train_images = 2;
  o.size = 32;
  auto s = generate_synthetic(o);
  EXPECT_EQ(s.train, 4);
  EXPECT_EQ(s.normal, 4);
  EXPECT_EQ(s.anomalous, 6);
  std::ifstream f(root / "split_csv" / "1cls.csv", std::ios::binary);
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "object,split,label,image,mask\r");  // CRLF as the official file
  std::getline(f, line);
  EXPECT_EQ(line, "stripes,train,normal,stripes/Data/Images/Normal/0000.JPG,\r");
  int rows = 1;
  while (std::getline(f, line)) ++rows;
  EXPECT_EQ(rows, 14);
  cv::Mat m = cv::imread((root / "fabric/Data/Masks/Anomaly/000.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(m.empty());
  double mx;
  cv::minMaxLoc(m, nullptr, &mx);
  EXPECT_EQ(mx, 1.0);  // values > 0 mark defects (not 255)
  EXPECT_TRUE(fs::exists(root / "fabric/Data/Images/Anomaly/002.JPG"));
  fs::remove_all(root);
}

TEST(Synthetic, FastEnough) {
  const fs::path root = fs::temp_directory_path() / "vcpclip_test_synth_speed";
  fs::remove_all(root);
  SynthOptions o;
  o.out = root.string();
  o.classes = 6;
  o.images = 20;
  o.size = 128;
  auto s = generate_synthetic(o);
  EXPECT_EQ(s.normal + s.anomalous, 120);
  EXPECT_LT(s.seconds, 5.0);  // requirement: 6 classes × 20 images at 128² in < 5 s
  std::cout << "synthetic 6x20 (+60 train) at 128^2: " << s.seconds << " s\n";
  fs::remove_all(root);
}
