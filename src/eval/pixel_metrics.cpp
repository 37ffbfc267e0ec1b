// Pixel metrics of one class in one descending sweep over all its pixel scores.
//
// Scores become order-preserving 32-bit keys. A first pass histograms the keys' top 16 bits
// (and counts, checks, finds min/max). The 65,536 bins are then cut, from the highest down,
// into groups of at most `sort_chunk` pixels; each group costs one pass over the maps that
// gathers its pixels as (key, payload) pairs and a 3-pass LSD radix sort of them. A single bin
// holding more than `sort_chunk` pixels (many equal scores) is counted in a 65,536-entry table
// instead. The payload of a defect pixel is its 8-connected region id + 1 (0 = normal pixel), so
// the sweep adds 1/area(region) to the PRO sum — PRO(t) = mean over regions of covered fraction
// is then a running sum, and every metric is O(1) per distinct score (see sweep.h).
// Extra memory: 2 × 8 bytes × min(sort_chunk, pixels) + 4 bytes per defect pixel.
#include <ATen/Parallel.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "sweep.h"
#include "vcpclip/common/error.h"
#include "vcpclip/eval/metrics.h"

namespace vcpclip::eval {
namespace {

constexpr size_t kBins = 65536;

struct ChunkStats {
  std::vector<uint64_t> hist;  // per top-16-bit bin
  uint64_t positives = 0;
  float min = INFINITY, max = -INFINITY;
  int64_t nan_at = -1;
};

// LSD radix sort of (key << 32 | payload) by the key, 11/11/10-bit digits; digits that are the
// same for every element are skipped.
void radix_sort(uint64_t* a, uint64_t* tmp, size_t n) {
  const int shifts[3] = {32, 43, 54};
  const int widths[3] = {11, 11, 10};
  std::vector<size_t> count(2048);
  for (int p = 0; p < 3; ++p) {
    const int sh = shifts[p];
    const uint64_t mask = (uint64_t(1) << widths[p]) - 1;
    std::fill(count.begin(), count.end(), 0);
    for (size_t i = 0; i < n; ++i) ++count[(a[i] >> sh) & mask];
    if (n == 0 || count[(a[0] >> sh) & mask] == n) continue;
    size_t sum = 0;
    for (auto& c : count) {
      const size_t t = c;
      c = sum;
      sum += t;
    }
    for (size_t i = 0; i < n; ++i) tmp[count[(a[i] >> sh) & mask]++] = a[i];
    std::memcpy(a, tmp, n * sizeof(uint64_t));
  }
}

}  // namespace

PixelMetrics pixel_metrics(const PixelData& data, const MetricsOptions& opts, std::vector<std::string>* warnings) {
  int64_t total = 0;
  for (const auto& it : data.items) {
    VCP_CHECK(it.offset == total, "pixel_metrics: items must be contiguous (item at offset ", it.offset,
              ", expected ", total, ")");
    total += it.height * it.width;
  }
  const float* maps = data.maps;
  const uint8_t* masks = data.masks;

  // Pass 0: per-chunk histograms, positives, min/max, NaN check.
  const int64_t nchunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), 16));
  std::vector<int64_t> bounds(nchunks + 1);
  for (int64_t c = 0; c <= nchunks; ++c) bounds[c] = total * c / nchunks;
  std::vector<ChunkStats> stats(nchunks);
  at::parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      auto& s = stats[c];
      s.hist.assign(kBins, 0);
      float mn = INFINITY, mx = -INFINITY;
      uint64_t pos = 0;
      for (int64_t i = bounds[c]; i < bounds[c + 1]; ++i) {
        const float v = maps[i];
        if (std::isnan(v)) {
          s.nan_at = i;
          break;
        }
        mn = std::min(mn, v);
        mx = std::max(mx, v);
        ++s.hist[sortable_key(v) >> 16];
        pos += masks[i] != 0;
      }
      s.min = mn;
      s.max = mx;
      s.positives = pos;
    }
  });
  uint64_t P = 0;
  float vmin = INFINITY, vmax = -INFINITY;
  std::vector<uint64_t> hist(kBins, 0);
  for (auto& s : stats) {
    if (s.nan_at >= 0) {
      for (size_t k = 0; k < data.items.size(); ++k) {
        const auto& it = data.items[k];
        if (s.nan_at < it.offset + it.height * it.width) {
          const int64_t p = s.nan_at - it.offset;
          fail("anomaly map ", k, " contains NaN (first at row ", p / it.width, ", column ", p % it.width, ")");
        }
      }
    }
    P += s.positives;
    vmin = std::min(vmin, s.min);
    vmax = std::max(vmax, s.max);
    for (size_t b = 0; b < kBins; ++b) hist[b] += s.hist[b];
  }
  const uint64_t N = uint64_t(total) - P;

  // Regions: 8-connected components of each mask; region id per defect pixel in raster order.
  std::vector<uint32_t> pos_region;
  pos_region.reserve(P + 1);
  std::vector<double> inv_area;
  if (P > 0) {
    cv::Mat labels;
    for (const auto& it : data.items) {
      const uint8_t* m = masks + it.offset;
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
  }
  pos_region.push_back(0);  // sentinel: read (and discarded) past the last defect pixel
  const uint64_t R = inv_area.size();

  detail::Sweep sweep(P, N, R, 1e-8, opts);
  std::string ref_why;
  const bool want_ref = opts.aupro == AuproMode::kReference && R > 0 && N > 0;
  if (want_ref) {
    // numpy.arange(min, max, (max - min) / steps) with float32 min/max, compared in float32.
    const float span = vmax - vmin;
    const double delta = double(span) / double(opts.aupro_reference_steps);
    if (delta > 0) {
      const double start = vmin, stop = vmax;
      const int64_t len = int64_t(std::ceil((stop - start) / delta));
      std::vector<float> th;
      th.reserve(len);
      const double d2 = (start + delta) - start;
      for (int64_t i = 0; i < len; ++i) th.push_back(float(i == 0 ? start : i == 1 ? start + delta : start + double(i) * d2));
      sweep.set_reference_thresholds(std::move(th));
    } else {
      ref_why = "the anomaly maps are constant";
    }
  }

  // Groups of bins, highest first.
  struct Group {
    uint32_t lo, hi;
    uint64_t count;
    bool dense;
  };
  const uint64_t chunk = uint64_t(std::max<int64_t>(opts.sort_chunk, 1024));
  std::vector<Group> groups;
  {
    Group cur{0, 0, 0, false};
    bool open = false;
    for (int64_t b = kBins - 1; b >= 0; --b) {
      const uint64_t c = hist[b];
      if (c == 0) continue;
      if (c > chunk) {
        if (open) groups.push_back(cur), open = false;
        groups.push_back({uint32_t(b), uint32_t(b), c, true});
        continue;
      }
      if (open && cur.count + c > chunk) groups.push_back(cur), open = false;
      if (!open) cur = {uint32_t(b), uint32_t(b), 0, false}, open = true;
      cur.lo = uint32_t(b);
      cur.count += c;
    }
    if (open) groups.push_back(cur);
  }
  uint64_t buf_size = 0;
  for (const auto& g : groups)
    if (!g.dense) buf_size = std::max(buf_size, g.count);
  std::vector<uint64_t> buf(buf_size + nchunks), tmp(buf_size + 1);

  // Where each chunk's defect pixels start in pos_region.
  std::vector<uint64_t> cursor0(nchunks + 1, 0);
  for (int64_t c = 0; c < nchunks; ++c) cursor0[c + 1] = cursor0[c] + stats[c].positives;

  for (const auto& g : groups) {
    if (!g.dense) {
      // Per-chunk output offsets from the per-chunk histograms.
      std::vector<uint64_t> out0(nchunks + 1, 0);
      for (int64_t c = 0; c < nchunks; ++c) {
        uint64_t n = 0;
        for (uint32_t b = g.lo; b <= g.hi; ++b) n += stats[c].hist[b];
        out0[c + 1] = out0[c] + n;
      }
      // Chunk c writes to buf[out0[c] + c, ...): one spare slot per chunk keeps the branch-free
      // append inside its own slice; the slices are closed up afterwards.
      at::parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          uint64_t* out = buf.data() + out0[c] + c;
          uint64_t cur = cursor0[c];
          const uint32_t lo = g.lo, span = g.hi - g.lo;
          for (int64_t i = bounds[c]; i < bounds[c + 1]; ++i) {
            const uint32_t k = sortable_key(maps[i]);
            const uint32_t m = masks[i] != 0;
            const uint64_t payload = (uint64_t(pos_region[cur]) + 1) & (0 - uint64_t(m));
            cur += m;
            const bool in = (k >> 16) - lo <= span;
            *out = (uint64_t(k) << 32) | payload;
            out += in;
          }
        }
      });
      for (int64_t c = 1; c < nchunks; ++c)
        std::memmove(buf.data() + out0[c], buf.data() + out0[c] + c, (out0[c + 1] - out0[c]) * sizeof(uint64_t));
      const size_t n = g.count;
      radix_sort(buf.data(), tmp.data(), n);
      for (size_t i = n; i > 0;) {
        const uint32_t k = uint32_t(buf[i - 1] >> 32);
        uint64_t pos = 0, neg = 0;
        double w = 0;
        while (i > 0 && uint32_t(buf[i - 1] >> 32) == k) {
          const uint32_t p = uint32_t(buf[i - 1]);
          if (p) {
            ++pos;
            w += inv_area[p - 1];
          } else {
            ++neg;
          }
          --i;
        }
        sweep.add(key_to_float(k), pos, neg, w);
      }
    } else {
      std::vector<uint64_t> pos(kBins, 0), neg(kBins, 0);
      std::vector<double> w(kBins, 0.0);
      uint64_t cur = 0;
      for (int64_t i = 0; i < total; ++i) {
        const uint32_t k = sortable_key(maps[i]);
        const bool m = masks[i] != 0;
        if ((k >> 16) == g.lo) {
          const uint32_t idx = k & 0xFFFF;
          if (m) {
            ++pos[idx];
            w[idx] += inv_area[pos_region[cur]];
          } else {
            ++neg[idx];
          }
        }
        cur += m;
      }
      for (int64_t idx = kBins - 1; idx >= 0; --idx)
        if (pos[idx] + neg[idx] > 0) sweep.add(key_to_float((g.lo << 16) | uint32_t(idx)), pos[idx], neg[idx], w[idx]);
    }
  }
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
  if (warnings) {
    if (total == 0) {
      warnings->push_back("no pixels; pixel metrics are undefined (null)");
    } else if (P == 0) {
      warnings->push_back("no defect pixel in the ground truth; pixel AUROC, AUPRO, AP, F1-max and IoU are undefined (null)");
    } else if (N == 0) {
      warnings->push_back("no normal pixel in the ground truth; pixel AUROC and AUPRO are undefined (null)");
    } else if (!ref_why.empty()) {
      warnings->push_back("reference AUPRO is undefined (null): " + ref_why);
    }
  }
  return out;
}

}  // namespace vcpclip::eval
