// Heatmap overlays, the 4-panel strip, curve plots (see visualize.h).
#include "vcpclip/eval/visualize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "vcpclip/common/error.h"

namespace vcpclip::eval {

cv::Mat jet_overlay(const cv::Mat& bgr, const cv::Mat& map01, double alpha) {
  VCP_CHECK(bgr.type() == CV_8UC3 && map01.type() == CV_32F && bgr.size() == map01.size(),
            "heatmap overlay: expected an 8-bit BGR image and a float map of the same size, found ", bgr.cols, "x",
            bgr.rows, " and ", map01.cols, "x", map01.rows);
  cv::Mat u8(map01.size(), CV_8U);
  for (int y = 0; y < map01.rows; ++y) {
    const float* m = map01.ptr<float>(y);
    uint8_t* o = u8.ptr<uint8_t>(y);
    for (int x = 0; x < map01.cols; ++x) o[x] = uint8_t(std::clamp(m[x], 0.0f, 1.0f) * 255.0f);  // astype truncates
  }
  cv::Mat jet;
  cv::applyColorMap(u8, jet, cv::COLORMAP_JET);
  cv::Mat out(bgr.size(), CV_8UC3);
  for (int y = 0; y < bgr.rows; ++y) {
    const uint8_t* a = bgr.ptr<uint8_t>(y);
    const uint8_t* b = jet.ptr<uint8_t>(y);
    uint8_t* o = out.ptr<uint8_t>(y);
    for (int i = 0; i < bgr.cols * 3; ++i) o[i] = uint8_t(alpha * a[i] + (1 - alpha) * b[i]);
  }
  return out;
}

namespace {

const int kFont = cv::FONT_HERSHEY_SIMPLEX;

void put_text_centred(cv::Mat& img, const std::string& text, int cx, int baseline_y, double scale) {
  int base = 0;
  const cv::Size sz = cv::getTextSize(text, kFont, scale, 1, &base);
  cv::putText(img, text, cv::Point(cx - sz.width / 2, baseline_y), kFont, scale, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
}

/// A horizontal JET bar for values 0..1 of the per-image map, labelled with the map values its
/// ends stand for and a tick at the threshold.
void draw_colour_bar(cv::Mat& band, cv::Rect bar, double lo, double hi, double threshold, double scale) {
  for (int x = 0; x < bar.width; ++x) {
    cv::Mat u8(1, 1, CV_8U, cv::Scalar(cvRound(255.0 * x / std::max(1, bar.width - 1)))), jet;
    cv::applyColorMap(u8, jet, cv::COLORMAP_JET);
    cv::line(band, {bar.x + x, bar.y}, {bar.x + x, bar.y + bar.height - 1}, cv::Scalar(jet.at<cv::Vec3b>(0, 0)), 1);
  }
  cv::rectangle(band, bar, cv::Scalar(0, 0, 0), 1);
  char text[96];
  const int ty = bar.y + bar.height + static_cast<int>(std::lround(14 * scale / 0.45));
  std::snprintf(text, sizeof text, "%.3g", lo);
  put_text_centred(band, text, bar.x + 12, ty, scale);
  std::snprintf(text, sizeof text, "%.3g", hi);
  put_text_centred(band, text, bar.x + bar.width - 12, ty, scale);
  put_text_centred(band, "map value", bar.x + bar.width / 2, ty, scale);
  if (hi > lo && threshold > lo && threshold < hi) {
    const int tx = bar.x + static_cast<int>(std::lround((threshold - lo) / (hi - lo) * (bar.width - 1)));
    cv::line(band, {tx, bar.y - 3}, {tx, bar.y + bar.height + 2}, cv::Scalar(255, 255, 255), 2);
    cv::line(band, {tx, bar.y - 3}, {tx, bar.y + bar.height + 2}, cv::Scalar(0, 0, 0), 1);
  }
}

}  // namespace

int strip_title_height(int panel) { return std::max(14, panel / 10); }
int strip_bar_height(int panel) { return std::max(24, panel / 6); }

cv::Mat min_max_normalise(const cv::Mat& map) {
  VCP_CHECK(map.type() == CV_32F, "min-max normalisation: expected a float map, found OpenCV type ", map.type());
  double mn = 0, mx = 0;
  cv::minMaxLoc(map, &mn, &mx);
  return mx > mn ? cv::Mat((map - mn) / (mx - mn)) : cv::Mat::zeros(map.size(), CV_32F);
}

cv::Mat strip_image(const cv::Mat& bgr, const cv::Mat& map, const cv::Mat& gt_in, double threshold, int panel) {
  VCP_CHECK(map.type() == CV_32F && map.size() == bgr.size(), "strip image: map ", map.cols, "x", map.rows,
            " must be float and match the image ", bgr.cols, "x", bgr.rows);
  cv::Mat gt = gt_in.empty() ? cv::Mat::zeros(map.size(), CV_8U) : gt_in;
  VCP_CHECK(gt.type() == CV_8U && gt.size() == map.size(), "strip image: mask ", gt.cols, "x", gt.rows,
            " must be 8-bit and match the map ", map.cols, "x", map.rows);
  double lo = 0, hi = 0;
  cv::minMaxLoc(map, &lo, &hi);
  const cv::Mat norm = min_max_normalise(map);
  cv::Mat crop = norm.clone();
  crop.setTo(0, map <= threshold);
  cv::Mat gt01 = cv::Mat::zeros(map.size(), CV_32F);
  gt01.setTo(1.0f, gt > 0);
  cv::Mat vis_crop = jet_overlay(bgr, crop);
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(cv::Mat(gt > 0), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
  cv::drawContours(vis_crop, contours, -1, cv::Scalar(0, 255, 0), std::max(1, bgr.cols / 128));
  // Panels side by side with 10-pixel white gaps, a title band above and a colour bar below.
  const double scale = 0.45 * panel / 256.0;
  const int title_h = strip_title_height(panel), bar_h = strip_bar_height(panel), gap = 10;
  const std::vector<std::pair<std::string, cv::Mat>> panels{{"image", bgr},
                                                            {"anomaly map", jet_overlay(bgr, norm)},
                                                            {"map > threshold vs truth (green)", vis_crop},
                                                            {"ground truth", jet_overlay(bgr, gt01)}};
  cv::Mat out(title_h + panel + bar_h, 4 * panel + 3 * gap, CV_8UC3, cv::Scalar(255, 255, 255));
  for (size_t i = 0; i < panels.size(); ++i) {
    const int x0 = static_cast<int>(i) * (panel + gap);
    cv::Mat resized;
    cv::resize(panels[i].second, resized, cv::Size(panel, panel), 0, 0, cv::INTER_LINEAR);
    resized.copyTo(out(cv::Rect(x0, title_h, panel, panel)));
    put_text_centred(out, panels[i].first, x0 + panel / 2, title_h - std::max(3, title_h / 4), scale);
  }
  cv::Mat band = out(cv::Rect(0, title_h + panel, out.cols, bar_h));
  const int bar_y = std::max(3, bar_h / 8), bar_hh = std::max(6, bar_h / 4);
  draw_colour_bar(band, cv::Rect(panel + gap + 4, bar_y, 2 * panel + gap - 8, bar_hh), lo, hi, threshold, scale);
  return out;
}

cv::Mat plot_curves(const std::vector<PlotSeries>& series, const std::string& title, const std::string& xlabel,
                    const std::string& ylabel, double x_max, bool diagonal, int width, int height) {
  static const cv::Scalar palette[] = {{180, 119, 31},  {14, 127, 255}, {44, 160, 44},   {40, 39, 214},
                                       {189, 103, 148}, {75, 86, 140},  {194, 119, 227}, {127, 127, 127},
                                       {34, 189, 188},  {207, 190, 23}};
  cv::Mat img(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  const int left = 70, right = 20, top = 40, bottom = 60;
  const int pw = width - left - right, ph = height - top - bottom;
  auto px = [&](double x, double y) {
    return cv::Point(left + int(std::lround(x / x_max * pw)), top + ph - int(std::lround(y * ph)));
  };
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  for (int i = 0; i <= 5; ++i) {  // grid + ticks
    const double fx = x_max * i / 5, fy = double(i) / 5;
    cv::line(img, px(fx, 0), px(fx, 1), cv::Scalar(230, 230, 230), 1);
    cv::line(img, px(0, fy), px(x_max, fy), cv::Scalar(230, 230, 230), 1);
    char b[16];
    std::snprintf(b, sizeof b, "%.2g", fx);
    int base = 0;
    auto sz = cv::getTextSize(b, font, 0.45, 1, &base);
    cv::putText(img, b, px(fx, 0) + cv::Point(-sz.width / 2, 20), font, 0.45, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    std::snprintf(b, sizeof b, "%.1f", fy);
    sz = cv::getTextSize(b, font, 0.45, 1, &base);
    cv::putText(img, b, px(0, fy) + cv::Point(-sz.width - 8, 5), font, 0.45, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  cv::rectangle(img, px(0, 1), px(x_max, 0), cv::Scalar(0, 0, 0), 1);
  if (diagonal)
    for (int i = 0; i < 40; i += 2)
      cv::line(img, px(x_max * i / 40, double(i) / 40), px(x_max * (i + 1) / 40, double(i + 1) / 40),
               cv::Scalar(150, 150, 150), 1, cv::LINE_AA);
  int base = 0;
  auto tsz = cv::getTextSize(title, font, 0.6, 1, &base);
  cv::putText(img, title, cv::Point((width - tsz.width) / 2, 25), font, 0.6, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  auto xsz = cv::getTextSize(xlabel, font, 0.5, 1, &base);
  cv::putText(img, xlabel, cv::Point(left + (pw - xsz.width) / 2, height - 15), font, 0.5, cv::Scalar(0, 0, 0), 1,
              cv::LINE_AA);
  {  // vertical y label
    auto ysz = cv::getTextSize(ylabel, font, 0.5, 1, &base);
    cv::Mat lab(ysz.height + 8, ysz.width + 4, CV_8UC3, cv::Scalar(255, 255, 255));
    cv::putText(lab, ylabel, cv::Point(2, ysz.height + 2), font, 0.5, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    cv::Mat rot;
    cv::rotate(lab, rot, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int y0 = top + (ph - rot.rows) / 2;
    if (y0 >= 0 && y0 + rot.rows <= height && rot.cols + 4 <= left)
      rot.copyTo(img(cv::Rect(4, y0, rot.cols, rot.rows)));
  }
  for (size_t s = 0; s < series.size(); ++s) {
    const cv::Scalar col = palette[s % (sizeof(palette) / sizeof(palette[0]))];
    const auto& c = series[s].curve;
    std::vector<cv::Point> pts;
    for (size_t i = 0; i < c.x.size(); ++i)
      if (c.x[i] <= x_max * (1 + 1e-6)) pts.push_back(px(c.x[i], c.y[i]));
    if (pts.size() >= 2) cv::polylines(img, pts, false, col, 2, cv::LINE_AA);
    const cv::Point lp(left + pw - 230, top + ph - 15 - int(series.size() - 1 - s) * 20);
    cv::line(img, lp, lp + cv::Point(20, 0), col, 3, cv::LINE_AA);
    cv::putText(img, series[s].label, lp + cv::Point(26, 5), font, 0.45, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  return img;
}

void write_png(const std::string& path, const cv::Mat& image) {
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  VCP_CHECK(!ec, "cannot create folder ", parent.string(), " for ", path, ": ", ec.message());
  bool ok = false;
  try {
    ok = cv::imwrite(path, image);
  } catch (const cv::Exception& e) {
    fail("cannot write PNG ", path, ": ", e.what());
  }
  VCP_CHECK(ok, "cannot write PNG ", path);
}

}  // namespace vcpclip::eval
