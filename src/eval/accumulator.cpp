// ClassAccumulator: per-class maps / masks / scores and the per-class metrics.
#include "vcpclip/eval/accumulator.h"

#include <algorithm>
#include <cmath>

#include "vcpclip/common/error.h"

namespace vcpclip::eval {

void minmax_normalize(float* data, size_t n) {
  if (n == 0) return;
  float mn = data[0], mx = data[0];
  for (size_t i = 1; i < n; ++i) mn = std::min(mn, data[i]), mx = std::max(mx, data[i]);
  const float span = mx - mn;
  if (span == 0.0f) {
    std::fill(data, data + n, 0.0f);
    return;
  }
  for (size_t i = 0; i < n; ++i) data[i] = (data[i] - mn) / span;
}

void minmax_normalize(double* data, size_t n) {
  if (n == 0) return;
  double mn = data[0], mx = data[0];
  for (size_t i = 1; i < n; ++i) mn = std::min(mn, data[i]), mx = std::max(mx, data[i]);
  const double span = mx - mn;
  if (span == 0.0) {
    std::fill(data, data + n, 0.0);
    return;
  }
  for (size_t i = 0; i < n; ++i) data[i] = (data[i] - mn) / span;
}

ClassAccumulator::ClassAccumulator(std::string name) : name_(std::move(name)) {}

void ClassAccumulator::reserve(size_t maps, int64_t height, int64_t width) {
  ids_.reserve(maps);
  items_.reserve(maps);
  scores_.reserve(maps);
  labels_.reserve(maps);
  maps_.reserve(maps * size_t(height * width));
  masks_.reserve(maps * size_t(height * width));
}

void ClassAccumulator::add(const std::string& id, const float* map, const uint8_t* mask, int64_t height, int64_t width,
                           double score, int label) {
  VCP_CHECK(height > 0 && width > 0, "class '", name_, "', image '", id, "': empty anomaly map (", height, "x", width,
            ")");
  VCP_CHECK(label == 0 || label == 1, "class '", name_, "', image '", id, "': label must be 0 or 1, found ", label);
  VCP_CHECK(!std::isnan(score), "class '", name_, "', image '", id, "': image score is NaN");
  const int64_t n = height * width;
  for (int64_t i = 0; i < n; ++i)
    if (std::isnan(map[i]))
      fail("class '", name_, "', image '", id, "': anomaly map contains NaN (first at row ", i / width, ", column ",
           i % width, ")");
  const int64_t offset = int64_t(maps_.size());
  maps_.insert(maps_.end(), map, map + n);
  if (mask) {
    const size_t m0 = masks_.size();
    masks_.resize(m0 + n);
    for (int64_t i = 0; i < n; ++i) masks_[m0 + i] = mask[i] != 0;
  } else {
    masks_.resize(masks_.size() + n, 0);
  }
  ids_.push_back(id);
  items_.push_back({offset, height, width});
  scores_.push_back(score);
  labels_.push_back(uint8_t(label));
}

void ClassAccumulator::add(const std::string& id, const at::Tensor& map, const at::Tensor& mask, double score,
                           int label) {
  auto squeeze = [](at::Tensor t) {
    while (t.dim() > 2 && t.size(0) == 1) t = t.squeeze(0);
    return t;
  };
  at::Tensor m = squeeze(map);
  VCP_CHECK(m.dim() == 2, "class '", name_, "', image '", id, "': anomaly map must be [H,W], found ", map.sizes());
  VCP_CHECK(m.is_floating_point(), "class '", name_, "', image '", id, "': anomaly map must be floating point, found ",
            map.dtype());
  m = m.to(at::kCPU, at::kFloat).contiguous();
  at::Tensor g;
  if (mask.defined()) {
    g = squeeze(mask);
    VCP_CHECK(g.dim() == 2 && g.size(0) == m.size(0) && g.size(1) == m.size(1), "class '", name_, "', image '", id,
              "': mask size ", g.sizes(), " does not match anomaly map size ", m.sizes());
    g = (g.to(at::kCPU, at::kFloat) > 0.5).to(at::kByte).contiguous();
  }
  add(id, m.data_ptr<float>(), g.defined() ? g.data_ptr<uint8_t>() : nullptr, m.size(0), m.size(1), score, label);
}

void ClassAccumulator::normalize() {
  minmax_normalize(maps_.data(), maps_.size());
  minmax_normalize(scores_.data(), scores_.size());
}

size_t ClassAccumulator::memory_bytes() const {
  return maps_.capacity() * sizeof(float) + masks_.capacity() + scores_.capacity() * sizeof(double) +
         labels_.capacity() + items_.capacity() * sizeof(PixelData::Item);
}

ClassMetrics ClassAccumulator::compute(const MetricsOptions& opts) const {
  VCP_CHECK(!ids_.empty(), "class '", name_, "' has no images to evaluate");
  ClassMetrics out;
  out.name = name_;
  out.num_images = int64_t(ids_.size());
  for (auto l : labels_) out.num_anomalous += l;
  PixelData data;
  data.maps = maps_.data();
  data.masks = masks_.data();
  data.items = items_;
  std::vector<std::string> pw;
  out.pixel = pixel_metrics(data, opts, &pw);
  for (auto& w : pw) out.warnings.push_back("class '" + name_ + "': " + w);
  const auto im =
      binary_metrics(scores_.data(), labels_.data(), scores_.size(), 0.0, "class '" + name_ + "'", &out.warnings);
  out.image.auroc = im.auroc;
  out.image.ap = im.ap;
  out.image.f1_max = im.f1_max;
  return out;
}

}  // namespace vcpclip::eval
