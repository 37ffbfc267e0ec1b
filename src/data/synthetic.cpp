// Procedural product images with defects and exact masks, written as MVTec AD or VisA.
#include "vcpclip/data/synthetic.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <sstream>

#include "vcpclip/common/error.h"

namespace fs = std::filesystem;

namespace vcpclip::data {
namespace {

constexpr double kPi = 3.14159265358979323846;
const char* kAuxKinds[4] = {"stripes", "fabric", "disk", "screw"};
const char* kTargetKinds[4] = {"checker", "wood", "plate", "bottle"};

uint64_t mix(uint64_t h, uint64_t v) {  // splitmix64 step over h ^ v
  uint64_t z = h ^ (v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t hash_str(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  double uni(double a, double b) { return std::uniform_real_distribution<double>(a, b)(g); }
  int integer(int a, int b) { return std::uniform_int_distribution<int>(a, b)(g); }  // inclusive
  bool coin(double p = 0.5) { return uni(0, 1) < p; }
};

void check_set(const std::string& set) {
  VCP_CHECK(set == "auxiliary" || set == "target", "synthetic set must be 'auxiliary' or 'target', found '", set, "'");
}

std::string kind_of(const std::string& set, int index) {
  check_set(set);
  return (set == "auxiliary" ? kAuxKinds : kTargetKinds)[index % 4];
}

/// Smooth value noise in [0,1], CV_32F size×size.
cv::Mat smooth_noise(Rng& r, int size, int cells) {
  cv::Mat small(cells, cells, CV_32F);
  for (int i = 0; i < cells * cells; ++i) small.at<float>(i) = static_cast<float>(r.uni(0, 1));
  cv::Mat out;
  cv::resize(small, out, cv::Size(size, size), 0, 0, cv::INTER_CUBIC);
  return out;
}

cv::Vec3f rand_colour(Rng& r, double lo, double hi) {
  return cv::Vec3f(static_cast<float>(r.uni(lo, hi)), static_cast<float>(r.uni(lo, hi)),
                   static_cast<float>(r.uni(lo, hi)));
}

cv::Vec3f lerp(const cv::Vec3f& a, const cv::Vec3f& b, float t) { return a * (1 - t) + b * t; }

/// Per-class appearance: fixed by (set, index) so a class looks the same under every seed.
struct ClassStyle {
  std::string kind;
  cv::Vec3f c1, c2, bg;
  double angle, period, scale;
};

ClassStyle class_style(const std::string& set, int index) {
  Rng r(mix(hash_str(set), static_cast<uint64_t>(index)));
  ClassStyle s;
  s.kind = kind_of(set, index);
  s.c1 = rand_colour(r, 60, 200);
  s.c2 = rand_colour(r, 60, 200);
  if (cv::norm(s.c1 - s.c2) < 80) s.c2 = cv::Vec3f(255, 255, 255) - s.c1;
  s.bg = r.coin() ? rand_colour(r, 10, 50) : rand_colour(r, 200, 240);
  s.angle = r.uni(0, kPi);
  s.period = r.uni(0.06, 0.12);  // fraction of the image side
  s.scale = r.uni(0.85, 1.1);
  return s;
}

struct Canvas {
  cv::Mat img;     ///< CV_32FC3, 0..255 (RGB)
  cv::Mat bg;      ///< CV_32FC3, what is behind the object (for missing pieces)
  cv::Mat object;  ///< CV_8U 255 where the product is (full image for textures)
  cv::Mat inner;   ///< object eroded: where surface defects may go
};

void render_texture(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  c.img.create(S, S, CV_32FC3);
  const double P = std::max(4.0, st.period * S);
  const double phase = r.uni(0, 2 * kPi), ox = r.uni(0, P * 4), oy = r.uni(0, P * 4);
  const double ang = st.angle + r.uni(-0.05, 0.05);
  const double ca = std::cos(ang), sa = std::sin(ang);
  cv::Mat n = smooth_noise(r, S, 6);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      const double u = (x + ox) * ca + (y + oy) * sa, v = -(x + ox) * sa + (y + oy) * ca;
      cv::Vec3f col;
      if (st.kind == "stripes") {
        const double t = 0.5 + 0.5 * std::tanh(3 * std::sin(2 * kPi * u / P + phase));
        col = lerp(st.c1, st.c2, static_cast<float>(t));
      } else if (st.kind == "fabric") {
        const double px = (x + ox) / P, py = (y + oy) / P;
        const int i = static_cast<int>(std::floor(px)), j = static_cast<int>(std::floor(py));
        const bool warp = ((i + j) & 1) == 0;
        const double f = warp ? py - j : px - i;  // across the visible thread
        const double shade = 0.55 + 0.45 * std::sin(kPi * f);
        col = (warp ? st.c1 : st.c2) * static_cast<float>(shade);
      } else if (st.kind == "checker") {
        const int i = static_cast<int>(std::floor(u / (1.5 * P))), j = static_cast<int>(std::floor(v / (1.5 * P)));
        col = ((i + j) & 1) ? st.c1 : st.c2;
      } else {  // wood: rings around a far centre, warped by noise, with fine grain
        const double d = std::sqrt((u + 3 * S) * (u + 3 * S) + 0.02 * v * v) + 10.0 * n.at<float>(y, x);
        const double ring = std::fmod(d / (0.8 * P) + phase, 1.0);
        const double t = std::pow(ring, 0.6) * 0.8 + 0.2 * std::sin(v * 1.7 + u * 0.1) * 0.5;
        col = lerp(st.c1 * 0.8f, st.c2 * 0.6f + cv::Vec3f(40, 25, 10), static_cast<float>(std::clamp(t, 0.0, 1.0)));
      }
      col *= static_cast<float>(0.92 + 0.16 * n.at<float>(y, x));
      c.img.at<cv::Vec3f>(y, x) = col;
    }
  c.bg = cv::Mat(S, S, CV_32FC3, cv::Scalar(st.bg[0], st.bg[1], st.bg[2]));
  c.object = cv::Mat(S, S, CV_8U, cv::Scalar(255));
  c.inner = cv::Mat::zeros(S, S, CV_8U);
  const int m = std::max(2, S / 20);
  c.inner(cv::Rect(m, m, S - 2 * m, S - 2 * m)).setTo(255);
}

std::vector<cv::Point> transform_poly(const std::vector<cv::Point2d>& pts, cv::Point2d centre, double angle) {
  std::vector<cv::Point> out;
  const double ca = std::cos(angle), sa = std::sin(angle);
  for (const auto& p : pts)
    out.emplace_back(cvRound(centre.x + p.x * ca - p.y * sa), cvRound(centre.y + p.x * sa + p.y * ca));
  return out;
}

void add_rect(std::vector<cv::Point2d>& pts, double x0, double y0, double x1, double y1) {
  pts.insert(pts.end(), {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}});
}

void render_object(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  c.bg.create(S, S, CV_32FC3);
  cv::Mat n = smooth_noise(r, S, 4);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) c.bg.at<cv::Vec3f>(y, x) = st.bg * static_cast<float>(0.9 + 0.2 * n.at<float>(y, x));
  c.object = cv::Mat::zeros(S, S, CV_8U);
  const cv::Point2d centre(S * (0.5 + r.uni(-0.04, 0.04)), S * (0.5 + r.uni(-0.04, 0.04)));
  const double k = S * st.scale;
  double angle = r.uni(-0.15, 0.15);
  std::vector<std::vector<cv::Point>> polys;
  cv::Mat shade(S, S, CV_32F, cv::Scalar(1));
  if (st.kind == "disk") {
    cv::circle(c.object, centre, cvRound(0.32 * k), 255, cv::FILLED, cv::LINE_8);
    cv::circle(c.object, centre, cvRound(0.1 * k), 0, cv::FILLED, cv::LINE_8);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        const double d = std::hypot(x - centre.x, y - centre.y) / (0.32 * k);
        shade.at<float>(y, x) = static_cast<float>(0.75 + 0.3 * std::cos(d * 5.0) * 0.5 + 0.2 * (1 - d));
      }
  } else if (st.kind == "screw") {
    angle = st.angle + r.uni(-0.2, 0.2);
    std::vector<cv::Point2d> shaft, head;
    add_rect(shaft, -0.3 * k, -0.055 * k, 0.28 * k, 0.055 * k);
    add_rect(head, -0.38 * k, -0.12 * k, -0.3 * k, 0.12 * k);
    shaft.push_back({0.34 * k, 0});  // pointed tip
    std::swap(shaft[2], shaft[4]);
    std::swap(shaft[3], shaft[4]);
    polys = {transform_poly(shaft, centre, angle), transform_poly(head, centre, angle)};
    const double ca = std::cos(angle), sa = std::sin(angle), pitch = std::max(3.0, 0.035 * k);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        const double u = (x - centre.x) * ca + (y - centre.y) * sa, v = -(x - centre.x) * sa + (y - centre.y) * ca;
        const double thread = u > -0.3 * k ? 0.8 + 0.2 * std::sin(2 * kPi * (u + 0.4 * v) / pitch) : 1.0;
        shade.at<float>(y, x) = static_cast<float>(thread * (1.0 - 2.5 * std::abs(v) / k));
      }
  } else if (st.kind == "plate") {
    const double h = 0.3 * k, rad = 0.08 * k;
    std::vector<cv::Point2d> pts;
    for (int q = 0; q < 4; ++q) {  // rounded square: four quarter circles
      const double cx = (q == 0 || q == 3) ? h - rad : -(h - rad), cy = q < 2 ? h - rad : -(h - rad);
      const double a0 = q * kPi / 2;
      for (int i = 0; i <= 8; ++i) {
        const double a = a0 + i * (kPi / 2) / 8;
        pts.push_back({cx + rad * std::cos(a), cy + rad * std::sin(a)});
      }
    }
    polys = {transform_poly(pts, centre, angle)};
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        shade.at<float>(y, x) = static_cast<float>(0.8 + 0.3 * ((x - centre.x) + (y - centre.y)) / (2 * k) + 0.1);
  } else {  // bottle, side view
    std::vector<cv::Point2d> body, neck, cap;
    body = {{-0.17 * k, 0.38 * k}, {-0.17 * k, -0.1 * k}, {-0.07 * k, -0.22 * k},
            {0.07 * k, -0.22 * k}, {0.17 * k, -0.1 * k},  {0.17 * k, 0.38 * k}};
    add_rect(neck, -0.06 * k, -0.36 * k, 0.06 * k, -0.2 * k);
    add_rect(cap, -0.075 * k, -0.42 * k, 0.075 * k, -0.35 * k);
    polys = {transform_poly(body, centre, angle), transform_poly(neck, centre, angle),
             transform_poly(cap, centre, angle)};
    const double ca = std::cos(angle), sa = std::sin(angle);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        const double u = (x - centre.x) * ca + (y - centre.y) * sa;
        shade.at<float>(y, x) = static_cast<float>(0.7 + 0.5 * std::exp(-std::pow((u + 0.07 * k) / (0.03 * k), 2)) +
                                                   0.15 * std::cos(u / (0.17 * k) * kPi / 2));
      }
  }
  for (const auto& p : polys) cv::fillPoly(c.object, std::vector<std::vector<cv::Point>>{p}, 255, cv::LINE_8);
  cv::Mat alpha;
  c.object.convertTo(alpha, CV_32F, 1.0 / 255);
  cv::GaussianBlur(alpha, alpha, cv::Size(3, 3), 0);  // soft edge in the image, hard in the masks
  c.img.create(S, S, CV_32FC3);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      const float a = alpha.at<float>(y, x);
      const float t = n.at<float>(y, x);
      const cv::Vec3f surface = lerp(st.c1, st.c2, 0.3f * t) * shade.at<float>(y, x);
      c.img.at<cv::Vec3f>(y, x) = surface * a + c.bg.at<cv::Vec3f>(y, x) * (1 - a);
    }
  const int e = std::max(1, S / 40);
  cv::erode(c.object, c.inner, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * e + 1, 2 * e + 1)));
}

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

