// Pixel metrics of one class in one descending sweep over all its pixel scores.
//
// Scores become order-preserving 32-bit keys. A first pass (parallel over chunks of pixels)
// histograms the keys' top 16 bits separately for normal and defect pixels, checks for NaN and
// finds min/max. A second pass scatters every pixel into its bin (MSD radix step): a normal
// pixel as its low 16 key bits (2 bytes), a defect pixel as (low 16 bits, region id) (8 bytes).
// Then, bin by bin from the highest, the normal pixels are counted in a 65,536-entry table (big
// bins) or sorted (small bins), the defect pixels are sorted, and the two runs are merged into
// distinct scores with their counts. A defect pixel adds 1/area(region) to the PRO sum, so
// PRO(t) = mean over regions of the covered fraction is a running sum and every metric is O(1)
// per distinct score (see sweep.h).
// Extra memory: 2 bytes per normal pixel + 12 bytes per defect pixel (+ 1 MB per thread).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <opencv2/imgproc.hpp>

#include "sweep.h"
#include "vcpclip/common/error.h"
#include "vcpclip/eval/metrics.h"

namespace vcpclip::eval {
namespace {

constexpr size_t kBins = 65536;

struct ChunkStats {
  std::vector<uint64_t> neg, pos;  // per top-16-bit bin; turned into write cursors later
  uint64_t positives = 0;
  float min = INFINITY, max = -INFINITY;
  int64_t nan_at = -1;
};

/// Pass 1 over chunks of pixels: per-chunk histograms of the top 16 key bits (normal / defect),
/// defect count, min / max, first NaN.
struct Histogram {
  std::vector<int64_t> bounds;  // chunk c is pixels [bounds[c], bounds[c+1])
  std::vector<ChunkStats> stats;
  uint64_t P = 0, N = 0;  // defect / normal pixels
  float vmin = INFINITY, vmax = -INFINITY;
};

/// Pixels of the class; items must be contiguous.
int64_t total_pixels(const PixelData& data) {
  int64_t total = 0;
  for (const auto& it : data.items) {
    VCP_CHECK(it.offset == total, "pixel_metrics: items must be contiguous (item at offset ", it.offset, ", expected ",
              total, ")");
    total += it.height * it.width;
  }
  return total;
}

void histogram_chunk(const float* maps, const uint8_t* masks, int64_t begin, int64_t end, ChunkStats& s) {
  s.neg.assign(kBins, 0);
  s.pos.assign(kBins, 0);
  float mn = INFINITY, mx = -INFINITY;
  uint64_t npos = 0;
  for (int64_t i = begin; i < end; ++i) {
    const float v = maps[i];
    if (std::isnan(v)) {
      s.nan_at = i;
      break;
    }
    mn = std::min(mn, v);
    mx = std::max(mx, v);
    const uint32_t b = sortable_key(v) >> 16;
    if (masks[i]) {
      ++s.pos[b];
      ++npos;
    } else {
      ++s.neg[b];
    }
  }
  s.min = mn;
  s.max = mx;
  s.positives = npos;
}

/// A NaN is an error naming the map and its first NaN pixel.
[[noreturn]] void fail_nan(const PixelData& data, int64_t at) {
  for (size_t k = 0; k < data.items.size(); ++k) {
    const auto& it = data.items[k];
    if (at < it.offset + it.height * it.width) {
      const int64_t p = at - it.offset;
      fail("anomaly map ", k, " contains NaN (first at row ", p / it.width, ", column ", p % it.width, ")");
    }
  }
  fail("anomaly map contains NaN");
}

Histogram histogram_pass(const PixelData& data, int64_t total) {
  Histogram h;
  const int64_t nchunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), 16));
  h.bounds.resize(nchunks + 1);
  for (int64_t c = 0; c <= nchunks; ++c) h.bounds[c] = total * c / nchunks;
  h.stats.resize(nchunks);
  at::parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) histogram_chunk(data.maps, data.masks, h.bounds[c], h.bounds[c + 1], h.stats[c]);
  });
  for (auto& s : h.stats) {
    if (s.nan_at >= 0) fail_nan(data, s.nan_at);
    h.P += s.positives;
    h.vmin = std::min(h.vmin, s.min);
    h.vmax = std::max(h.vmax, s.max);
  }
  h.N = uint64_t(total) - h.P;
  return h;
}

