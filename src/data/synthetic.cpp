// Procedural product images with defects and exact masks, written as MVTec AD or VisA
// (see data/synthetic.h; products in synthetic_products.cpp, defects in synthetic_defects.cpp).
#include "vcpclip/data/synthetic.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <map>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "synthetic_draw.h"
#include "vcpclip/common/error.h"

namespace fs = std::filesystem;

namespace vcpclip::data {
namespace {

using synth::mix;

void check_set(const std::string& set) {
  VCP_CHECK(set == "auxiliary" || set == "target", "synthetic set must be 'auxiliary' or 'target', found '", set, "'");
}

std::vector<std::string> kinds_or_default(const std::string& set, const std::vector<std::string>& kinds) {
  check_set(set);
  if (!kinds.empty()) return kinds;
  auto all = synthetic_kinds(set);
  all.resize(std::min<size_t>(all.size(), 4));
  return all;
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

/// Lighting gradient and sensor noise over the whole image (defects included) → 8-bit RGB.
cv::Mat expose(const cv::Mat& img, synth::Rng& r) {
  const int size = img.rows;
  const double gx = r.uni(-0.1, 0.1), gy = r.uni(-0.1, 0.1);
  std::normal_distribution<float> noise(0.f, 2.5f);
  cv::Mat rgb(size, size, CV_8UC3);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const float g = static_cast<float>(1.0 + gx * (x - size / 2.0) / size + gy * (y - size / 2.0) / size);
      const cv::Vec3f v = img.at<cv::Vec3f>(y, x) * g;
      for (int k = 0; k < 3; ++k) rgb.at<cv::Vec3b>(y, x)[k] = cv::saturate_cast<uint8_t>(v[k] + noise(r.g));
    }
  return rgb;
}

/// Writes the images of one class; VisA rows are appended to `csv`.
class ClassWriter {
 public:
  ClassWriter(const SynthOptions& o, const std::string& cls, std::ostringstream& csv)
      : o_(o), cls_(cls), csv_(csv), visa_(o.layout == "visa") {}

  /// The item at the written size (SynthOptions::width × height), unchanged when not set.
  SynthItem sized(SynthItem it) const {
    if (o_.width <= 0 || o_.height <= 0) return it;
    const cv::Size to(o_.width, o_.height);
    cv::resize(it.rgb, it.rgb, to, 0, 0, cv::INTER_LINEAR);
    cv::resize(it.mask, it.mask, to, 0, 0, cv::INTER_NEAREST);
    return it;
  }

  void train_normal(const SynthItem& it, int i) {
    if (visa_) return normal(it, "train");
    write_image(fs::path(o_.out) / cls_ / "train" / "good" / (zero_pad(i, 3) + ".png"), it.rgb, false);
  }
  void test_normal(const SynthItem& it, int i) {
    if (visa_) return normal(it, "test");
    write_image(fs::path(o_.out) / cls_ / "test" / "good" / (zero_pad(i, 3) + ".png"), it.rgb, false);
  }
  void anomalous(const SynthItem& it, int i) {
    const fs::path root(o_.out);
    if (visa_) {
      const std::string img = cls_ + "/Data/Images/Anomaly/" + zero_pad(i, 3) + ".JPG";
      const std::string mask = cls_ + "/Data/Masks/Anomaly/" + zero_pad(i, 3) + ".png";
      write_image(root / img, it.rgb, true);
      write_mask(root / mask, it.mask, 1);  // VisA: any value > 0 is defect
      csv_ << cls_ << ",test,anomaly," << img << "," << mask << "\r\n";
      return;
    }
    const std::string stem = zero_pad(per_defect_[it.defect]++, 3);
    write_image(root / cls_ / "test" / it.defect / (stem + ".png"), it.rgb, false);
    write_mask(root / cls_ / "ground_truth" / it.defect / (stem + "_mask.png"), it.mask, 255);
  }

 private:
  void normal(const SynthItem& it, const char* split) {
    const std::string rel = cls_ + "/Data/Images/Normal/" + zero_pad(visa_normal_++, 4) + ".JPG";
    write_image(fs::path(o_.out) / rel, it.rgb, true);
    csv_ << cls_ << "," << split << ",normal," << rel << ",\r\n";
  }

