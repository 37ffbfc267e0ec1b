// Synthetic data: disjoint product sets, shared defect kinds, determinism, exact and visible
// defects, layouts, config errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "support/test_util.h"
#include "vcpclip/common/error.h"
#include "vcpclip/data/datasets.h"
#include "vcpclip/data/synthetic.h"

namespace fs = std::filesystem;
using namespace vcpclip::data;
using vcpclip::testing::error_of;

TEST(Synthetic, ProductSetsAreDisjointAndDefectKindsShared) {
  const auto aux = synthetic_kinds("auxiliary"), tgt = synthetic_kinds("target");
  EXPECT_EQ(aux.size(), 9u);
  EXPECT_EQ(tgt, (std::vector<std::string>{"checker", "wood", "plate", "bottle"}));
  std::set<std::string> a(aux.begin(), aux.end());
  for (const auto& t : tgt) EXPECT_EQ(a.count(t), 0u) << t;
  // Class names, any number of classes: never one in both sets.
  const auto an = synthetic_class_names("auxiliary", 40, aux), tn = synthetic_class_names("target", 40, tgt);
  std::set<std::string> names(an.begin(), an.end());
  EXPECT_EQ(names.size(), 40u);
  for (const auto& t : tn) EXPECT_EQ(names.count(t), 0u) << t;
  EXPECT_EQ(an[9], "stripes_2");
  // Default kinds: the first four of the set (names kept from earlier versions).
  EXPECT_EQ(synthetic_class_names("auxiliary", 5),
            (std::vector<std::string>{"stripes", "fabric", "disk", "screw", "stripes_2"}));
  EXPECT_EQ(synthetic_defect_kinds(),
            (std::vector<std::string>{"scratch", "hole", "color", "crack", "stain", "missing"}));
}

TEST(Synthetic, KindsOfTheOtherSetUnknownOrRepeatedAreErrors) {
  EXPECT_EQ(error_of([] {
              synthetic_class_names("auxiliary", 2, {"stripes", "wood"});
            }),
            "synthetic product kind 'wood' belongs to the target set, not the auxiliary set (the two sets never "
            "share a product); auxiliary kinds: stripes, fabric, disk, screw, carpet, mesh, metal, capsule, nut");
  EXPECT_NE(error_of([] {
              synthetic_class_names("target", 2, {"teapot"});
            }).find("unknown synthetic product kind 'teapot'; known: stripes (auxiliary)"),
            std::string::npos);
  EXPECT_EQ(error_of([] {
              synthetic_class_names("target", 2, {"wood", "wood"});
            }),
            "synthetic product kind 'wood' is listed twice");
  EXPECT_EQ(error_of([] { synthetic_class_names("other", 2); }),
            "synthetic set must be 'auxiliary' or 'target', found 'other'");
  auto node = vcpclip::io::ConfigNode::from_string("out: x\nset: target\nkinds: [wood, screw]\n", "t.yaml");
  EXPECT_NE(error_of([&] { parse_synth_options(node); })
                .find("config key 'kinds' in t.yaml: synthetic product kind "
                      "'screw' belongs to the auxiliary set"),
            std::string::npos);
}

TEST(Synthetic, DeterministicAndDefectsAreExactAndVisible) {
  for (const std::string set : {"auxiliary", "target"})
    for (const auto& kind : synthetic_kinds(set))
      for (const auto& d : synthetic_defect_kinds())
        for (uint64_t seed : {1u, 2u}) {
          SCOPED_TRACE(kind + " " + d + " " + std::to_string(seed));
          SynthItem a = render_synthetic(kind, 0, d, seed, 96);
          SynthItem b = render_synthetic(kind, 0, d, seed, 96);
          EXPECT_EQ(cv::norm(a.rgb, b.rgb, cv::NORM_INF), 0);
          EXPECT_EQ(cv::norm(a.mask, b.mask, cv::NORM_INF), 0);
          const int area = cv::countNonZero(a.mask);
          EXPECT_GE(area, 96 * 96 / 800);
          EXPECT_LT(area, 96 * 96 / 4);
          // Same seed, no defect: the same product; the difference must sit inside the mask.
          SynthItem g = render_synthetic(kind, 0, "good", seed, 96);
          EXPECT_EQ(cv::countNonZero(g.mask), 0);
          cv::Mat diff, grey;
          cv::absdiff(a.rgb, g.rgb, diff);
          cv::cvtColor(diff, grey, cv::COLOR_RGB2GRAY);
          const double inside = cv::mean(grey, a.mask)[0], outside = cv::mean(grey, a.mask == 0)[0];
          EXPECT_GT(inside, 25.0) << "defect not visible enough";
          EXPECT_GT(inside, 4 * outside + 5) << "inside " << inside << " outside " << outside;
        }
  // A variant is another product of the same kind: other colours.
  const SynthItem v0 = render_synthetic("stripes", 0, "good", 5, 64),
                  v1 = render_synthetic("stripes", 1, "good", 5, 64);
  EXPECT_GT(cv::norm(v0.rgb, v1.rgb, cv::NORM_L1) / (64 * 64 * 3), 10.0);
  EXPECT_EQ(error_of([] { render_synthetic("stripes", 0, "dent", 1, 64); }),
            "unknown synthetic defect type 'dent' (expected scratch, hole, color, crack, stain or missing)");
}

