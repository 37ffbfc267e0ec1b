#pragma once
// Internal to the synthetic-data renderer (data/synthetic*.cpp): random streams, the canvas a
// product is drawn on, the product catalogue and the defect painters.
#include <cstdint>
#include <opencv2/core.hpp>
#include <random>
#include <string>
#include <vector>

namespace vcpclip::data::synth {

constexpr double kPi = 3.14159265358979323846;

uint64_t mix(uint64_t h, uint64_t v);  ///< splitmix64 step over h ^ v
uint64_t hash_str(const std::string& s);

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  double uni(double a, double b) { return std::uniform_real_distribution<double>(a, b)(g); }
  int integer(int a, int b) { return std::uniform_int_distribution<int>(a, b)(g); }  // inclusive
  bool coin(double p = 0.5) { return uni(0, 1) < p; }
};

/// Smooth value noise in [0,1], CV_32F rows×cols, from a cells_y×cells_x grid (bicubic).
cv::Mat smooth_noise(Rng& r, int rows, int cols, int cells_y, int cells_x);
cv::Vec3f lerp(const cv::Vec3f& a, const cv::Vec3f& b, float t);

/// What a product is drawn on. All images CV_32FC3 RGB in 0..255.
struct Canvas {
  cv::Mat img;     ///< the product image
  cv::Mat object;  ///< CV_8U, 255 where the product is (the full image for textures)
  cv::Mat inner;   ///< object eroded: where surface defects may go
  cv::Mat rim;     ///< CV_8U, 255 on the product's outline (missing pieces start there)
};

/// Per-class appearance, fixed by (kind, variant) so a class looks the same under every seed.
struct ClassStyle {
  std::string kind;
  cv::Vec3f c1, c2, bg;
  double angle, period, scale;
};
ClassStyle class_style(const std::string& kind, int variant);

/// The product catalogue: kind name, the set it belongs to, and its renderer (fills the canvas).
using RenderFn = void (*)(const ClassStyle&, Rng&, int size, Canvas&);
struct ProductKind {
  const char* name;
  const char* set;  ///< "auxiliary" or "target": a kind belongs to exactly one set
  bool texture;     ///< fills the whole image (else an object on a background)
  RenderFn render;
};
const std::vector<ProductKind>& product_catalogue();
const ProductKind& product_kind(const std::string& name);  ///< Error naming the catalogue if unknown

/// Draws one defect of `type` on the canvas; returns its mask (CV_8U 0/255, inside c.inner).
cv::Mat draw_defect(const std::string& type, Rng& r, int size, Canvas& c);

}  // namespace vcpclip::data::synth
