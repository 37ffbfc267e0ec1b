// The synthetic product catalogue (see data/synthetic.h): textures that fill the image and
// objects on a background, each a function of (class style, per-image random stream).
#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "synthetic_draw.h"
#include "vcpclip/common/error.h"

namespace vcpclip::data::synth {

uint64_t mix(uint64_t h, uint64_t v) {
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

cv::Mat smooth_noise(Rng& r, int rows, int cols, int cells_y, int cells_x) {
  cv::Mat small(cells_y, cells_x, CV_32F);
  for (int i = 0; i < cells_y * cells_x; ++i) small.at<float>(i) = static_cast<float>(r.uni(0, 1));
  cv::Mat out;
  cv::resize(small, out, cv::Size(cols, rows), 0, 0, cv::INTER_CUBIC);
  return out;
}

cv::Vec3f lerp(const cv::Vec3f& a, const cv::Vec3f& b, float t) { return a * (1 - t) + b * t; }

namespace {

cv::Vec3f rand_colour(Rng& r, double lo, double hi) {
  return cv::Vec3f(static_cast<float>(r.uni(lo, hi)), static_cast<float>(r.uni(lo, hi)),
                   static_cast<float>(r.uni(lo, hi)));
}

/// Rotated, shifted texture coordinates (u along the pattern, v across) and the period in pixels.
struct Frame {
  double ca, sa, ox, oy, period, phase;
  double u(int x, int y) const { return (x + ox) * ca + (y + oy) * sa; }
  double v(int x, int y) const { return -(x + ox) * sa + (y + oy) * ca; }
};

Frame texture_frame(const ClassStyle& st, Rng& r, int S) {
  Frame f;
  f.period = std::max(4.0, st.period * S * r.uni(0.92, 1.08));
  const double ang = st.angle + r.uni(-0.06, 0.06);
  f.ca = std::cos(ang);
  f.sa = std::sin(ang);
  f.ox = r.uni(0, f.period * 4);
  f.oy = r.uni(0, f.period * 4);
  f.phase = r.uni(0, 2 * kPi);
  return f;
}

/// Textures: the whole image is product; defects keep a small margin from the border.
void finish_texture(int S, Canvas& c) {
  c.object = cv::Mat(S, S, CV_8U, cv::Scalar(255));
  c.inner = cv::Mat::zeros(S, S, CV_8U);
  const int m = std::max(2, S / 20);
  c.inner(cv::Rect(m, m, S - 2 * m, S - 2 * m)).setTo(255);
  c.rim = c.inner.clone();
}

/// Per-pixel texture: img(y, x) = f(x, y) · (0.92 + 0.16 · smooth noise).
template <typename F>
void fill_texture(Rng& r, int S, Canvas& c, F&& f) {
  c.img.create(S, S, CV_32FC3);
  const cv::Mat n = smooth_noise(r, S, S, 6, 6);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) c.img.at<cv::Vec3f>(y, x) = f(x, y) * (0.92f + 0.16f * n.at<float>(y, x));
  finish_texture(S, c);
}

void render_stripes(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Frame fr = texture_frame(st, r, S);
  fill_texture(r, S, c, [&](int x, int y) {
    const double t = 0.5 + 0.5 * std::tanh(3 * std::sin(2 * kPi * fr.u(x, y) / fr.period + fr.phase));
    return lerp(st.c1, st.c2, static_cast<float>(t));
  });
}

void render_fabric(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Frame fr = texture_frame(st, r, S);
  fill_texture(r, S, c, [&](int x, int y) {
    const double px = (x + fr.ox) / fr.period, py = (y + fr.oy) / fr.period;
    const int i = static_cast<int>(std::floor(px)), j = static_cast<int>(std::floor(py));
    const bool warp = ((i + j) & 1) == 0;
    const double across = warp ? py - j : px - i;  // across the visible thread
    return (warp ? st.c1 : st.c2) * static_cast<float>(0.55 + 0.45 * std::sin(kPi * across));
  });
}

/// Mottled carpet / felt: two colours mixed by coarse and fine noise.
void render_carpet(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const cv::Mat coarse = smooth_noise(r, S, S, 5, 5), fine = smooth_noise(r, S, S, S / 3, S / 3);
  fill_texture(r, S, c, [&](int x, int y) {
    const float t = std::clamp(0.65f * coarse.at<float>(y, x) + 0.35f * fine.at<float>(y, x), 0.0f, 1.0f);
    return lerp(st.c1, st.c2, t);
  });
}

/// Wire mesh / grid: thin regular lines of c2 on c1.
void render_mesh(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Frame fr = texture_frame(st, r, S);
  const double half = std::max(0.6, fr.period * 0.09);
  fill_texture(r, S, c, [&](int x, int y) {
    const double a = std::fmod(std::abs(fr.u(x, y)), fr.period), b = std::fmod(std::abs(fr.v(x, y)), fr.period);
    const double d = std::min({a, fr.period - a, b, fr.period - b});
    return lerp(st.c1, st.c2, static_cast<float>(std::clamp(1.5 - d / half, 0.0, 1.0)));
  });
}

/// Brushed metal: grey-tinted base with fine streaks along one direction.
void render_metal(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Frame fr = texture_frame(st, r, S);
  std::vector<float> streak(4 * S + 8);
  for (auto& s : streak) s = static_cast<float>(r.uni(0, 1));
  const cv::Vec3f base = lerp(cv::Vec3f(150, 150, 155), st.c1, 0.35f);
  fill_texture(r, S, c, [&](int x, int y) {
    const double v = std::fmod(std::abs(fr.v(x, y)) * 1.3, static_cast<double>(streak.size() - 2));
    const int i = static_cast<int>(v);
    const float t = static_cast<float>(v - i), s = streak[i] * (1 - t) + streak[i + 1] * t;
    return base * (0.8f + 0.3f * s);
  });
}

/// Glazed tiles: two tones of moderate contrast.
void render_checker(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Frame fr = texture_frame(st, r, S);
  const cv::Vec3f c2 = lerp(st.c1, st.c2, 0.6f);
  fill_texture(r, S, c, [&](int x, int y) {
    const int i = static_cast<int>(std::floor(fr.u(x, y) / (1.5 * fr.period)));
    const int j = static_cast<int>(std::floor(fr.v(x, y) / (1.5 * fr.period)));
    return ((i + j) & 1) ? st.c1 : c2;
  });
}

/// Wood: brown growth rings around a far centre, warped by noise, with a faint fine grain.
void render_wood(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Frame fr = texture_frame(st, r, S);
  const cv::Mat warp = smooth_noise(r, S, S, 4, 4);
  const cv::Vec3f light = lerp(cv::Vec3f(205, 160, 105), st.c1, 0.2f), dark = light * 0.72f;
  fill_texture(r, S, c, [&](int x, int y) {
    const double u = fr.u(x, y), v = fr.v(x, y);
    const double d = std::sqrt((u + 3 * S) * (u + 3 * S) + 0.02 * v * v) + 0.12 * S * warp.at<float>(y, x);
    const double ring = 0.5 + 0.5 * std::sin(2 * kPi * d / (0.9 * fr.period) + fr.phase);
    const double grain = 0.04 * std::sin(v * 1.9 + 0.3 * u);
    return lerp(light, dark, static_cast<float>(std::clamp(std::pow(ring, 2.0) + grain, 0.0, 1.0)));
  });
}

// ---------------------------------------------------------------------------------------------
// Objects: a silhouette (c.object), a shading field, a noisy background.

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

/// Where and how big an object is drawn in one image.
struct Pose {
  cv::Point2d centre;
  double k, angle;  ///< size unit (pixels), rotation
  double u(int x, int y) const { return (x - centre.x) * std::cos(angle) + (y - centre.y) * std::sin(angle); }
  double v(int x, int y) const { return -(x - centre.x) * std::sin(angle) + (y - centre.y) * std::cos(angle); }
};

/// `base_angle` < 0: the class's own angle.
Pose object_pose(const ClassStyle& st, Rng& r, int S, double base_angle, double angle_jitter) {
  Pose p;
  p.centre = cv::Point2d(S * (0.5 + r.uni(-0.04, 0.04)), S * (0.5 + r.uni(-0.04, 0.04)));
  p.k = S * st.scale * r.uni(0.95, 1.05);
  p.angle = (base_angle < 0 ? st.angle : base_angle) + r.uni(-angle_jitter, angle_jitter);
  return p;
}

/// Composes the object (surface colour · shade) over a noisy background; soft edge in the image,
/// hard in the masks; inner = object eroded, rim = its outline.
void finish_object(const ClassStyle& st, Rng& r, int S, const cv::Mat& shade, Canvas& c) {
  const cv::Mat n = smooth_noise(r, S, S, 4, 4);
  cv::Mat alpha;
  c.object.convertTo(alpha, CV_32F, 1.0 / 255);
  cv::GaussianBlur(alpha, alpha, cv::Size(3, 3), 0);
  c.img.create(S, S, CV_32FC3);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      const float a = alpha.at<float>(y, x), t = n.at<float>(y, x);
      const cv::Vec3f bg = st.bg * (0.9f + 0.2f * t);
      const cv::Vec3f surface = lerp(st.c1, st.c2, 0.3f * t) * shade.at<float>(y, x);
      c.img.at<cv::Vec3f>(y, x) = surface * a + bg * (1 - a);
    }
  const int e = std::max(1, S / 40);
  cv::erode(c.object, c.inner, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * e + 1, 2 * e + 1)));
  cv::Mat outer;
  cv::dilate(c.object, outer, cv::Mat());
  c.rim = outer & ~c.inner;
}

