// Augmentations: identical geometry on image and mask, determinism per seed, mosaic layout.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "vcpclip/data/augment.h"

using namespace vcpclip::data;

namespace {

// An image whose red channel is 255 exactly where the mask is set (blocks of 16 px), with
// green/blue gradients so that orientation errors are visible too.
void make_pair(cv::Mat& rgb, cv::Mat& mask, int w = 96, int h = 80) {
  rgb.create(h, w, CV_8UC3);
  mask.create(h, w, CV_8UC1);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const bool on = ((x / 16) * 3 + (y / 16) * 5) % 7 < 2;
      rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(on ? 255 : 0, static_cast<uint8_t>(x * 2), static_cast<uint8_t>(y * 3));
      mask.at<uint8_t>(y, x) = on ? 255 : 0;
    }
}

/// Fraction of pixels away from block edges where (red > 127) disagrees with the mask.
double disagreement(const cv::Mat& rgb, const cv::Mat& mask) {
  cv::Mat red, on;
  cv::extractChannel(rgb, red, 0);
  on = red > 127;
  cv::Mat edges;  // skip pixels within 2 px of a mask edge (bilinear vs nearest differ there)
  cv::Mat k = cv::getStructuringElement(cv::MORPH_RECT, cv::Size(5, 5)), dil, ero;
  cv::dilate(mask, dil, k);
  cv::erode(mask, ero, k);
  edges = dil != ero;
  cv::Mat diff = (on != (mask > 127)) & ~edges;
  return cv::countNonZero(diff) / static_cast<double>(mask.total());
}

}  // namespace

TEST(Augment, Rot90IsExactOnBoth) {
  cv::Mat rgb, mask;
  make_pair(rgb, mask);
  const cv::Mat r0 = rgb.clone(), m0 = mask.clone();
  rot90_pair(rgb, mask, 1);
  ASSERT_EQ(rgb.size(), cv::Size(80, 96));
  // np.rot90 (counter-clockwise): out[y][x] = in[x][W-1-y]
  for (int y = 0; y < rgb.rows; ++y)
    for (int x = 0; x < rgb.cols; ++x) {
      ASSERT_EQ(rgb.at<cv::Vec3b>(y, x), r0.at<cv::Vec3b>(x, r0.cols - 1 - y));
      ASSERT_EQ(mask.at<uint8_t>(y, x), m0.at<uint8_t>(x, m0.cols - 1 - y));
    }
  rot90_pair(rgb, mask, 3);
  EXPECT_EQ(cv::norm(rgb, r0, cv::NORM_INF), 0);
  EXPECT_EQ(cv::norm(mask, m0, cv::NORM_INF), 0);
}

TEST(Augment, GeometryFollowsTheImage) {
  for (double deg : {-30.0, -7.5, 12.0, 29.0}) {
    cv::Mat rgb, mask;
    make_pair(rgb, mask);
    rotate_pair(rgb, mask, deg);
    EXPECT_LT(disagreement(rgb, mask), 0.002) << deg;
    // And the content really moved.
    cv::Mat r0, m0;
    make_pair(r0, m0);
    EXPECT_GT(cv::countNonZero(mask != m0), 100) << deg;
  }
  // Full pipeline with photometric steps off: geometry still matches.
  AugmentOptions geo;
  geo.rotate_p = geo.rot90_p = 1.0;
  geo.brightness_contrast_p = geo.noise_p = geo.blur_p = 0.0;
  for (uint32_t seed = 0; seed < 10; ++seed) {
    cv::Mat rgb, mask;
    make_pair(rgb, mask);
    std::mt19937 g(seed);
    augment(rgb, mask, g, geo);
    EXPECT_LT(disagreement(rgb, mask), 0.002) << seed;
  }
}

TEST(Augment, DeterministicPerSeed) {
  int differing = 0;
  cv::Mat prev;
  for (uint32_t seed = 0; seed < 8; ++seed) {
    cv::Mat a, am, b, bm;
    make_pair(a, am);
    make_pair(b, bm);
    std::mt19937 ga(seed), gb(seed);
    augment(a, am, ga);
    augment(b, bm, gb);
    EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0) << seed;
    EXPECT_EQ(cv::norm(am, bm, cv::NORM_INF), 0) << seed;
    // Mask values stay binary.
    cv::Mat nonbinary = (am != 0) & (am != 255);
    EXPECT_EQ(cv::countNonZero(nonbinary), 0);
    if (!prev.empty() && (prev.size() != a.size() || cv::norm(prev, a, cv::NORM_INF) > 0)) ++differing;
    prev = a.clone();
  }
  EXPECT_GE(differing, 6);  // different seeds give different results
}

TEST(Augment, PhotometricStepsLeaveTheMaskAlone) {
  AugmentOptions photo;
  photo.rotate_p = photo.rot90_p = 0.0;
  photo.brightness_contrast_p = photo.noise_p = photo.blur_p = 1.0;
  cv::Mat rgb, mask, m0, r0;
  make_pair(rgb, mask);
  m0 = mask.clone();
  r0 = rgb.clone();
  std::mt19937 g(3);
  augment(rgb, mask, g, photo);
  EXPECT_EQ(cv::norm(mask, m0, cv::NORM_INF), 0);
  EXPECT_GT(cv::norm(rgb, r0, cv::NORM_L1), 0);
}

TEST(Augment, Mosaic2x2) {
  std::vector<cv::Mat> imgs, masks;
  for (int i = 0; i < 4; ++i) {
    imgs.emplace_back(10, 8, CV_8UC3, cv::Scalar(i * 60, 0, 0));
    masks.push_back(i == 3 ? cv::Mat() : cv::Mat(10, 8, CV_8U, cv::Scalar(i == 1 ? 255 : 0)));
  }
  imgs[2] = cv::Mat(20, 16, CV_8UC3, cv::Scalar(120, 0, 0));  // other size: resized
  cv::Mat rgb, mask;
  mosaic2x2(imgs, masks, rgb, mask);
  ASSERT_EQ(rgb.size(), cv::Size(16, 20));
  EXPECT_EQ(rgb.at<cv::Vec3b>(0, 0)[0], 0);      // top-left: tile 0
  EXPECT_EQ(rgb.at<cv::Vec3b>(0, 15)[0], 60);    // top-right: tile 1
  EXPECT_EQ(rgb.at<cv::Vec3b>(19, 0)[0], 120);   // bottom-left: tile 2
  EXPECT_EQ(rgb.at<cv::Vec3b>(19, 15)[0], 180);  // bottom-right: tile 3
  EXPECT_EQ(cv::countNonZero(mask), 8 * 10);     // only tile 1's mask
  EXPECT_EQ(mask.at<uint8_t>(5, 12), 255);
}
