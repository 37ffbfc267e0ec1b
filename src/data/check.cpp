// Dataset validation: counts per class and every problem that would break training/evaluation.
#include "vcpclip/data/check.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <thread>

#include "vcpclip/common/error.h"
#include "vcpclip/common/progress.h"
#include "vcpclip/data/transforms.h"

namespace fs = std::filesystem;

namespace vcpclip::data {
namespace {

struct ItemResult {
  std::vector<std::string> problems, warnings;
  bool mask_exists = false;
};

ItemResult check_item(const SampleInfo& s, bool decode) {
  ItemResult r;
  std::error_code ec;
  cv::Size image_size;
  bool image_ok = false;
  if (decode) {
    try {
      cv::Mat img = read_rgb(s.image_path);
      image_size = img.size();
      image_ok = true;
    } catch (const Error& e) {
      r.problems.push_back(msg("unreadable image: ", e.what()));
    }
  } else if (!fs::is_regular_file(s.image_path, ec)) {
    r.problems.push_back(msg("unreadable image: image file not found: ", s.image_path));
  }
  if (!s.anomaly) return r;
  if (s.mask_path.empty()) {
    r.problems.push_back(msg("anomalous image without a mask path: ", s.image_path));
    return r;
  }
  if (!fs::is_regular_file(s.mask_path, ec)) {
    r.problems.push_back(msg("missing mask: ", s.mask_path, " (for ", s.image_path, ")"));
    return r;
  }
  r.mask_exists = true;
  if (!decode) return r;
  try {
    cv::Mat m = read_mask(s.mask_path);
    if (image_ok && m.size() != image_size)
      r.problems.push_back(msg("mask size ", m.cols, "x", m.rows, " differs from image size ", image_size.width, "x",
                               image_size.height, ": ", s.mask_path, " (for ", s.image_path, ")"));
    else if (cv::countNonZero(m) == 0)
      r.warnings.push_back(msg("mask has no defect pixel: ", s.mask_path, " (for ", s.image_path, ")"));
  } catch (const Error& e) {
    r.problems.push_back(msg("unreadable mask: ", e.what()));
  }
  return r;
}

}  // namespace

int64_t DataReport::total() const {
  int64_t n = 0;
  for (const auto& c : classes) n += c.normal + c.anomalous;
  return n;
}

std::string DataReport::format() const {
  std::ostringstream os;
  os << source << ", split '" << split << "'\n";
  size_t w = 5;
  for (const auto& c : classes) w = std::max(w, c.cls.size());
  auto pad = [](const std::string& s, size_t n) { return s + std::string(n > s.size() ? n - s.size() : 0, ' '); };
  auto num = [](int64_t v) {
    std::string s = std::to_string(v);
    return std::string(s.size() < 9 ? 9 - s.size() : 0, ' ') + s;
  };
  os << pad("class", w) << "   normal  anomalous      masks\n";
  int64_t n = 0, a = 0, m = 0;
  for (const auto& c : classes) {
    os << pad(c.cls, w) << num(c.normal) << "  " << num(c.anomalous) << "  " << num(c.masks) << "\n";
    n += c.normal, a += c.anomalous, m += c.masks;
  }
  os << pad("total", w) << num(n) << "  " << num(a) << "  " << num(m) << "\n";
  for (const auto& p : problems) os << "problem: " << p << "\n";
  for (const auto& p : warnings) os << "warning: " << p << "\n";
  os << (problems.empty() ? "OK: no problems found" : msg(problems.size(), " problem(s) found")) << "\n";
  return os.str();
}

DataReport check_index(const DatasetIndex& index, const std::string& split, const CheckOptions& opts) {
  DataReport rep;
  rep.source = index.source;
  rep.split = split;
  std::map<std::string, size_t> pos;
  for (const auto& c : index.classes) {
    pos[c] = rep.classes.size();
    rep.classes.push_back({c});
  }
  for (const auto& s : index.samples) {
    if (!pos.count(s.cls_name)) {  // a sample of a class the index does not list
      pos[s.cls_name] = rep.classes.size();
      rep.classes.push_back({s.cls_name});
    }
    auto& c = rep.classes[pos[s.cls_name]];
    (s.anomaly ? c.anomalous : c.normal) += 1;
  }
  for (const auto& c : rep.classes)
    if (c.normal + c.anomalous == 0)
      rep.problems.push_back(msg("empty class: ", c.cls, " has no images in split '", split, "'"));

  // Per-item checks in parallel; results merged in sample order so the report is deterministic.
  const size_t n = index.samples.size();
  std::vector<ItemResult> results(n);
  std::atomic<size_t> next{0};
  std::unique_ptr<Progress> bar;
  std::mutex bar_mutex;
  if (opts.progress) bar = std::make_unique<Progress>("data check", static_cast<int64_t>(n), "img");
  auto work = [&]() {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      results[i] = check_item(index.samples[i], opts.decode);
      if (bar) {
        std::lock_guard<std::mutex> lock(bar_mutex);
        bar->update(1);
      }
    }
  };
  const int threads = std::max(1, opts.workers);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (bar) bar->finish();
  for (size_t i = 0; i < n; ++i) {
    const auto& s = index.samples[i];
    if (results[i].mask_exists) rep.classes[pos[s.cls_name]].masks += 1;
    for (auto& p : results[i].problems) rep.problems.push_back(p);
    for (auto& w : results[i].warnings) rep.warnings.push_back(w);
    if (!results[i].problems.empty()) rep.bad_images.insert(s.image_path);
  }
  return rep;
}

DataReport check_dataset(const DataOptions& opts, const CheckOptions& check) {
  return check_index(read_index(opts), opts.split, check);
}

size_t drop_bad(std::vector<SampleInfo>& samples, const DataReport& report) {
  const size_t before = samples.size();
  samples.erase(std::remove_if(samples.begin(), samples.end(),
                               [&](const SampleInfo& s) { return report.bad_images.count(s.image_path) > 0; }),
                samples.end());
  return before - samples.size();
}

}  // namespace vcpclip::data
