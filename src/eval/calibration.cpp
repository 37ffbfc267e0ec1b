// Calibration: class ranges, F1 / quantile thresholds, calibration.json (see calibration.h).
#include "vcpclip/eval/calibration.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>

#include "vcpclip/common/error.h"
#include "vcpclip/io/atomic_file.h"

namespace vcpclip::eval {
namespace {

constexpr const char* kFormat = "vcpclip-calibration";
constexpr int kVersion = 1;

using nlohmann::json;

json optional_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json confusion_json(const std::optional<Confusion>& c) {
  if (!c) return nullptr;
  return {{"tp", c->tp}, {"fp", c->fp}, {"fn", c->fn}, {"tn", c->tn}};
}

/// The value of `key` in object `j`, converted to T; errors name the file and the key path.
template <typename T>
T get_key(const json& j, const std::string& key, const std::string& where, const std::string& origin) {
  VCP_CHECK(j.is_object() && j.contains(key), "calibration file ", origin, ": missing key '", where, key, "'");
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    fail("calibration file ", origin, ": key '", where, key, "' has the wrong type (found ", j.at(key).dump(), ")");
  }
}

template <typename T>
std::optional<T> get_optional(const json& j, const std::string& key, const std::string& where,
                              const std::string& origin) {
  if (j.is_object() && j.contains(key) && j.at(key).is_null()) return std::nullopt;
  return get_key<T>(j, key, where, origin);
}

std::optional<Confusion> confusion_from_json(const json& j, const std::string& key, const std::string& where,
                                             const std::string& origin) {
  VCP_CHECK(j.contains(key), "calibration file ", origin, ": missing key '", where, key, "'");
  if (j.at(key).is_null()) return std::nullopt;
  const std::string w = where + key + ".";
  const json& c = j.at(key);
  return Confusion{get_key<uint64_t>(c, "tp", w, origin), get_key<uint64_t>(c, "fp", w, origin),
                   get_key<uint64_t>(c, "fn", w, origin), get_key<uint64_t>(c, "tn", w, origin)};
}

json class_json(const ClassCalibration& c) {
  return {{"name", c.name},
          {"images", c.images},
          {"anomalous", c.anomalous},
          {"score_min", c.score_min},
          {"score_max", c.score_max},
          {"map_min", c.map_min},
          {"map_max", c.map_max},
          {"image_threshold", c.image_threshold},
          {"pixel_threshold", c.pixel_threshold},
          {"image_f1", optional_json(c.image_f1)},
          {"pixel_f1", optional_json(c.pixel_f1)},
          {"image_f1_threshold", optional_json(c.image_f1_threshold)},
          {"pixel_f1_threshold", optional_json(c.pixel_f1_threshold)},
          {"image_confusion", confusion_json(c.image_confusion)},
          {"pixel_confusion", confusion_json(c.pixel_confusion)}};
}

ClassCalibration class_from_json(const json& j, size_t index, const std::string& origin) {
  const std::string w = "classes[" + std::to_string(index) + "].";
  ClassCalibration c;
  c.name = get_key<std::string>(j, "name", w, origin);
  c.images = get_key<int64_t>(j, "images", w, origin);
  c.anomalous = get_key<int64_t>(j, "anomalous", w, origin);
  c.score_min = get_key<double>(j, "score_min", w, origin);
  c.score_max = get_key<double>(j, "score_max", w, origin);
  c.map_min = get_key<float>(j, "map_min", w, origin);
  c.map_max = get_key<float>(j, "map_max", w, origin);
  c.image_threshold = get_key<double>(j, "image_threshold", w, origin);
  c.pixel_threshold = get_key<double>(j, "pixel_threshold", w, origin);
  c.image_f1 = get_optional<double>(j, "image_f1", w, origin);
  c.pixel_f1 = get_optional<double>(j, "pixel_f1", w, origin);
  c.image_f1_threshold = get_optional<double>(j, "image_f1_threshold", w, origin);
  c.pixel_f1_threshold = get_optional<double>(j, "pixel_f1_threshold", w, origin);
  c.image_confusion = confusion_from_json(j, "image_confusion", w, origin);
  c.pixel_confusion = confusion_from_json(j, "pixel_confusion", w, origin);
  VCP_CHECK(c.score_max >= c.score_min && c.map_max >= c.map_min, "calibration file ", origin, ": class '", c.name,
            "' has a range with max < min");
  return c;
}

/// max(below, the largest of `values` that is < t).
template <typename T>
double largest_below(const T* values, size_t n, double t, double below) {
  for (size_t i = 0; i < n; ++i)
    if (double(values[i]) < t) below = std::max(below, double(values[i]));
  return below;
}
/// Midpoint between t and the largest value below it: on the calibration set, "value >= midpoint"
/// decides exactly as "value >= t". When nothing lies below t (t is the class minimum: every image
/// or pixel is flagged), half the normalised range below t, so that an input that predict scores a
/// few float32 ulps under the class minimum (another batch, other GEMM blocking) is flagged too.
double midpoint(double below, double t) {
  if (!std::isfinite(below)) return t - 0.5;
  const double m = below + (t - below) / 2;
  return m > below && m <= t ? m : t;  // adjacent doubles: keep t
}
constexpr double kNone = -std::numeric_limits<double>::infinity();

/// Pixel decision threshold (midpoint below eval's t) and its confusion counts over the class.
void set_pixel_threshold(const ClassAccumulator& acc, double t, ClassCalibration& c) {
  double below = kNone;
  for (size_t i = 0; i < acc.size(); ++i)
    below = largest_below(acc.map(i), size_t(acc.height(i) * acc.width(i)), t, below);
  c.pixel_threshold = midpoint(below, t);
  Confusion pc;
  for (size_t i = 0; i < acc.size(); ++i) {
    const float* m = acc.map(i);
    const uint8_t* g = acc.mask(i);
    for (int64_t p = 0, np = acc.height(i) * acc.width(i); p < np; ++p) {
      const bool on = double(m[p]) >= c.pixel_threshold;
      (g[p] ? (on ? pc.tp : pc.fn) : (on ? pc.fp : pc.tn)) += 1;
    }
  }
  c.pixel_confusion = pc;
}

}  // namespace

