// Synthetic defects (see data/synthetic.h): each painter draws its mask inside the product's
// surface and changes the image only under the mask.
#include <algorithm>
#include <cmath>
#include <map>
#include <opencv2/imgproc.hpp>

#include "synthetic_draw.h"
#include "vcpclip/common/error.h"

namespace vcpclip::data::synth {
namespace {

cv::Point random_point_in(Rng& r, const cv::Mat& region) {
  for (int t = 0; t < 200; ++t) {
    cv::Point p(r.integer(0, region.cols - 1), r.integer(0, region.rows - 1));
    if (region.at<uint8_t>(p)) return p;
  }
  return {region.cols / 2, region.rows / 2};
}

cv::Vec3f mean_under(const cv::Mat& img, const cv::Mat& mask) {
  const cv::Scalar m = cv::countNonZero(mask) ? cv::mean(img, mask) : cv::mean(img);
  return cv::Vec3f(static_cast<float>(m[0]), static_cast<float>(m[1]), static_cast<float>(m[2]));
}

float luminance(const cv::Vec3f& rgb) { return 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2]; }

/// A random choice among the two candidates that differ most from `local` (visible defects).
cv::Vec3f farthest(const std::vector<cv::Vec3f>& candidates, const cv::Vec3f& local, Rng& r) {
  std::vector<std::pair<double, size_t>> d;
  for (size_t i = 0; i < candidates.size(); ++i) d.push_back({cv::norm(candidates[i] - local), i});
  std::sort(d.rbegin(), d.rend());
  return candidates[d[r.integer(0, std::min<int>(1, static_cast<int>(d.size()) - 1))].second];
}

/// img = f(img) under the mask.
template <typename F>
void paint(Canvas& c, const cv::Mat& D, F&& f) {
  for (int y = 0; y < D.rows; ++y)
    for (int x = 0; x < D.cols; ++x)
      if (D.at<uint8_t>(y, x)) c.img.at<cv::Vec3f>(y, x) = f(c.img.at<cv::Vec3f>(y, x), x, y);
}

int line_width(int S) { return std::max(1, cvRound(S / 64.0)); }

/// A random walk from a point inside the surface: `turn` = how much each step may bend.
std::vector<cv::Point> walk(Rng& r, int S, double turn, cv::Point2d& p, double& dir) {
  const int steps = r.integer(7, 12);
  const double step = S * r.uni(0.025, 0.04);
  std::vector<cv::Point> pts{cv::Point(cvRound(p.x), cvRound(p.y))};
  for (int i = 0; i < steps; ++i) {
    dir += r.uni(-turn, turn);
    p += cv::Point2d(std::cos(dir), std::sin(dir)) * step;
    pts.emplace_back(cvRound(p.x), cvRound(p.y));
  }
  return pts;
}

/// Scratch: one or two thin, nearly straight, light (reflective) strokes.
cv::Mat scratch(Rng& r, int S, Canvas& c) {
  cv::Mat D = cv::Mat::zeros(S, S, CV_8U);
  for (int s = r.integer(1, 2); s > 0; --s) {
    cv::Point2d p = random_point_in(r, c.inner);
    double dir = r.uni(0, 2 * kPi);
    cv::polylines(D, walk(r, S, 0.08, p, dir), false, 255, line_width(S), cv::LINE_8);
  }
  D &= c.inner;
  // Light where the surface is darker, dark where it is very light: always a visible stroke.
  const bool light = luminance(mean_under(c.img, D)) < 150;
  paint(c, D, [&](const cv::Vec3f& v, int, int) {
    return light ? v * 0.3f + cv::Vec3f(175, 175, 175) : v * 0.35f + cv::Vec3f(10, 10, 10);
  });
  return D;
}

/// Crack: a dark, jagged, branching line.
cv::Mat crack(Rng& r, int S, Canvas& c) {
  cv::Mat D = cv::Mat::zeros(S, S, CV_8U);
  cv::Point2d p = random_point_in(r, c.inner);
  double dir = r.uni(0, 2 * kPi);
  const int w = line_width(S) + 1;
  cv::polylines(D, walk(r, S, 0.7, p, dir), false, 255, w, cv::LINE_8);
  for (int b = r.integer(0, 2); b > 0; --b) {  // branches from the end region
    double bd = dir + (r.coin() ? 1 : -1) * r.uni(0.5, 1.1);
    cv::Point2d q = p;
    auto pts = walk(r, S, 0.5, q, bd);
    pts.resize(std::min<size_t>(pts.size(), 5));
    cv::polylines(D, pts, false, 255, std::max(1, w - 1), cv::LINE_8);
  }
  D &= c.inner;
  paint(c, D, [](const cv::Vec3f& v, int, int) { return v * 0.15f + cv::Vec3f(8, 6, 5); });
  return D;
}

/// Hole: a near-black ellipse, darker towards its centre.
cv::Mat hole(Rng& r, int S, Canvas& c) {
  cv::Mat D = cv::Mat::zeros(S, S, CV_8U);
  const cv::Point p = random_point_in(r, c.inner);
  const cv::Size ax(std::max(2, cvRound(S * r.uni(0.03, 0.06))), std::max(2, cvRound(S * r.uni(0.03, 0.06))));
  cv::ellipse(D, p, ax, r.uni(0, 180), 0, 360, 255, cv::FILLED, cv::LINE_8);
  D &= c.inner;
  paint(c, D, [&](const cv::Vec3f&, int x, int y) {
    const double d = std::hypot(double(x - p.x) / ax.width, double(y - p.y) / ax.height);
    return cv::Vec3f(12, 10, 9) * static_cast<float>(1.0 + 1.5 * d);
  });
  return D;
}

/// Stain: a cluster of blobs tinted with a colour far from the surface's.
cv::Mat stain(Rng& r, int S, Canvas& c) {
  cv::Mat D = cv::Mat::zeros(S, S, CV_8U);
  const cv::Point p = random_point_in(r, c.inner);
  for (int i = r.integer(3, 6); i > 0; --i) {
    const cv::Point q = p + cv::Point(cvRound(S * r.uni(-0.04, 0.04)), cvRound(S * r.uni(-0.04, 0.04)));
    const cv::Size ax(cvRound(S * r.uni(0.02, 0.05)), cvRound(S * r.uni(0.02, 0.05)));
    cv::ellipse(D, q, ax, r.uni(0, 180), 0, 360, 255, cv::FILLED, cv::LINE_8);
  }
  D &= c.inner;
  // Rust, oil, dried dirt, mould: the two farthest from the surface are candidates.
  const cv::Vec3f tint =
      farthest({{165, 75, 25}, {30, 30, 45}, {225, 215, 160}, {70, 120, 40}}, mean_under(c.img, D), r);
  paint(c, D, [&](const cv::Vec3f& v, int, int) { return v * 0.25f + tint * 0.75f; });
  return D;
}

/// Missing piece: a ragged bite out of the product's edge (anywhere on a texture) that exposes
/// the dark, rough material underneath.
cv::Mat missing(Rng& r, int S, Canvas& c) {
  cv::Mat D = cv::Mat::zeros(S, S, CV_8U);
  const cv::Point p = random_point_in(r, cv::countNonZero(c.rim) ? c.rim : c.inner);
  const double rad = S * r.uni(0.05, 0.08);
  std::vector<cv::Point> poly;
  for (int i = 0; i < 9; ++i) {
    const double a = i * 2 * kPi / 9, rr = rad * r.uni(0.6, 1.2);
    poly.emplace_back(cvRound(p.x + rr * std::cos(a)), cvRound(p.y + rr * std::sin(a)));
  }
  cv::fillPoly(D, std::vector<std::vector<cv::Point>>{poly}, 255, cv::LINE_8);
  D &= c.object;
  const cv::Mat rough = smooth_noise(r, S, S, std::max(2, S / 4), std::max(2, S / 4));
  // The exposed material contrasts with the surface: dark under light surfaces, light under dark.
  const cv::Vec3f under = luminance(mean_under(c.img, D)) > 100 ? cv::Vec3f(30, 27, 24) : cv::Vec3f(190, 185, 175);
  paint(c, D, [&](const cv::Vec3f& v, int x, int y) {
    return v * 0.2f + under * (0.6f + 0.8f * rough.at<float>(y, x)) * 0.9f;
  });
  return D;
}

/// Colour spots: one to three small saturated dots.
cv::Mat color(Rng& r, int S, Canvas& c) {
  cv::Mat D = cv::Mat::zeros(S, S, CV_8U);
  for (int i = r.integer(1, 3); i > 0; --i)
    cv::circle(D, random_point_in(r, c.inner), cvRound(S * r.uni(0.015, 0.035)) + 1, 255, cv::FILLED, cv::LINE_8);
  D &= c.inner;
  const cv::Vec3f col =
      farthest({{230, 30, 30}, {30, 200, 40}, {40, 60, 230}, {240, 220, 20}}, mean_under(c.img, D), r);
  paint(c, D, [&](const cv::Vec3f& v, int, int) { return col * 0.85f + v * 0.15f; });
  return D;
}

}  // namespace

cv::Mat draw_defect(const std::string& type, Rng& r, int size, Canvas& c) {
  using Painter = cv::Mat (*)(Rng&, int, Canvas&);
  static const std::map<std::string, Painter> painters{{"scratch", scratch}, {"crack", crack},     {"hole", hole},
                                                       {"stain", stain},     {"missing", missing}, {"color", color}};
  const auto it = painters.find(type);
  VCP_CHECK(it != painters.end(), "unknown synthetic defect type '", type,
            "' (expected scratch, hole, color, crack, stain or missing)");
  return it->second(r, size, c);
}

}  // namespace vcpclip::data::synth