/// Regions: 8-connected components of each mask. Returns the region id of every defect pixel in
/// raster order; `inv_area` gets 1/area of each region.
std::vector<uint32_t> defect_regions(const PixelData& data, uint64_t P, std::vector<double>& inv_area) {
  std::vector<uint32_t> pos_region;
  if (P == 0) return pos_region;
  pos_region.reserve(P);
  cv::Mat labels;
  for (const auto& it : data.items) {
    const uint8_t* m = data.masks + it.offset;
    const int64_t n = it.height * it.width;
    if (std::none_of(m, m + n, [](uint8_t v) { return v != 0; })) continue;
    cv::Mat mask(int(it.height), int(it.width), CV_8U, const_cast<uint8_t*>(m));
    const int count = cv::connectedComponents(mask, labels, 8, CV_32S);
    const uint32_t base = uint32_t(inv_area.size());
    std::vector<uint64_t> area(count, 0);
    const int32_t* lab = labels.ptr<int32_t>();
    for (int64_t i = 0; i < n; ++i)
      if (m[i]) {
        ++area[lab[i]];
        pos_region.push_back(base + uint32_t(lab[i] - 1));
      }
    for (int r = 1; r < count; ++r) inv_area.push_back(1.0 / double(area[r]));
  }
  return pos_region;
}

/// Pass 2 (MSD radix step): bin b of the normal pixels is neg16[neg_off[b] .. neg_off[b+1]) (low
/// 16 key bits), of the defect pixels pos_items[pos_off[b] ..) ((low 16 bits) << 32 | region id).
struct Bins {
  std::vector<uint64_t> neg_off, pos_off;
  std::vector<uint16_t> neg16;
  std::vector<uint64_t> pos_items;
};

/// Turns the per-chunk histograms into per-chunk write cursors and fills the bin offsets.
void bin_offsets(Histogram& h, Bins& bins) {
  bins.neg_off.assign(kBins + 1, 0);
  bins.pos_off.assign(kBins + 1, 0);
  for (size_t b = 0; b < kBins; ++b) {
    uint64_t nn = 0, np = 0;
    for (auto& s : h.stats) {
      const uint64_t a = s.neg[b], q = s.pos[b];
      s.neg[b] = bins.neg_off[b] + nn;  // this chunk's write cursor in bin b
      s.pos[b] = bins.pos_off[b] + np;
      nn += a;
      np += q;
    }
    bins.neg_off[b + 1] = bins.neg_off[b] + nn;
    bins.pos_off[b + 1] = bins.pos_off[b] + np;
  }
}

Bins scatter_pass(const PixelData& data, Histogram& h, const std::vector<uint32_t>& pos_region) {
  Bins bins;
  bin_offsets(h, bins);
  bins.neg16.resize(h.N);
  bins.pos_items.resize(h.P);
  const int64_t nchunks = int64_t(h.stats.size());
  std::vector<uint64_t> pos_start(nchunks + 1, 0);
  for (int64_t c = 0; c < nchunks; ++c) pos_start[c + 1] = pos_start[c] + h.stats[c].positives;
  at::parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      uint64_t* ncur = h.stats[c].neg.data();
      uint64_t* pcur = h.stats[c].pos.data();
      uint64_t r = pos_start[c];
      for (int64_t i = h.bounds[c]; i < h.bounds[c + 1]; ++i) {
        const uint32_t k = sortable_key(data.maps[i]);
        if (data.masks[i]) {
          bins.pos_items[pcur[k >> 16]++] = (uint64_t(k & 0xFFFF) << 32) | pos_region[r++];
        } else {
          bins.neg16[ncur[k >> 16]++] = uint16_t(k & 0xFFFF);
        }
      }
    }
  });
  h.stats.clear();
  h.stats.shrink_to_fit();
  return bins;
}

/// The reference AUPRO thresholds: numpy.arange(min, max, (max - min) / steps) with float32
/// min/max, compared in float32. Returns why they are undefined ("" when set).
std::string set_reference_thresholds(detail::Sweep& sweep, float vmin, float vmax, int steps) {
  const float span = vmax - vmin;
  const double delta = double(span) / double(steps);
  if (!(delta > 0)) return "the anomaly maps are constant";
  const double start = vmin, stop = vmax;
  const int64_t len = int64_t(std::ceil((stop - start) / delta));
  std::vector<float> th;
  th.reserve(len);
  const double d2 = (start + delta) - start;
  for (int64_t i = 0; i < len; ++i)
    th.push_back(float(i == 0 ? start : i == 1 ? start + delta : start + double(i) * d2));
  sweep.set_reference_thresholds(std::move(th));
  return "";
}