template <typename F>
cv::Mat shade_field(int S, F&& f) {
  cv::Mat shade(S, S, CV_32F);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) shade.at<float>(y, x) = static_cast<float>(f(x, y));
  return shade;
}

void render_disk(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Pose p = object_pose(st, r, S, 0.0, 0.0);
  c.object = cv::Mat::zeros(S, S, CV_8U);
  cv::circle(c.object, p.centre, cvRound(0.32 * p.k), 255, cv::FILLED, cv::LINE_8);
  cv::circle(c.object, p.centre, cvRound(0.1 * p.k), 0, cv::FILLED, cv::LINE_8);
  finish_object(st, r, S,
                shade_field(S,
                            [&](int x, int y) {
                              const double d = std::hypot(x - p.centre.x, y - p.centre.y) / (0.32 * p.k);
                              return 0.75 + 0.15 * std::cos(d * 5.0) + 0.2 * (1 - d);
                            }),
                c);
}

void render_screw(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Pose p = object_pose(st, r, S, -1, 0.2);
  const double k = p.k;
  std::vector<cv::Point2d> shaft{
      {-0.3 * k, -0.055 * k}, {0.28 * k, -0.055 * k}, {0.34 * k, 0}, {0.28 * k, 0.055 * k}, {-0.3 * k, 0.055 * k}},
      head;
  add_rect(head, -0.38 * k, -0.12 * k, -0.3 * k, 0.12 * k);
  c.object = cv::Mat::zeros(S, S, CV_8U);
  for (const auto& poly : {transform_poly(shaft, p.centre, p.angle), transform_poly(head, p.centre, p.angle)})
    cv::fillPoly(c.object, std::vector<std::vector<cv::Point>>{poly}, 255, cv::LINE_8);
  const double pitch = std::max(3.0, 0.035 * k);
  finish_object(st, r, S,
                shade_field(S,
                            [&](int x, int y) {
                              const double u = p.u(x, y), v = p.v(x, y);
                              const double thread =
                                  u > -0.3 * k ? 0.8 + 0.2 * std::sin(2 * kPi * (u + 0.4 * v) / pitch) : 1.0;
                              return thread * (1.0 - 2.5 * std::abs(v) / k);
                            }),
                c);
}

