// Decisions from a calibration: the class score (eval's arithmetic), the threshold-centred score,
// the pixel mask at the threshold, nearest-neighbour masks at the input size and their
// 8-connected regions.
#include <gtest/gtest.h>

#include <cmath>

#include "support/test_util.h"
#include "vcpclip/eval/calibration.h"
#include "vcpclip/eval/decision.h"

using namespace vcpclip::eval;
using vcpclip::testing::error_of;

namespace {

ClassCalibration cal() {
  ClassCalibration c;
  c.name = "widget";
  c.score_min = 1.0, c.score_max = 3.0;
  c.map_min = 0.5f, c.map_max = 2.5f;
  c.image_threshold = 0.3;
  c.pixel_threshold = 0.5;
  return c;
}

}  // namespace

TEST(Decision, ClassScoreAndThresholdCentredScore) {
  const auto c = cal();
  EXPECT_DOUBLE_EQ(class_score(2.0, c), 0.5);
  EXPECT_DOUBLE_EQ(class_score(0.0, c), -0.5);
  auto flat = c;
  flat.score_max = flat.score_min;
  EXPECT_EQ(class_score(7.0, flat), 0.0);
  EXPECT_DOUBLE_EQ(threshold_centred(0.15, 0.3), 0.25);
  EXPECT_DOUBLE_EQ(threshold_centred(0.3, 0.3), 0.5);
  EXPECT_DOUBLE_EQ(threshold_centred(0.65, 0.3), 0.75);
  EXPECT_EQ(threshold_centred(2.0, 0.3), 1.0);
  EXPECT_EQ(threshold_centred(-1.0, 0.3), 0.0);
  EXPECT_LT(threshold_centred(std::nextafter(0.3, 0.0), 0.3), 0.5);  // "ok" stays below 0.5
  EXPECT_EQ(threshold_centred(1.0, 1.0), 1.0);
  EXPECT_EQ(threshold_centred(0.0, 0.0), 0.5);
}

TEST(Decision, PixelMaskUsesTheClassRange) {
  const auto c = cal();
  // normalised: (v - 0.5) / 2 >= 0.5  <=>  v >= 1.5
  cv::Mat map = (cv::Mat_<float>(2, 3) << 0.5f, 1.4999f, 1.5f, 2.5f, 3.0f, -1.0f);
  const cv::Mat m = pixel_mask(map, c);
  const cv::Mat expected = (cv::Mat_<uint8_t>(2, 3) << 0, 0, 255, 255, 255, 0);
  EXPECT_EQ(cv::countNonZero(m != expected), 0);
  EXPECT_EQ(error_of([&] { pixel_mask(cv::Mat(2, 2, CV_8UC1), c); }),
            "pixel mask: expected a float32 single-channel map, found OpenCV type 0");
}

TEST(Decision, RegionsAreEightConnectedLargestFirst) {
  cv::Mat m = cv::Mat::zeros(6, 8, CV_8UC1);
  m.at<uint8_t>(0, 0) = 255;  // diagonal pair: one region of 2
  m.at<uint8_t>(1, 1) = 255;
  m(cv::Rect(4, 2, 3, 3)).setTo(255);  // 3x3 block
  m.at<uint8_t>(5, 0) = 1;             // any non-zero counts
  const auto r = connected_regions(m);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].x, 4);
  EXPECT_EQ(r[0].y, 2);
  EXPECT_EQ(r[0].width, 3);
  EXPECT_EQ(r[0].height, 3);
  EXPECT_EQ(r[0].area, 9);
  EXPECT_EQ(r[1].area, 2);
  EXPECT_EQ(r[1].width, 2);
  EXPECT_EQ(r[2].area, 1);
  EXPECT_EQ(r[2].y, 5);
  EXPECT_TRUE(connected_regions(cv::Mat::zeros(3, 3, CV_8UC1)).empty());
}

TEST(Decision, DecideAtTheInputSize) {
  const auto c = cal();
  cv::Mat map(4, 4, CV_32FC1, cv::Scalar(0.5f));
  map.at<float>(1, 2) = 2.0f;                           // one anomalous pixel on the 4x4 grid
  const auto d = decide(map, 1.7, c, cv::Size(8, 16));  // c = 0.35 >= 0.3
  EXPECT_TRUE(d.anomalous);
  EXPECT_STREQ(d.label(), "ng");
  EXPECT_EQ(d.class_name, "widget");
  EXPECT_NEAR(d.class_score, 0.35, 1e-15);
  EXPECT_NEAR(d.normalized_score, 0.5 + 0.5 * 0.05 / 0.7, 1e-12);
  ASSERT_EQ(d.mask.size(), cv::Size(8, 16));
  EXPECT_EQ(d.mask_area, 2 * 4);  // the grid pixel scaled by 2 x 4
  ASSERT_EQ(d.regions.size(), 1u);
  EXPECT_EQ(d.regions[0].x, 4);
  EXPECT_EQ(d.regions[0].y, 4);
  EXPECT_EQ(d.regions[0].width, 2);
  EXPECT_EQ(d.regions[0].height, 4);
  const auto ok = decide(map, 1.5, c, cv::Size(4, 4));  // c = 0.25
  EXPECT_FALSE(ok.anomalous);
  EXPECT_STREQ(ok.label(), "ok");
  EXPECT_NEAR(ok.normalized_score, 0.25 / 0.6, 1e-12);
  EXPECT_EQ(ok.mask_area, 1);
  EXPECT_EQ(error_of([&] { decide(map, 1.0, c, cv::Size(0, 3)); }),
            "decide: the output size must be positive, found 0x3");
}
