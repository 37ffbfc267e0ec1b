// `data check` problem detection with exact messages, on a synthetic MVTec set broken on purpose.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "vcpclip/data/check.h"
#include "vcpclip/data/synthetic.h"

namespace fs = std::filesystem;
using namespace vcpclip::data;

TEST(DataCheck, CleanSyntheticSetIsOk) {
  const fs::path root = fs::temp_directory_path() / "vcpclip_test_check_clean";
  fs::remove_all(root);
  SynthOptions o;
  o.out = root.string();
  o.classes = 2;
  o.images = 5;
  o.size = 24;
  generate_synthetic(o);
  DataOptions d;
  d.layout = "mvtec";
  d.root = root.string();
  DataReport r = check_dataset(d);
  EXPECT_TRUE(r.ok()) << r.format();
  ASSERT_EQ(r.classes.size(), 2u);
  EXPECT_EQ(r.classes[0].cls, "fabric");  // sorted: fabric, stripes
  EXPECT_EQ(r.classes[0].normal, 2);
  EXPECT_EQ(r.classes[0].anomalous, 3);
  EXPECT_EQ(r.classes[0].masks, 3);
  EXPECT_EQ(r.total(), 10);
  EXPECT_NE(r.format().find("OK: no problems found"), std::string::npos);
  fs::remove_all(root);
}

TEST(DataCheck, ReportsEveryProblem) {
  const fs::path root = fs::temp_directory_path() / "vcpclip_test_check_broken";
  fs::remove_all(root);
  SynthOptions o;
  o.out = root.string();
  o.classes = 1;  // stripes: defects scratch, hole, color; 6 test images: 2 good + 4 anomalous
  o.images = 6;
  o.size = 24;
  generate_synthetic(o);
  const fs::path cls = root / "stripes";
  // 1. missing mask
  const fs::path missing = cls / "ground_truth" / "hole" / "000_mask.png";
  fs::remove(missing);
  // 2. mask of the wrong size
  const fs::path wrong = cls / "ground_truth" / "color" / "000_mask.png";
  cv::imwrite(wrong.string(), cv::Mat(10, 12, CV_8U, cv::Scalar(255)));
  // 3. unreadable image
  const fs::path junk = cls / "test" / "good" / "001.png";
  std::ofstream(junk) << "not an image";
  // 4. empty class
  fs::create_directories(root / "zipper" / "test" / "good");
  // 5. mask without defect pixels: a warning only
  const fs::path blank = cls / "ground_truth" / "scratch" / "000_mask.png";
  cv::imwrite(blank.string(), cv::Mat(24, 24, CV_8U, cv::Scalar(0)));

  DataOptions d;
  d.layout = "mvtec";
  d.root = root.string();
  DataReport r = check_dataset(d);
  EXPECT_FALSE(r.ok());
  const std::vector<std::string> expected{
      "empty class: zipper has no images in split 'test'",
      "unreadable image: cannot decode image file (not an image or corrupt): " + junk.string(),
      "missing mask: " + missing.string() + " (for " + (cls / "test" / "hole" / "000.png").string() + ")",
      "mask size 12x10 differs from image size 24x24: " + wrong.string() + " (for " +
          (cls / "test" / "color" / "000.png").string() + ")",
  };
  std::vector<std::string> got = r.problems;
  std::sort(got.begin(), got.end());
  std::vector<std::string> want = expected;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want) << r.format();
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0], "mask has no defect pixel: " + blank.string() + " (for " +
                               (cls / "test" / "scratch" / "000.png").string() + ")");
  EXPECT_EQ(r.bad_images.size(), 3u);
  ASSERT_EQ(r.classes.size(), 2u);
  EXPECT_EQ(r.classes[0].masks, 3);  // 4 anomalous, one mask missing
  const std::string text = r.format();
  EXPECT_NE(text.find("4 problem(s) found"), std::string::npos) << text;
  EXPECT_NE(text.find("problem: empty class: zipper"), std::string::npos) << text;

  // skip_bad support: dropping the bad samples leaves the clean ones.
  auto samples = read_samples(d);
  EXPECT_EQ(samples.size(), 6u);
  EXPECT_EQ(drop_bad(samples, r), 3u);
  EXPECT_EQ(samples.size(), 3u);

  // Existence-only mode sees the missing mask but not the size mismatch.
  CheckOptions shallow;
  shallow.decode = false;
  DataReport s = check_dataset(d, shallow);
  EXPECT_EQ(s.problems.size(), 2u) << s.format();
  fs::remove_all(root);
}
