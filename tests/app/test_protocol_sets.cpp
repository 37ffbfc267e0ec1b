// The full-size protocol sets of `bench --only gpu` (app/bench/protocol_sets.h), generated at a tiny
// scale: the real datasets' class counts, total images spread over the classes, VisA's 3:2 JPEGs
// with masks, MVTec's PNG sides growing over the classes; the same files for 1 and 3 threads.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <string>

#include "support/test_util.h"
#include "vcpclip/app/bench/protocol_sets.h"
#include "vcpclip/common/error.h"
#include "vcpclip/data/datasets.h"

using namespace vcpclip;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("vcpclip_protocol_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// Relative path → bytes of every file below `root`.
std::map<std::string, std::string> files_below(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().lexically_relative(root).generic_string()] =
        std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  return out;
}

}  // namespace

TEST(ProtocolSets, FullSizeOptionsAreTheRealDatasetsSizes) {
  const auto s = app::protocol_set_options("/tmp/x", 1.0, 16);
  EXPECT_EQ(s.auxiliary.layout, "visa");
  EXPECT_EQ(s.auxiliary.classes, 12);
  EXPECT_EQ(s.auxiliary.total_images, 2162);
  EXPECT_EQ(s.auxiliary.width, 1500);
  EXPECT_EQ(s.auxiliary.height, 1000);
  EXPECT_EQ(s.auxiliary.train_images, 0);
  EXPECT_EQ(s.target.layout, "mvtec");
  EXPECT_EQ(s.target.classes, 15);
  EXPECT_EQ(s.target.total_images, 1725);
  EXPECT_EQ(s.target.size, 700);
  EXPECT_EQ(s.target.max_size, 1024);
  EXPECT_EQ(s.target.set, "target");
  EXPECT_EQ(s.auxiliary.set, "auxiliary");
  EXPECT_EQ(vcpclip::testing::error_of([] { app::protocol_set_options("/tmp/x", 0, 1); }),
            "protocol sets: expected a scale in (0, 1], found 0");
}

TEST(ProtocolSets, TinyScaleWritesTheRealLayoutsCountsAndSizesWhateverTheThreads) {
  const fs::path one = fresh_dir("one"), three = fresh_dir("three");
  const double scale = 0.02;  // VisA-sized: 43 images of 30 x 20; MVTec-sized: 35 images of 16 -> 20 px
  auto s1 = app::protocol_set_options(one.string(), scale, 1);
  auto s3 = app::protocol_set_options(three.string(), scale, 3);
  for (auto* s : {&s1, &s3}) {
    data::generate_synthetic(s->auxiliary);
    data::generate_synthetic(s->target);
  }
  EXPECT_EQ(files_below(one), files_below(three)) << "threads must not change the files";

  // VisA-sized: the reader sees 12 classes and 43 test images, JPEGs of 30 x 20 with masks.
  data::DataOptions visa;
  visa.layout = "visa";
  visa.root = s1.auxiliary.out;
  visa.split = "test";
  const auto vi = data::read_index(visa);
  EXPECT_EQ(vi.samples.size(), 43u);
  std::set<std::string> classes;
  int anomalous = 0;
  for (const auto& si : vi.samples) {
    classes.insert(si.cls_name);
    EXPECT_EQ(fs::path(si.image_path).extension(), ".JPG") << si.image_path;
    const cv::Mat im = cv::imread(si.image_path);
    EXPECT_EQ(im.cols, 30) << si.image_path;
    EXPECT_EQ(im.rows, 20) << si.image_path;
    if (si.anomaly) {
      ++anomalous;
      const cv::Mat m = cv::imread(si.mask_path, cv::IMREAD_GRAYSCALE);
      EXPECT_EQ(m.cols, 30);
      EXPECT_EQ(m.rows, 20);
    }
  }
  EXPECT_EQ(classes.size(), 12u);
  EXPECT_GT(anomalous, 0);

  // MVTec-sized: 15 classes, 35 test images (the first 5 classes one more), sides 16 -> 20.
  data::DataOptions mv;
  mv.layout = "mvtec";
  mv.root = s1.target.out;
  mv.split = "test";
  const auto mi = data::read_index(mv);
  EXPECT_EQ(mi.samples.size(), 35u);
  std::map<std::string, int> per_class, side;
  for (const auto& si : mi.samples) {
    ++per_class[si.cls_name];
    EXPECT_EQ(fs::path(si.image_path).extension(), ".png") << si.image_path;
    const cv::Mat im = cv::imread(si.image_path);
    EXPECT_EQ(im.cols, im.rows) << si.image_path;
    side[si.cls_name] = im.cols;
  }
  EXPECT_EQ(per_class.size(), 15u);
  int threes = 0;
  for (const auto& [c, n] : per_class) threes += n == 3;
  EXPECT_EQ(threes, 5);  // 35 = 15 * 2 + 5
  int lo = 1 << 20, hi = 0;
  for (const auto& [c, px] : side) lo = std::min(lo, px), hi = std::max(hi, px);
  EXPECT_EQ(lo, 16);
  EXPECT_EQ(hi, 20);
  fs::remove_all(one);
  fs::remove_all(three);
}