double Confusion::f1() const {
  const uint64_t d = 2 * tp + fp + fn;
  return d == 0 ? 0.0 : 2.0 * double(tp) / double(d);
}

const ClassCalibration& Calibration::find(const std::string& name, const std::string& origin) const {
  std::string names;
  for (const auto& c : classes) names += (names.empty() ? "" : ", ") + c.name;
  if (name.empty()) {
    VCP_CHECK(classes.size() == 1, "calibration ", origin, " has ", classes.size(), " classes (", names,
              "): choose one with --class");
    return classes.front();
  }
  for (const auto& c : classes)
    if (c.name == name) return c;
  fail("calibration ", origin, " has no class '", name, "' (it has: ", names, ")");
}

std::vector<ClassRange> class_ranges(const std::vector<ClassAccumulator>& accs) {
  std::vector<ClassRange> out;
  for (const auto& acc : accs) {
    if (acc.size() == 0) continue;
    ClassRange r;
    r.name = acc.name();
    r.score_min = r.score_max = acc.score(0);
    r.map_min = r.map_max = acc.map(0)[0];
    for (size_t i = 0; i < acc.size(); ++i) {
      r.score_min = std::min(r.score_min, acc.score(i));
      r.score_max = std::max(r.score_max, acc.score(i));
      const float* m = acc.map(i);
      for (int64_t p = 0, n = acc.height(i) * acc.width(i); p < n; ++p) {
        r.map_min = std::min(r.map_min, m[p]);
        r.map_max = std::max(r.map_max, m[p]);
      }
    }
    out.push_back(r);
  }
  return out;
}