/// A random choice among the candidates that differ most from `local` (visible defects).
cv::Vec3f farthest(const std::vector<cv::Vec3f>& candidates, const cv::Vec3f& local, Rng& r) {
  std::vector<std::pair<double, size_t>> d;
  for (size_t i = 0; i < candidates.size(); ++i) d.push_back({cv::norm(candidates[i] - local), i});
  std::sort(d.rbegin(), d.rend());
  return candidates[d[r.integer(0, std::min<int>(1, static_cast<int>(d.size()) - 1))].second];
}

/// Draws one defect of `type` into D (0/255) and applies it to the canvas image.
void draw_defect(const std::string& type, Rng& r, int S, Canvas& c, cv::Mat& D) {
  D = cv::Mat::zeros(S, S, CV_8U);
  const int th = std::max(1, cvRound(S / 110.0));
  if (type == "scratch" || type == "crack") {
    const int strokes = type == "scratch" ? r.integer(1, 2) : 1;
    for (int s = 0; s < strokes; ++s) {
      cv::Point2d p = random_point_in(r, c.inner);
      double dir = r.uni(0, 2 * kPi);
      const int steps = r.integer(8, 14);
      const double step = S * r.uni(0.02, 0.035);
      std::vector<cv::Point> pts{p};
      for (int i = 0; i < steps; ++i) {
        dir += type == "crack" ? r.uni(-0.7, 0.7) : r.uni(-0.08, 0.08);
        p += cv::Point2d(std::cos(dir), std::sin(dir)) * step;
        pts.emplace_back(cvRound(p.x), cvRound(p.y));
        if (type == "crack" && r.coin(0.2)) {  // branch
          cv::Point2d b = p;
          const double bd = dir + (r.coin() ? 1 : -1) * r.uni(0.5, 1.1);
          std::vector<cv::Point> br{cv::Point(cvRound(b.x), cvRound(b.y))};
          for (int j = 0; j < 3; ++j) {
            b += cv::Point2d(std::cos(bd + r.uni(-0.5, 0.5)), std::sin(bd + r.uni(-0.5, 0.5))) * step;
            br.emplace_back(cvRound(b.x), cvRound(b.y));
          }
          cv::polylines(D, br, false, 255, th, cv::LINE_8);
        }
      }
      cv::polylines(D, pts, false, 255, type == "crack" ? th + 1 : th, cv::LINE_8);
    }
    D &= c.inner;
    const bool light = type == "scratch" && r.coin();
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        if (D.at<uint8_t>(y, x)) {
          auto& v = c.img.at<cv::Vec3f>(y, x);
          v = light ? v * 0.4f + cv::Vec3f(150, 150, 150) : v * (type == "crack" ? 0.2f : 0.45f);
        }
  } else if (type == "hole") {
    const cv::Point p = random_point_in(r, c.inner);
    const cv::Size ax(cvRound(S * r.uni(0.03, 0.06)), cvRound(S * r.uni(0.03, 0.06)));
    cv::ellipse(D, p, ax, r.uni(0, 180), 0, 360, 255, cv::FILLED, cv::LINE_8);
    D &= c.inner;
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        if (D.at<uint8_t>(y, x)) {
          const double d = std::hypot(double(x - p.x) / ax.width, double(y - p.y) / ax.height);
          c.img.at<cv::Vec3f>(y, x) = cv::Vec3f(15, 12, 10) * static_cast<float>(1.0 + d);
        }
  } else if (type == "stain") {
    const cv::Point p = random_point_in(r, c.inner);
    const int blobs = r.integer(3, 6);
    for (int i = 0; i < blobs; ++i) {
      const cv::Point q = p + cv::Point(cvRound(S * r.uni(-0.04, 0.04)), cvRound(S * r.uni(-0.04, 0.04)));
      cv::ellipse(D, q, cv::Size(cvRound(S * r.uni(0.02, 0.05)), cvRound(S * r.uni(0.02, 0.05))), r.uni(0, 180), 0, 360,
                  255, cv::FILLED, cv::LINE_8);
    }
    D &= c.inner;
    const cv::Vec3f tint =
        farthest({cv::Vec3f(110, 70, 20), cv::Vec3f(35, 40, 25), cv::Vec3f(225, 215, 170)}, mean_under(c.img, D), r);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        if (D.at<uint8_t>(y, x)) c.img.at<cv::Vec3f>(y, x) = c.img.at<cv::Vec3f>(y, x) * 0.3f + tint * 0.7f;
  } else if (type == "missing") {
    // A bite out of the rim: a disk centred on the object's boundary, replaced by background.
    cv::Mat edge;
    cv::Mat dil;
    cv::dilate(c.object, dil, cv::Mat());
    edge = dil & ~c.object;
    const cv::Point p = random_point_in(r, edge.empty() || cv::countNonZero(edge) == 0 ? c.inner : edge);
    cv::circle(D, p, cvRound(S * r.uni(0.06, 0.1)), 255, cv::FILLED, cv::LINE_8);
    D &= c.object;
    c.bg.copyTo(c.img, D);
  } else if (type == "color") {
    const int spots = r.integer(1, 3);
    for (int i = 0; i < spots; ++i)
      cv::circle(D, random_point_in(r, c.inner), cvRound(S * r.uni(0.015, 0.035)) + 1, 255, cv::FILLED, cv::LINE_8);
    D &= c.inner;
    const cv::Vec3f col =
        farthest({{230, 30, 30}, {30, 200, 40}, {40, 60, 230}, {240, 220, 20}}, mean_under(c.img, D), r);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        if (D.at<uint8_t>(y, x)) c.img.at<cv::Vec3f>(y, x) = col * 0.85f + c.img.at<cv::Vec3f>(y, x) * 0.15f;
  } else {
    fail("unknown synthetic defect type '", type, "' (expected scratch, crack, hole, stain, missing or color)");
  }
}