  const SynthOptions& o_;
  const std::string cls_;
  std::ostringstream& csv_;
  const bool visa_;
  int visa_normal_ = 0;
  std::map<std::string, int> per_defect_;
};

/// Runs fn(0 .. n-1) on up to `threads` threads (each index once); the first error is rethrown.
void run_classes_in_parallel(int n, int threads, const std::function<void(int)>& fn) {
  std::atomic<int> next{0};
  std::exception_ptr error;
  std::mutex mutex;
  auto work = [&] {
    for (int i = next++; i < n; i = next++) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min(threads, n); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

void check_options(const SynthOptions& o) {
  VCP_CHECK(o.layout == "mvtec" || o.layout == "visa", "synthetic layout must be 'mvtec' or 'visa', found '", o.layout,
            "'");
  check_set(o.set);
  VCP_CHECK(!o.out.empty(), "no output directory given for the synthetic dataset");
  VCP_CHECK(o.images >= 2, "synthetic images per class must be >= 2 (normal + anomalous), found ", o.images);
  VCP_CHECK(o.size >= 16, "synthetic image size must be >= 16, found ", o.size);
  VCP_CHECK(o.total_images == 0 || o.total_images >= 2 * o.classes, "synthetic total_images must be 0 or >= 2 per ",
            "class (", 2 * o.classes, " for ", o.classes, " classes), found ", o.total_images);
  VCP_CHECK((o.width > 0) == (o.height > 0) && o.width >= 0 && o.height >= 0,
            "synthetic width and height must be set together (both > 0) or not at all, found ", o.width, " x ",
            o.height);
  VCP_CHECK(o.threads >= 1, "synthetic threads must be >= 1, found ", o.threads);
}

}  // namespace

std::vector<std::string> synthetic_kinds(const std::string& set) {
  check_set(set);
  std::vector<std::string> out;
  for (const auto& k : synth::product_catalogue())
    if (set == k.set) out.push_back(k.name);
  return out;
}

const std::vector<std::string>& synthetic_defect_kinds() {
  static const std::vector<std::string> kinds{"scratch", "hole", "color", "crack", "stain", "missing"};
  return kinds;
}

std::vector<std::string> synthetic_class_names(const std::string& set, int n, const std::vector<std::string>& kinds) {
  const auto use = kinds_or_default(set, kinds);
  VCP_CHECK(n >= 1, "number of synthetic classes must be >= 1, found ", n);
  std::set<std::string> seen;
  for (const auto& k : use) {
    const auto& kind = synth::product_kind(k);
    VCP_CHECK(set == kind.set, "synthetic product kind '", k, "' belongs to the ", kind.set, " set, not the ", set,
              " set (the two sets never share a product); ", set, " kinds: ", [&] {
                std::string list;
                for (const auto& s : synthetic_kinds(set)) list += (list.empty() ? "" : ", ") + s;
                return list;
              }());
    VCP_CHECK(seen.insert(k).second, "synthetic product kind '", k, "' is listed twice");
  }
  std::vector<std::string> out;
  const int k = static_cast<int>(use.size());
  for (int i = 0; i < n; ++i) out.push_back(use[i % k] + (i >= k ? "_" + std::to_string(i / k + 1) : ""));
  return out;
}

SynthItem render_synthetic(const std::string& kind, int variant, const std::string& defect, uint64_t seed, int size) {
  VCP_CHECK(size >= 16, "synthetic image size must be >= 16, found ", size);
  const synth::ClassStyle st = synth::class_style(kind, variant);
  synth::Rng r(seed);
  synth::Canvas c;
  synth::product_kind(kind).render(st, r, size, c);
  SynthItem item;
  item.defect = defect;
  if (defect == "good") {
    item.mask = cv::Mat::zeros(size, size, CV_8U);
  } else {
    const int min_area = std::max(6, size * size / 800);
    const cv::Mat saved = c.img.clone();
    for (int attempt = 0;; ++attempt) {
      item.mask = synth::draw_defect(defect, r, size, c);
      if (cv::countNonZero(item.mask) >= min_area || attempt >= 20) break;
      saved.copyTo(c.img);
    }
  }
  item.rgb = expose(c.img, r);
  return item;
}

SynthSummary generate_synthetic(const SynthOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  check_options(o);
  const auto kinds = kinds_or_default(o.set, o.kinds);
  const fs::path root(o.out);
  std::error_code ec;
  fs::create_directories(root, ec);
  VCP_CHECK(fs::is_directory(root), "cannot create output directory ", root.string(), ec ? ": " + ec.message() : "");
  const uint64_t set_id = synth::hash_str(o.set);
  const auto& defects = synthetic_defect_kinds();

  SynthSummary sum;
  sum.classes = synthetic_class_names(o.set, o.classes, kinds);
  std::vector<std::ostringstream> csvs(static_cast<size_t>(o.classes));
  std::vector<std::array<int64_t, 3>> counts(static_cast<size_t>(o.classes), {0, 0, 0});
  auto one_class = [&](int ci) {
    const int images = o.total_images > 0 ? o.total_images / o.classes + (ci < o.total_images % o.classes) : o.images;
    const int size = o.max_size > o.size && o.classes > 1 ? o.size + (o.max_size - o.size) * ci / (o.classes - 1)
                                                          : std::max(o.size, o.max_size);
    const int train_n = o.train_images < 0 ? std::max(1, images / 2) : o.train_images;
    const int normal_n = std::max(1, static_cast<int>(std::lround(images * 0.4)));
    const int anomalous_n = images - normal_n;
    const std::string& kind = kinds[ci % kinds.size()];
    const int variant = ci / static_cast<int>(kinds.size());
    const uint64_t cls_seed = mix(mix(o.seed, set_id), static_cast<uint64_t>(ci));
    auto item_seed = [&](int split, int i) { return mix(mix(cls_seed, static_cast<uint64_t>(split)), i); };
    ClassWriter w(o, sum.classes[ci], csvs[ci]);
    for (int i = 0; i < train_n; ++i)
      w.train_normal(w.sized(render_synthetic(kind, variant, "good", item_seed(0, i), size)), i);
    for (int i = 0; i < anomalous_n; ++i)
      w.anomalous(w.sized(render_synthetic(kind, variant, defects[i % defects.size()], item_seed(2, i), size)), i);
    for (int i = 0; i < normal_n; ++i)
      w.test_normal(w.sized(render_synthetic(kind, variant, "good", item_seed(1, i), size)), i);
    counts[ci] = {train_n, anomalous_n, normal_n};
  };
  run_classes_in_parallel(o.classes, o.threads, one_class);
  std::ostringstream csv;
  if (o.layout == "visa") csv << "object,split,label,image,mask\r\n";
  for (int ci = 0; ci < o.classes; ++ci) {
    csv << csvs[ci].str();
    sum.train += counts[ci][0], sum.anomalous += counts[ci][1], sum.normal += counts[ci][2];
  }
  if (o.layout == "visa") {
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
  o.kinds = node.get<std::vector<std::string>>("kinds", o.kinds);
  try {
    synthetic_class_names(o.set, o.classes, o.kinds);
  } catch (const Error& e) {
    fail("config key ", node.where("kinds"), ": ", e.what());
  }
  node.finish();
  return o;
}

}  // namespace vcpclip::data
