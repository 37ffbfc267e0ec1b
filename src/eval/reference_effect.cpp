// Where few-shot references hurt (see include/vcpclip/eval/reference_effect.h).
#include "vcpclip/eval/reference_effect.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace vcpclip::eval {

namespace {

bool falls(const Metric& before, const Metric& after) {
  return before && after && std::isfinite(*before) && std::isfinite(*after) && *before - *after > kWorseBy;
}

nlohmann::json value(const Metric& m) { return m && std::isfinite(*m) ? nlohmann::json(*m) : nlohmann::json(); }

nlohmann::json change(const Metric& before, const Metric& after) {
  return before && after && std::isfinite(*before) && std::isfinite(*after) ? nlohmann::json(*after - *before)
                                                                            : nlohmann::json();
}

std::string pct(const Metric& m) {
  if (!m || !std::isfinite(*m)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", *m * 100);
  return b;
}

std::string signed_points(const Metric& before, const Metric& after) {
  if (!before || !after || !std::isfinite(*before) || !std::isfinite(*after)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%+.2f", (*after - *before) * 100);
  return b;
}

}  // namespace

bool ReferenceEffect::pixel_worse() const { return falls(pixel_zero_shot, pixel_references); }
bool ReferenceEffect::image_worse() const { return falls(image_zero_shot, image_references); }

std::string ReferenceEffect::warning() const {
  if (!worse()) return "";
  std::ostringstream s;
  s << "references made class '" << name << "' WORSE: with its " << k << " reference image" << (k == 1 ? "" : "s");
  if (pixel_worse())
    s << ", finding where the defects are (pixel AUROC) fell from " << pct(pixel_zero_shot) << " % to "
      << pct(pixel_references) << " %";
  if (pixel_worse() && image_worse()) s << " and";
  if (image_worse())
    s << ", telling good from defective parts (image AUROC) fell from " << pct(image_zero_shot) << " % to "
      << pct(image_references) << " %";
  s << " compared with no references. The reference images probably do not show how good '" << name
    << "' parts normally vary (position, pattern, lighting): add more varied good images, or inspect this product "
       "without references (few_shot.k: 0)";
  return s.str();
}

nlohmann::json ReferenceEffect::to_json() const {
  return {{"name", name},
          {"k", k},
          {"pixel_auroc_zero_shot", value(pixel_zero_shot)},
          {"pixel_auroc", value(pixel_references)},
          {"pixel_change", change(pixel_zero_shot, pixel_references)},
          {"image_auroc_zero_shot", value(image_zero_shot)},
          {"image_auroc", value(image_references)},
          {"image_change", change(image_zero_shot, image_references)},
          {"worse", worse()},
          {"verdict", worse() ? "worse with references" : "not worse"}};
}

std::vector<ReferenceEffect> reference_effects(const std::vector<ClassMetrics>& zero_shot,
                                               const std::vector<ClassMetrics>& with_references, int64_t k) {
  std::vector<ReferenceEffect> out;
  for (const auto& w : with_references) {
    ReferenceEffect e;
    e.name = w.name;
    e.k = k;
    e.pixel_references = w.pixel.auroc;
    e.image_references = w.image.auroc;
    for (const auto& z : zero_shot)
      if (z.name == w.name) {
        e.pixel_zero_shot = z.pixel.auroc;
        e.image_zero_shot = z.image.auroc;
      }
    out.push_back(e);
  }
  return out;
}

std::string reference_effects_table(const std::vector<ReferenceEffect>& effects) {
  if (effects.empty()) return "";
  std::vector<std::vector<std::string>> rows = {{"references vs zero-shot", "auroc_px zero-shot", "auroc_px with refs",
                                                 "change", "auroc_sp zero-shot", "auroc_sp with refs", "change",
                                                 "verdict"}};
  for (const auto& e : effects)
    rows.push_back({e.name, pct(e.pixel_zero_shot), pct(e.pixel_references),
                    signed_points(e.pixel_zero_shot, e.pixel_references), pct(e.image_zero_shot),
                    pct(e.image_references), signed_points(e.image_zero_shot, e.image_references),
                    e.worse() ? "WORSE with references" : "not worse"});
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::ostringstream s;
  auto line = [&](const std::vector<std::string>& r) {
    s << "|";
    for (size_t i = 0; i < r.size(); ++i) s << " " << r[i] << std::string(width[i] - r[i].size(), ' ') << " |";
    s << "\n";
  };
  line(rows[0]);
  s << "|";
  for (size_t i = 0; i < width.size(); ++i) s << std::string(width[i] + 2, '-') << "|";
  s << "\n";
  for (size_t i = 1; i < rows.size(); ++i) line(rows[i]);
  return s.str();
}

}  // namespace vcpclip::eval