std::string zero_pad(int64_t v, int width) {
  std::ostringstream os;
  os << std::setw(width) << std::setfill('0') << v;
  return os.str();
}

void write_image(const fs::path& p, const cv::Mat& rgb, bool jpeg) {
  fs::create_directories(p.parent_path());
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<int> params;
  if (jpeg) params = {cv::IMWRITE_JPEG_QUALITY, 95};
  VCP_CHECK(cv::imwrite(p.string(), bgr, params), "cannot write image ", p.string());
}

void write_mask(const fs::path& p, const cv::Mat& mask, uint8_t value) {
  fs::create_directories(p.parent_path());
  cv::Mat out;
  cv::threshold(mask, out, 0, value, cv::THRESH_BINARY);
  VCP_CHECK(cv::imwrite(p.string(), out), "cannot write mask ", p.string());
}

}  // namespace

std::vector<std::string> synthetic_class_names(const std::string& set, int n) {
  check_set(set);
  VCP_CHECK(n >= 1, "number of synthetic classes must be >= 1, found ", n);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string name = kind_of(set, i);
    if (i >= 4) name += "_" + std::to_string(i / 4 + 1);
    out.push_back(name);
  }
  return out;
}

std::vector<std::string> synthetic_defects(const std::string& set, int index) {
  const std::string k = kind_of(set, index);
  if (k == "stripes") return {"scratch", "hole", "color"};
  if (k == "fabric") return {"hole", "stain", "color"};
  if (k == "disk") return {"scratch", "missing", "color"};
  if (k == "screw") return {"crack", "missing", "scratch"};
  if (k == "checker") return {"crack", "stain", "color"};
  if (k == "wood") return {"scratch", "hole", "stain"};
  if (k == "plate") return {"crack", "hole", "missing"};
  return {"crack", "stain", "missing"};  // bottle
}