std::optional<ClassCalibration> f1_class_calibration(const ClassRange& range, const ClassAccumulator& acc,
                                                     const ClassMetrics& metrics, std::string* why) {
  VCP_CHECK(range.name == acc.name() && acc.name() == metrics.name, "f1 calibration: class range '", range.name,
            "', accumulator '", acc.name(), "' and metrics '", metrics.name, "' differ");
  const size_t n = acc.size();
  std::vector<double> scores(n);
  std::vector<uint8_t> labels(n);
  for (size_t i = 0; i < n; ++i) scores[i] = acc.score(i), labels[i] = uint8_t(acc.label(i));
  // eval::binary_metrics reports its threshold in float32; it is called on the dense ranks of the
  // scores (exact in float32, same order and ties, so the same sweep) to find the exact score.
  std::vector<double> distinct = scores;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  std::vector<double> ranks(n);
  for (size_t i = 0; i < n; ++i)
    ranks[i] = double(std::lower_bound(distinct.begin(), distinct.end(), scores[i]) - distinct.begin());
  const auto im = binary_metrics(ranks.data(), labels.data(), n, 0.0, "class '" + acc.name() + "'", nullptr);
  if (!im.f1_threshold) {
    *why = "no anomalous image, so no F1-optimal image threshold (use the quantile method)";
    return std::nullopt;
  }
  if (!metrics.pixel.f1_threshold) {
    *why = "no defect pixel in the ground truth, so no F1-optimal pixel threshold (use the quantile method)";
    return std::nullopt;
  }
  ClassCalibration c;
  c.name = acc.name();
  c.images = int64_t(n);
  for (auto l : labels) c.anomalous += l;
  c.score_min = range.score_min, c.score_max = range.score_max;
  c.map_min = range.map_min, c.map_max = range.map_max;
  const double t_img = distinct.at(size_t(*im.f1_threshold));
  c.image_f1 = im.f1_max;
  c.image_f1_threshold = t_img;
  c.image_threshold = midpoint(largest_below(distinct.data(), distinct.size(), t_img, kNone), t_img);
  Confusion ic;
  for (size_t i = 0; i < n; ++i) {
    const bool ng = scores[i] >= c.image_threshold;
    (labels[i] ? (ng ? ic.tp : ic.fn) : (ng ? ic.fp : ic.tn)) += 1;
  }
  c.image_confusion = ic;
  c.pixel_f1 = metrics.pixel.f1_max;
  c.pixel_f1_threshold = metrics.pixel.f1_threshold;
  set_pixel_threshold(acc, *c.pixel_f1_threshold, c);
  return c;
}

double quantile(std::vector<float>& values, double q) {
  std::vector<double> v(values.begin(), values.end());
  return quantile(v, q);
}

double quantile(std::vector<double>& values, double q) {
  VCP_CHECK(!values.empty(), "quantile of no values");
  VCP_CHECK(q >= 0 && q <= 1, "quantile: expected q in [0, 1], found ", q);
  const double h = double(values.size() - 1) * q;
  const size_t lo = size_t(std::floor(h));
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double a = values[lo];
  if (lo + 1 >= values.size()) return a;
  const double b = *std::min_element(values.begin() + lo + 1, values.end());
  return a + (h - double(lo)) * (b - a);
}

ClassCalibration quantile_class_calibration(const ClassAccumulator& acc, double image_quantile, double pixel_quantile) {
  VCP_CHECK(acc.size() > 0, "quantile calibration: class '", acc.name(), "' has no normal images");
  const auto range = class_ranges({acc}).front();
  ClassCalibration c;
  c.name = acc.name();
  c.images = int64_t(acc.size());
  c.score_min = range.score_min, c.score_max = range.score_max;
  c.map_min = range.map_min, c.map_max = range.map_max;
  std::vector<double> scores;
  for (size_t i = 0; i < acc.size(); ++i) {
    VCP_CHECK(acc.label(i) == 0, "quantile calibration: class '", acc.name(), "', image '", acc.id(i),
              "' is anomalous; the quantile method uses normal images only");
    scores.push_back(acc.score(i));
  }
  minmax_normalize(scores.data(), scores.size());
  c.image_threshold = quantile(scores, image_quantile);
  std::vector<float> pixels;
  for (size_t i = 0; i < acc.size(); ++i)
    pixels.insert(pixels.end(), acc.map(i), acc.map(i) + acc.height(i) * acc.width(i));
  minmax_normalize(pixels.data(), pixels.size());
  c.pixel_threshold = quantile(pixels, pixel_quantile);
  return c;
}

json to_json(const Calibration& c) {
  json classes = json::array(), skipped = json::array();
  for (const auto& k : c.classes) classes.push_back(class_json(k));
  for (const auto& [name, reason] : c.skipped) skipped.push_back({{"name", name}, {"reason", reason}});
  return {{"format", kFormat},
          {"version", kVersion},
          {"method", c.method},
          {"image_quantile", optional_json(c.image_quantile)},
          {"pixel_quantile", optional_json(c.pixel_quantile)},
          {"created", c.created},
          {"vcpclip", c.version},
          {"data", c.data},
          {"checkpoint", {{"path", c.checkpoint}, {"sha256", c.checkpoint_sha256}}},
          {"config", {{"path", c.config_path}, {"settings", c.settings}}},
          {"precision", c.precision},
          {"classes", classes},
          {"skipped_classes", skipped}};
}