TEST(Synthetic, EveryClassOfBothSetsShowsEveryDefectKind) {
  const fs::path root = fs::temp_directory_path() / "vcpclip_test_synth_kinds";
  for (const std::string set : {"auxiliary", "target"}) {
    fs::remove_all(root);
    SynthOptions o;
    o.out = root.string();
    o.set = set;
    o.kinds = synthetic_kinds(set);
    o.classes = static_cast<int>(o.kinds.size());
    o.images = 10;  // 6 anomalous: one of each kind
    o.train_images = 0;
    o.size = 32;
    const auto s = generate_synthetic(o);
    ASSERT_EQ(s.classes, o.kinds);
    for (const auto& cls : s.classes)
      for (const auto& d : synthetic_defect_kinds()) {
        EXPECT_TRUE(fs::exists(root / cls / "test" / d / "000.png")) << set << " " << cls << " " << d;
        EXPECT_TRUE(fs::exists(root / cls / "ground_truth" / d / "000_mask.png")) << set << " " << cls << " " << d;
      }
  }
  fs::remove_all(root);
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

// Generation at a size like a small real run (timed by `vcpclip bench`, section data): every image
// of every class is written and listed.
TEST(Synthetic, SixClassesOfTwentyAt128AreAllWritten) {
  const fs::path root = fs::temp_directory_path() / "vcpclip_test_synth_six";
  fs::remove_all(root);
  SynthOptions o;
  o.out = root.string();
  o.classes = 6;
  o.images = 20;
  o.size = 128;
  auto s = generate_synthetic(o);
  EXPECT_EQ(s.normal + s.anomalous, 120);
  EXPECT_EQ(s.train, 60);
  EXPECT_EQ(s.classes.size(), 6u);
  const auto test = read_mvtec(root.string(), "test", {});
  EXPECT_EQ(test.samples.size(), 120u);
  EXPECT_EQ(read_mvtec(root.string(), "train", {}).samples.size(), 60u);
  int anomalous = 0;
  for (const auto& smp : test.samples) anomalous += smp.anomaly;
  EXPECT_EQ(anomalous, s.anomalous);
  fs::remove_all(root);
}

// The full-size options (bench --only gpu): their checks say what was expected and what was found.
TEST(Synthetic, FullSizeOptionsAreChecked) {
  SynthOptions o;
  o.out = (fs::temp_directory_path() / ("vcpclip_synth_checks_" + std::to_string(::getpid()))).string();
  o.classes = 3;
  o.total_images = 5;
  EXPECT_EQ(error_of([&] { generate_synthetic(o); }),
            "synthetic total_images must be 0 or >= 2 per class (6 for 3 classes), found 5");
  o.total_images = 0;
  o.width = 30;
  EXPECT_EQ(error_of([&] { generate_synthetic(o); }),
            "synthetic width and height must be set together (both > 0) or not at all, found 30 x 0");
  o.width = 0;
  o.threads = 0;
  EXPECT_EQ(error_of([&] { generate_synthetic(o); }), "synthetic threads must be >= 1, found 0");
  EXPECT_FALSE(fs::exists(o.out)) << "nothing written before the checks pass";
}