SynthItem render_synthetic(const std::string& set, int index, const std::string& defect, uint64_t seed, int size) {
  VCP_CHECK(size >= 16, "synthetic image size must be >= 16, found ", size);
  const ClassStyle st = class_style(set, index);
  Rng r(seed);
  Canvas c;
  if (st.kind == "stripes" || st.kind == "fabric" || st.kind == "checker" || st.kind == "wood")
    render_texture(st, r, size, c);
  else
    render_object(st, r, size, c);
  SynthItem item;
  item.defect = defect;
  if (defect == "good") {
    item.mask = cv::Mat::zeros(size, size, CV_8U);
  } else {
    const int min_area = std::max(6, size * size / 800);
    cv::Mat saved = c.img.clone();
    for (int attempt = 0;; ++attempt) {
      draw_defect(defect, r, size, c, item.mask);
      if (cv::countNonZero(item.mask) >= min_area || attempt >= 20) break;
      saved.copyTo(c.img);
    }
  }
  // Lighting gradient and sensor noise on everything (defects included).
  const double gx = r.uni(-0.1, 0.1), gy = r.uni(-0.1, 0.1);
  std::normal_distribution<float> noise(0.f, 2.5f);
  item.rgb.create(size, size, CV_8UC3);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const float g = static_cast<float>(1.0 + gx * (x - size / 2.0) / size + gy * (y - size / 2.0) / size);
      const cv::Vec3f v = c.img.at<cv::Vec3f>(y, x) * g;
      for (int k = 0; k < 3; ++k) item.rgb.at<cv::Vec3b>(y, x)[k] = cv::saturate_cast<uint8_t>(v[k] + noise(r.g));
    }
  return item;
}

