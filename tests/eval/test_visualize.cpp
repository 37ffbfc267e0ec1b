// Visualisation helpers: overlay arithmetic as the reference's apply_ad_scoremap, strip layout,
// curve plots that draw the curves in colour, PNG round trip.
#include <gtest/gtest.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "vcpclip/common/error.h"
#include "vcpclip/eval/visualize.h"

using namespace vcpclip::eval;

TEST(Visualize, OverlayBlendsJetLikeTheReference) {
  cv::Mat img(4, 4, CV_8UC3, cv::Scalar(100, 50, 200));
  cv::Mat map(4, 4, CV_32F, cv::Scalar(0.5f));
  cv::Mat out = jet_overlay(img, map, 0.5);
  cv::Mat u8(1, 1, CV_8U, cv::Scalar(127)), jet;  // uint8(0.5 * 255) = 127
  cv::applyColorMap(u8, jet, cv::COLORMAP_JET);
  const auto j = jet.at<cv::Vec3b>(0, 0);
  const auto o = out.at<cv::Vec3b>(2, 3);
  EXPECT_EQ(o[0], uint8_t(0.5 * 100 + 0.5 * j[0]));
  EXPECT_EQ(o[1], uint8_t(0.5 * 50 + 0.5 * j[1]));
  EXPECT_EQ(o[2], uint8_t(0.5 * 200 + 0.5 * j[2]));
}

TEST(Visualize, StripHasFourTitledPanelsGreenContoursAndAColourBar) {
  cv::Mat img(64, 64, CV_8UC3, cv::Scalar(128, 128, 128));
  cv::Mat map(64, 64, CV_32F, cv::Scalar(0.1f));
  cv::Mat gt = cv::Mat::zeros(64, 64, CV_8U);
  cv::rectangle(gt, cv::Rect(20, 20, 16, 16), cv::Scalar(1), -1);
  map.setTo(0.9f, gt);
  const int panel = 128, top = strip_title_height(panel), bar = strip_bar_height(panel);
  cv::Mat s = strip_image(img, map, gt, 0.5, panel);
  EXPECT_EQ(s.cols, panel * 4 + 30);
  EXPECT_EQ(s.rows, top + panel + bar);
  auto count = [&](cv::Rect r, auto&& pred) {
    int n = 0;
    for (int y = r.y; y < r.y + r.height; ++y)
      for (int x = r.x; x < r.x + r.width; ++x) n += pred(s.at<cv::Vec3b>(y, x));
    return n;
  };
  auto dark = [](const cv::Vec3b& p) { return p[0] < 100 && p[1] < 100 && p[2] < 100; };
  for (int i = 0; i < 4; ++i) {  // a title (dark text) above every panel
    EXPECT_GT(count(cv::Rect(i * (panel + 10), 0, panel, top), dark), 10) << "panel " << i;
  }
  // gaps are white; the third panel carries the green contour of the mask
  EXPECT_EQ(s.at<cv::Vec3b>(top + panel / 2, panel + 2), cv::Vec3b(255, 255, 255));
  auto green = [](const cv::Vec3b& p) { return p[1] > 200 && p[0] < 80 && p[2] < 80; };
  EXPECT_GT(count(cv::Rect(2 * (panel + 10), top, panel, panel), green), 30);
  // the colour bar under panels 2-3 runs from blue (low) to red (high)
  const cv::Rect band(0, top + panel, s.cols, bar);
  auto blue = [](const cv::Vec3b& p) { return p[0] > 200 && p[2] < 60; };
  auto red = [](const cv::Vec3b& p) { return p[2] > 200 && p[0] < 60; };
  EXPECT_GT(count(cv::Rect(panel + 10, band.y, panel / 2, bar), blue), 20);
  EXPECT_GT(count(cv::Rect(3 * panel - panel / 2, band.y, panel / 2, bar), red), 20);
  EXPECT_EQ(count(cv::Rect(0, band.y, panel, bar), blue), 0) << "no bar under the image";
  EXPECT_THROW(strip_image(img, cv::Mat(32, 32, CV_32F), gt, 0.5), vcpclip::Error);
}

TEST(Visualize, MinMaxNormaliseAndConstantMaps) {
  cv::Mat m = (cv::Mat_<float>(1, 3) << 2.f, 4.f, 3.f);
  cv::Mat n = min_max_normalise(m);
  EXPECT_FLOAT_EQ(n.at<float>(0), 0.f);
  EXPECT_FLOAT_EQ(n.at<float>(1), 1.f);
  EXPECT_FLOAT_EQ(n.at<float>(2), 0.5f);
  EXPECT_EQ(cv::countNonZero(min_max_normalise(cv::Mat(2, 2, CV_32F, cv::Scalar(7.f)))), 0);
  EXPECT_THROW(min_max_normalise(cv::Mat(2, 2, CV_8U)), vcpclip::Error);
}

TEST(Visualize, PlotDrawsCurvesAndWritesPng) {
  Curve c;
  for (int i = 0; i <= 10; ++i) {
    c.x.push_back(i / 10.f);
    c.y.push_back(std::sqrt(i / 10.f));
  }
  cv::Mat p =
      plot_curves({{"bottle (AUROC 90.0)", c}}, "Pixel ROC", "false positive rate", "true positive rate", 1.0, true);
  EXPECT_EQ(p.size(), cv::Size(640, 480));
  int coloured = 0;
  for (int y = 0; y < p.rows; ++y)
    for (int x = 0; x < p.cols; ++x) {
      const auto v = p.at<cv::Vec3b>(y, x);
      coloured += v[0] > 150 && v[2] < 80;  // the first palette colour (blue)
    }
  EXPECT_GT(coloured, 300);
  const auto path = std::filesystem::temp_directory_path() / "vcpclip_test_vis" / "roc.png";
  write_png(path.string(), p);
  cv::Mat back = cv::imread(path.string());
  EXPECT_EQ(cv::norm(back, p, cv::NORM_INF), 0);
  std::filesystem::remove_all(path.parent_path());
}