/// One bin, from its highest score down: normal pixels counted in `table` (big bins) or sorted,
/// defect pixels sorted, both merged into distinct scores fed to the sweep.
void sweep_bin(detail::Sweep& sweep, Bins& bins, size_t b, const std::vector<double>& inv_area, int64_t table_bin_min,
               std::vector<uint32_t>& table) {
  uint16_t* nb = bins.neg16.data() + bins.neg_off[b];
  const size_t nn = bins.neg_off[b + 1] - bins.neg_off[b];
  uint64_t* pb = bins.pos_items.data() + bins.pos_off[b];
  const size_t np = bins.pos_off[b + 1] - bins.pos_off[b];
  if (nn + np == 0) return;
  std::sort(pb, pb + np, std::greater<uint64_t>());
  const uint32_t high = uint32_t(b) << 16;
  size_t j = 0;  // next defect pixel
  auto add = [&](uint32_t low, uint64_t neg) {
    uint64_t pos = 0;
    double w = 0;
    while (j < np && uint32_t(pb[j] >> 32) == low) {
      ++pos;
      w += inv_area[uint32_t(pb[j])];
      ++j;
    }
    sweep.add(key_to_float(high | low), pos, neg, w);
  };
  auto flush_pos_above = [&](uint32_t low) {  // defect-only scores above `low`
    while (j < np && uint32_t(pb[j] >> 32) > low) add(uint32_t(pb[j] >> 32), 0);
  };
  if (nn > 0 && int64_t(nn) >= table_bin_min) {
    for (size_t i = 0; i < nn; ++i) ++table[nb[i]];
    for (int64_t low = kBins - 1; low >= 0; --low) {
      const uint32_t cnt = table[low];
      if (cnt == 0) continue;
      table[low] = 0;
      flush_pos_above(uint32_t(low));
      add(uint32_t(low), cnt);
    }
  } else {
    std::sort(nb, nb + nn, std::greater<uint16_t>());
    for (size_t i = 0; i < nn;) {
      const uint16_t low = nb[i];
      size_t e = i;
      while (e < nn && nb[e] == low) ++e;
      flush_pos_above(low);
      add(low, e - i);
      i = e;
    }
  }
  flush_pos_above(0);
  if (j < np) add(0, 0);  // defect pixels with low bits 0 and no normal pixel there
}

void add_warnings(std::vector<std::string>* warnings, int64_t total, const Histogram& h, const std::string& ref_why) {
  if (!warnings) return;
  if (total == 0) {
    warnings->push_back("no pixels; pixel metrics are undefined (null)");
  } else if (h.P == 0) {
    warnings->push_back(
        "no defect pixel in the ground truth; pixel AUROC, AUPRO, AP, F1-max and IoU are undefined (null)");
  } else if (h.N == 0) {
    warnings->push_back("no normal pixel in the ground truth; pixel AUROC and AUPRO are undefined (null)");
  } else if (!ref_why.empty()) {
    warnings->push_back("reference AUPRO is undefined (null): " + ref_why);
  }
}

}  // namespace

PixelMetrics pixel_metrics(const PixelData& data, const MetricsOptions& opts, std::vector<std::string>* warnings) {
  const int64_t total = total_pixels(data);
  Histogram h = histogram_pass(data, total);
  std::vector<double> inv_area;
  Bins bins = scatter_pass(data, h, defect_regions(data, h.P, inv_area));
  const uint64_t R = inv_area.size();

  detail::Sweep sweep(h.P, h.N, R, 1e-8, opts);
  std::string ref_why;
  const bool want_ref = opts.aupro == AuproMode::kReference && R > 0 && h.N > 0;
  if (want_ref) ref_why = set_reference_thresholds(sweep, h.vmin, h.vmax, opts.aupro_reference_steps);
  std::vector<uint32_t> table(kBins, 0);
  for (int64_t b = kBins - 1; b >= 0; --b) sweep_bin(sweep, bins, size_t(b), inv_area, opts.table_bin_min, table);
  sweep.finish();

  PixelMetrics out;
  out.auroc = sweep.auroc();
  out.ap = sweep.ap();
  out.f1_max = sweep.f1_max();
  out.f1_threshold = sweep.f1_threshold();
  out.iou = sweep.iou();
  if (opts.aupro == AuproMode::kExact) {
    out.aupro = sweep.aupro_exact();
  } else if (want_ref && ref_why.empty()) {
    out.aupro = sweep.aupro_reference(&ref_why);
  }
  if (opts.curves) {
    out.roc = sweep.roc_curve();
    out.pro = sweep.pro_curve();
  }
  add_warnings(warnings, total, h, ref_why);
  return out;
}

}  // namespace vcpclip::eval