SynthSummary generate_synthetic(const SynthOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  VCP_CHECK(o.layout == "mvtec" || o.layout == "visa", "synthetic layout must be 'mvtec' or 'visa', found '", o.layout,
            "'");
  check_set(o.set);
  VCP_CHECK(!o.out.empty(), "no output directory given for the synthetic dataset");
  VCP_CHECK(o.images >= 2, "synthetic images per class must be >= 2 (normal + anomalous), found ", o.images);
  VCP_CHECK(o.size >= 16, "synthetic image size must be >= 16, found ", o.size);
  const int train_n = o.train_images < 0 ? std::max(1, o.images / 2) : o.train_images;
  const int normal_n = std::max(1, static_cast<int>(std::lround(o.images * 0.4)));
  const int anomalous_n = o.images - normal_n;
  const fs::path root(o.out);
  std::error_code ec;
  fs::create_directories(root, ec);
  VCP_CHECK(fs::is_directory(root), "cannot create output directory ", root.string(), ec ? ": " + ec.message() : "");
  const bool visa = o.layout == "visa";
  const uint64_t set_id = hash_str(o.set);

  SynthSummary sum;
  sum.classes = synthetic_class_names(o.set, o.classes);
  std::ostringstream csv;
  if (visa) csv << "object,split,label,image,mask\r\n";
  for (int ci = 0; ci < o.classes; ++ci) {
    const std::string& cls = sum.classes[ci];
    const auto defects = synthetic_defects(o.set, ci);
    const uint64_t cls_seed = mix(mix(o.seed, set_id), static_cast<uint64_t>(ci));
    int visa_normal = 0;
    auto item_seed = [&](int split, int i) { return mix(mix(cls_seed, static_cast<uint64_t>(split)), i); };
    for (int i = 0; i < train_n; ++i) {  // training normals
      SynthItem it = render_synthetic(o.set, ci, "good", item_seed(0, i), o.size);
      if (visa) {
        const std::string rel = cls + "/Data/Images/Normal/" + zero_pad(visa_normal++, 4) + ".JPG";
        write_image(root / rel, it.rgb, true);
        csv << cls << ",train,normal," << rel << ",\r\n";
      } else {
        write_image(root / cls / "train" / "good" / (zero_pad(i, 3) + ".png"), it.rgb, false);
      }
      ++sum.train;
    }
    std::map<std::string, int> per_defect;
    for (int i = 0; i < anomalous_n; ++i) {
      const std::string& d = defects[i % defects.size()];
      SynthItem it = render_synthetic(o.set, ci, d, item_seed(2, i), o.size);
      if (visa) {
        const std::string img = cls + "/Data/Images/Anomaly/" + zero_pad(i, 3) + ".JPG";
        const std::string mask = cls + "/Data/Masks/Anomaly/" + zero_pad(i, 3) + ".png";
        write_image(root / img, it.rgb, true);
        write_mask(root / mask, it.mask, 1);  // VisA: any value > 0 is defect
        csv << cls << ",test,anomaly," << img << "," << mask << "\r\n";
      } else {
        const std::string stem = zero_pad(per_defect[d]++, 3);
        write_image(root / cls / "test" / d / (stem + ".png"), it.rgb, false);
        write_mask(root / cls / "ground_truth" / d / (stem + "_mask.png"), it.mask, 255);
      }
      ++sum.anomalous;
    }
    for (int i = 0; i < normal_n; ++i) {
      SynthItem it = render_synthetic(o.set, ci, "good", item_seed(1, i), o.size);
      if (visa) {
        const std::string rel = cls + "/Data/Images/Normal/" + zero_pad(visa_normal++, 4) + ".JPG";
        write_image(root / rel, it.rgb, true);
        csv << cls << ",test,normal," << rel << ",\r\n";
      } else {
        write_image(root / cls / "test" / "good" / (zero_pad(i, 3) + ".png"), it.rgb, false);
      }
      ++sum.normal;
    }
  }
  if (visa) {
    fs::create_directories(root / "split_csv");
    const fs::path p = root / "split_csv" / "1cls.csv";
    std::ofstream f(p, std::ios::binary);
    f << csv.str();
    VCP_CHECK(f.good(), "cannot write ", p.string());
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

SynthOptions parse_synth_options(io::ConfigNode& node) {
  SynthOptions o;
  o.out = node.require<std::string>("out");
  o.layout = node.get<std::string>("layout", o.layout);
  VCP_CHECK(o.layout == "mvtec" || o.layout == "visa", "config key ", node.where("layout"),
            ": expected mvtec or visa, found '", o.layout, "'");
  o.set = node.get<std::string>("set", o.set);
  VCP_CHECK(o.set == "auxiliary" || o.set == "target", "config key ", node.where("set"),
            ": expected auxiliary or target, found '", o.set, "'");
  o.classes = node.get<int>("classes", o.classes);
  VCP_CHECK(o.classes >= 1, "config key ", node.where("classes"), ": expected at least 1, found ", o.classes);
  o.images = node.get<int>("images", o.images);
  VCP_CHECK(o.images >= 2, "config key ", node.where("images"), ": expected at least 2, found ", o.images);
  o.train_images = node.get<int>("train_images", o.train_images);
  o.size = node.get<int>("size", o.size);
  VCP_CHECK(o.size >= 16, "config key ", node.where("size"), ": expected at least 16, found ", o.size);
  const int64_t seed = node.get<int64_t>("seed", 0);
  VCP_CHECK(seed >= 0, "config key ", node.where("seed"), ": expected 0 or more, found ", seed);
  o.seed = static_cast<uint64_t>(seed);
  node.finish();
  return o;
}

}  // namespace vcpclip::data