/// A pill: a stadium of two colour halves with a highlight along its axis.
void render_capsule(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Pose p = object_pose(st, r, S, -1, 0.25);
  const double half = 0.3 * p.k, rad = 0.12 * p.k;
  c.object = cv::Mat::zeros(S, S, CV_8U);
  const cv::Point2d dir(std::cos(p.angle), std::sin(p.angle));
  cv::line(c.object, p.centre - dir * (half - rad), p.centre + dir * (half - rad), 255, cvRound(2 * rad), cv::LINE_8);
  finish_object(st, r, S,
                shade_field(S,
                            [&](int x, int y) {
                              const double v = p.v(x, y) / rad;
                              return (p.u(x, y) < 0 ? 0.7 : 1.05) *
                                     (0.8 + 0.35 * std::exp(-std::pow((v + 0.35) / 0.25, 2)));
                            }),
                c);
}

/// A hexagonal nut with a round hole and bevel shading.
void render_nut(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Pose p = object_pose(st, r, S, 0.0, kPi / 6);
  std::vector<cv::Point2d> hex;
  for (int i = 0; i < 6; ++i) hex.push_back({0.3 * p.k * std::cos(i * kPi / 3), 0.3 * p.k * std::sin(i * kPi / 3)});
  c.object = cv::Mat::zeros(S, S, CV_8U);
  cv::fillPoly(c.object, std::vector<std::vector<cv::Point>>{transform_poly(hex, p.centre, p.angle)}, 255, cv::LINE_8);
  cv::circle(c.object, p.centre, cvRound(0.12 * p.k), 0, cv::FILLED, cv::LINE_8);
  finish_object(st, r, S,
                shade_field(S,
                            [&](int x, int y) {
                              const double d = std::hypot(x - p.centre.x, y - p.centre.y) / (0.3 * p.k);
                              return 0.7 + 0.35 * std::min(1.0, std::abs(d - 0.62) * 3.0) * (p.u(x, y) > 0 ? 1.0 : 0.8);
                            }),
                c);
}