Calibration calibration_from_json(const json& j, const std::string& origin) {
  VCP_CHECK(j.is_object() && j.value("format", std::string()) == kFormat, "calibration file ", origin,
            ": not a vcpclip calibration (expected \"format\": \"", kFormat, "\")");
  const int version = get_key<int>(j, "version", "", origin);
  VCP_CHECK(version == kVersion, "calibration file ", origin, ": version ", version, " is not supported (expected ",
            kVersion, ")");
  Calibration c;
  c.method = get_key<std::string>(j, "method", "", origin);
  VCP_CHECK(c.method == "f1" || c.method == "quantile", "calibration file ", origin,
            ": method must be 'f1' or 'quantile', found '", c.method, "'");
  c.image_quantile = get_optional<double>(j, "image_quantile", "", origin);
  c.pixel_quantile = get_optional<double>(j, "pixel_quantile", "", origin);
  c.created = get_key<std::string>(j, "created", "", origin);
  c.version = get_key<std::string>(j, "vcpclip", "", origin);
  c.data = get_key<json>(j, "data", "", origin);
  const json ck = get_key<json>(j, "checkpoint", "", origin);
  c.checkpoint = get_key<std::string>(ck, "path", "checkpoint.", origin);
  c.checkpoint_sha256 = get_key<std::string>(ck, "sha256", "checkpoint.", origin);
  const json cfg = get_key<json>(j, "config", "", origin);
  c.config_path = get_key<std::string>(cfg, "path", "config.", origin);
  c.settings = get_key<json>(cfg, "settings", "config.", origin);
  if (j.contains("precision")) c.precision = get_key<std::string>(j, "precision", "", origin);  // absent: older file
  const json classes = get_key<json>(j, "classes", "", origin);
  VCP_CHECK(classes.is_array() && !classes.empty(), "calibration file ", origin,
            ": 'classes' must be a non-empty list");
  for (size_t i = 0; i < classes.size(); ++i) c.classes.push_back(class_from_json(classes[i], i, origin));
  for (const auto& s : get_key<json>(j, "skipped_classes", "", origin))
    c.skipped.emplace_back(get_key<std::string>(s, "name", "skipped_classes[].", origin),
                           get_key<std::string>(s, "reason", "skipped_classes[].", origin));
  return c;
}

void write_calibration(const Calibration& c, const std::string& path) {
  io::write_file_atomically(path, to_json(c).dump(2) + "\n");
}

Calibration read_calibration(const std::string& path) {
  std::ifstream in(path);
  VCP_CHECK(in, "cannot read calibration file ", path, " (missing or unreadable)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    fail("calibration file ", path, " is not valid JSON: ", e.what());
  }
  return calibration_from_json(j, path);
}

std::vector<std::string> settings_differences(const json& calibration, const json& run) {
  std::vector<std::string> out;
  std::function<void(const json&, const json&, const std::string&)> walk = [&](const json& a, const json& b,
                                                                               const std::string& prefix) {
    if (a.is_object() && b.is_object()) {
      std::map<std::string, int> keys;
      for (auto it = a.begin(); it != a.end(); ++it) keys[it.key()] |= 1;
      for (auto it = b.begin(); it != b.end(); ++it) keys[it.key()] |= 2;
      for (const auto& [k, where] : keys) {
        const std::string name = prefix.empty() ? k : prefix + "." + k;
        if (where == 1)
          out.push_back(name + ": " + a.at(k).dump() + " in the calibration, absent in this run");
        else if (where == 2)
          out.push_back(name + ": absent in the calibration, " + b.at(k).dump() + " in this run");
        else
          walk(a.at(k), b.at(k), name);
      }
    } else if (a != b) {
      out.push_back(prefix + ": " + a.dump() + " in the calibration, " + b.dump() + " in this run");
    }
  };
  walk(calibration, run, "");
  return out;
}

}  // namespace vcpclip::eval
