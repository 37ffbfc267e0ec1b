// Training augmentations (docs/design.md §7) and the 2×2 same-class mosaic.
#include "vcpclip/data/augment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "vcpclip/common/error.h"
#include "vcpclip/data/transforms.h"

namespace vcpclip::data {
namespace {

double uniform(std::mt19937& g, double a, double b) { return std::uniform_real_distribution<double>(a, b)(g); }
bool chance(std::mt19937& g, double p) { return p > 0 && uniform(g, 0, 1) < p; }

void brightness_contrast(cv::Mat& img, double alpha, double beta) {
  cv::Mat lut(1, 256, CV_8U);
  for (int v = 0; v < 256; ++v) {
    const double x = std::clamp(v * alpha + beta * 255.0, 0.0, 255.0);
    lut.at<uint8_t>(v) = static_cast<uint8_t>(x);  // truncation, as numpy astype
  }
  cv::LUT(img, lut, img);
}

void gauss_noise(cv::Mat& img, std::mt19937& g, double sigma) {
  std::normal_distribution<float> n(0.f, static_cast<float>(sigma));
  for (int y = 0; y < img.rows; ++y) {
    uint8_t* p = img.ptr<uint8_t>(y);
    for (int i = 0; i < img.cols * img.channels(); ++i)
      p[i] = static_cast<uint8_t>(std::clamp(p[i] + n(g), 0.f, 255.f));
  }
}

cv::Mat grey3(const cv::Mat& rgb) {
  cv::Mat g, g3;
  cv::cvtColor(rgb, g, cv::COLOR_RGB2GRAY);
  cv::cvtColor(g, g3, cv::COLOR_GRAY2RGB);
  return g3;
}

void colour_jitter(cv::Mat& img, std::mt19937& g) {
  std::array<int, 4> order{0, 1, 2, 3};
  std::shuffle(order.begin(), order.end(), g);
  const double b = uniform(g, 0.8, 1.2), c = uniform(g, 0.8, 1.2), s = uniform(g, 0.8, 1.2), h = uniform(g, -0.2, 0.2);
  for (int step : order) {
    if (step == 0) {
      img.convertTo(img, CV_8U, b);
    } else if (step == 1) {
      cv::Mat grey;
      cv::cvtColor(img, grey, cv::COLOR_RGB2GRAY);
      const double mean = cv::mean(grey)[0];
      img.convertTo(img, CV_8U, c, mean * (1 - c));
    } else if (step == 2) {
      cv::addWeighted(img, s, grey3(img), 1 - s, 0, img);
    } else {
      cv::Mat hsv;
      cv::cvtColor(img, hsv, cv::COLOR_RGB2HSV);  // 8-bit hue in [0,180)
      const int shift = static_cast<int>(std::lround(h * 180));
      for (int y = 0; y < hsv.rows; ++y) {
        uint8_t* p = hsv.ptr<uint8_t>(y);
        for (int x = 0; x < hsv.cols; ++x) p[3 * x] = static_cast<uint8_t>(((p[3 * x] + shift) % 180 + 180) % 180);
      }
      cv::cvtColor(hsv, img, cv::COLOR_HSV2RGB);
    }
  }
}

}  // namespace

void rotate_pair(cv::Mat& rgb, cv::Mat& mask, double degrees) {
  const cv::Point2f centre(rgb.cols / 2.0f - 0.5f, rgb.rows / 2.0f - 0.5f);
  const cv::Mat m = cv::getRotationMatrix2D(centre, degrees, 1.0);
  cv::warpAffine(rgb, rgb, m, rgb.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT_101);
  if (!mask.empty()) cv::warpAffine(mask, mask, m, mask.size(), cv::INTER_NEAREST, cv::BORDER_REFLECT_101);
}

void rot90_pair(cv::Mat& rgb, cv::Mat& mask, int k) {
  k = ((k % 4) + 4) % 4;
  if (k == 0) return;
  const int code = k == 1 ? cv::ROTATE_90_COUNTERCLOCKWISE : k == 2 ? cv::ROTATE_180 : cv::ROTATE_90_CLOCKWISE;
  cv::rotate(rgb, rgb, code);
  if (!mask.empty()) cv::rotate(mask, mask, code);
}

void augment(cv::Mat& rgb, cv::Mat& mask, std::mt19937& g, const AugmentOptions& o) {
  VCP_CHECK(rgb.type() == CV_8UC3, "augment: expected an 8-bit RGB image, found type ", rgb.type());
  VCP_CHECK(mask.empty() || (mask.type() == CV_8UC1 && mask.size() == rgb.size()),
            "augment: mask must be 8-bit single-channel of the image size ", rgb.cols, "x", rgb.rows);
  // Every draw happens whether or not its step applies, so one step's probability does not
  // shift the random stream of the others.
  const bool do_rot = chance(g, o.rotate_p);
  const double angle = uniform(g, -o.rotate_limit, o.rotate_limit);
  const bool do_r90 = chance(g, o.rot90_p);
  const int k = std::uniform_int_distribution<int>(0, 3)(g);
  const bool do_bc = chance(g, o.brightness_contrast_p);
  const double alpha = 1.0 + uniform(g, -o.contrast_limit, o.contrast_limit);
  const double beta = uniform(g, -o.brightness_limit, o.brightness_limit);
  const bool do_noise = chance(g, o.noise_p);
  const double var = uniform(g, o.noise_var_min, o.noise_var_max);
  const bool do_blur = chance(g, o.blur_p);
  const int which = std::uniform_int_distribution<int>(0, 2)(g);
  const int gk = 3 + 2 * std::uniform_int_distribution<int>(0, 2)(g);

  if (!rgb.isContinuous()) rgb = rgb.clone();
  if (do_rot) rotate_pair(rgb, mask, angle);
  if (do_r90) rot90_pair(rgb, mask, k);
  if (do_bc) brightness_contrast(rgb, alpha, beta);
  if (do_noise) gauss_noise(rgb, g, std::sqrt(var));
  if (do_blur) {
    if (which == 0)
      cv::blur(rgb, rgb, cv::Size(3, 3));
    else if (which == 1)
      colour_jitter(rgb, g);
    else
      cv::GaussianBlur(rgb, rgb, cv::Size(gk, gk), 0);
  }
}

void mosaic2x2(const std::vector<cv::Mat>& images, const std::vector<cv::Mat>& masks, cv::Mat& rgb_out,
               cv::Mat& mask_out) {
  VCP_CHECK(images.size() == 4 && masks.size() == 4, "mosaic2x2: expected 4 images and 4 masks, found ", images.size(),
            " and ", masks.size());
  const int w = images[0].cols, h = images[0].rows;
  rgb_out = cv::Mat(2 * h, 2 * w, CV_8UC3);
  mask_out = cv::Mat::zeros(2 * h, 2 * w, CV_8UC1);
  for (int i = 0; i < 4; ++i) {
    const cv::Rect roi((i % 2) * w, (i / 2) * h, w, h);
    cv::Mat img = images[i], m = masks[i];
    VCP_CHECK(img.type() == CV_8UC3, "mosaic2x2: tile ", i, " is not an 8-bit RGB image");
    if (img.size() != cv::Size(w, h)) img = resize_bicubic_pil(img, w, h);
    img.copyTo(rgb_out(roi));
    if (!m.empty()) {
      if (m.size() != cv::Size(w, h)) cv::resize(m, m, cv::Size(w, h), 0, 0, cv::INTER_NEAREST);
      m.copyTo(mask_out(roi));
    }
  }
}

}  // namespace vcpclip::data