/// A rounded square plate (tile) lit from one corner.
void render_plate(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Pose p = object_pose(st, r, S, 0.0, 0.15);
  const double h = 0.3 * p.k, rad = 0.08 * p.k;
  std::vector<cv::Point2d> pts;
  for (int q = 0; q < 4; ++q) {  // four quarter circles
    const double cx = (q == 0 || q == 3) ? h - rad : -(h - rad), cy = q < 2 ? h - rad : -(h - rad);
    for (int i = 0; i <= 8; ++i) {
      const double a = q * kPi / 2 + i * (kPi / 2) / 8;
      pts.push_back({cx + rad * std::cos(a), cy + rad * std::sin(a)});
    }
  }
  c.object = cv::Mat::zeros(S, S, CV_8U);
  cv::fillPoly(c.object, std::vector<std::vector<cv::Point>>{transform_poly(pts, p.centre, p.angle)}, 255, cv::LINE_8);
  finish_object(
      st, r, S,
      shade_field(S, [&](int x, int y) { return 0.9 + 0.3 * ((x - p.centre.x) + (y - p.centre.y)) / (2 * p.k); }), c);
}

/// A bottle seen from the side: body, shoulder, neck and cap, with a vertical highlight.
void render_bottle(const ClassStyle& st, Rng& r, int S, Canvas& c) {
  const Pose p = object_pose(st, r, S, 0.0, 0.15);
  const double k = p.k;
  std::vector<cv::Point2d> body{{-0.17 * k, 0.38 * k}, {-0.17 * k, -0.1 * k}, {-0.07 * k, -0.22 * k},
                                {0.07 * k, -0.22 * k}, {0.17 * k, -0.1 * k},  {0.17 * k, 0.38 * k}},
      neck, cap;
  add_rect(neck, -0.06 * k, -0.36 * k, 0.06 * k, -0.2 * k);
  add_rect(cap, -0.075 * k, -0.42 * k, 0.075 * k, -0.35 * k);
  c.object = cv::Mat::zeros(S, S, CV_8U);
  for (const auto& poly : {body, neck, cap})
    cv::fillPoly(c.object, std::vector<std::vector<cv::Point>>{transform_poly(poly, p.centre, p.angle)}, 255,
                 cv::LINE_8);
  finish_object(st, r, S,
                shade_field(S,
                            [&](int x, int y) {
                              const double u = p.u(x, y);  // across the bottle
                              return 0.7 + 0.5 * std::exp(-std::pow((u + 0.07 * k) / (0.03 * k), 2)) +
                                     0.15 * std::cos(u / (0.17 * k) * kPi / 2);
                            }),
                c);
}

}  // namespace

ClassStyle class_style(const std::string& kind, int variant) {
  Rng r(mix(hash_str(kind), static_cast<uint64_t>(variant)));
  ClassStyle s;
  s.kind = kind;
  s.c1 = rand_colour(r, 60, 200);
  s.c2 = rand_colour(r, 60, 200);
  if (cv::norm(s.c1 - s.c2) < 80) s.c2 = cv::Vec3f(255, 255, 255) - s.c1;
  s.bg = r.coin() ? rand_colour(r, 10, 50) : rand_colour(r, 200, 240);
  s.angle = r.uni(0, kPi);
  s.period = r.uni(0.06, 0.12);  // fraction of the image side
  s.scale = r.uni(0.85, 1.1);
  return s;
}

const std::vector<ProductKind>& product_catalogue() {
  static const std::vector<ProductKind> kinds{
      {"stripes", "auxiliary", true, render_stripes}, {"fabric", "auxiliary", true, render_fabric},
      {"disk", "auxiliary", false, render_disk},      {"screw", "auxiliary", false, render_screw},
      {"carpet", "auxiliary", true, render_carpet},   {"mesh", "auxiliary", true, render_mesh},
      {"metal", "auxiliary", true, render_metal},     {"capsule", "auxiliary", false, render_capsule},
      {"nut", "auxiliary", false, render_nut},        {"checker", "target", true, render_checker},
      {"wood", "target", true, render_wood},          {"plate", "target", false, render_plate},
      {"bottle", "target", false, render_bottle}};
  return kinds;
}

const ProductKind& product_kind(const std::string& name) {
  std::string known;
  for (const auto& k : product_catalogue()) {
    if (name == k.name) return k;
    known += (known.empty() ? "" : ", ") + std::string(k.name) + " (" + k.set + ")";
  }
  fail("unknown synthetic product kind '", name, "'; known: ", known);
}

}  // namespace vcpclip::data::synth
