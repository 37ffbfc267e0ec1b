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
// Set VCPCLIP_EVAL_TIMING=1 to print the time of each phase to stderr.
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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

}  // namespace

PixelMetrics pixel_metrics(const PixelData& data, const MetricsOptions& opts, std::vector<std::string>* warnings) {
  const bool timing = std::getenv("VCPCLIP_EVAL_TIMING") != nullptr;
  auto t_last = std::chrono::steady_clock::now();
  auto lap = [&](const char* what) {
    if (!timing) return;
    const auto now = std::chrono::steady_clock::now();
    std::fprintf(stderr, "[pixel_metrics] %s: %.3f s\n", what, std::chrono::duration<double>(now - t_last).count());
    t_last = now;
  };

  int64_t total = 0;
  for (const auto& it : data.items) {
    VCP_CHECK(it.offset == total, "pixel_metrics: items must be contiguous (item at offset ", it.offset, ", expected ",
              total, ")");
    total += it.height * it.width;
  }
  const float* maps = data.maps;
  const uint8_t* masks = data.masks;

  // Pass 1: per-chunk histograms, positives, min/max, NaN check.
  const int64_t nchunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), 16));
  std::vector<int64_t> bounds(nchunks + 1);
  for (int64_t c = 0; c <= nchunks; ++c) bounds[c] = total * c / nchunks;
  std::vector<ChunkStats> stats(nchunks);
  at::parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      auto& s = stats[c];
      s.neg.assign(kBins, 0);
      s.pos.assign(kBins, 0);
      float mn = INFINITY, mx = -INFINITY;
      uint64_t npos = 0;
      for (int64_t i = bounds[c]; i < bounds[c + 1]; ++i) {
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
  });
  uint64_t P = 0;
  float vmin = INFINITY, vmax = -INFINITY;
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
  }
  const uint64_t N = uint64_t(total) - P;
  lap("histogram pass");

  // Regions: 8-connected components of each mask; region id per defect pixel in raster order.
  std::vector<uint32_t> pos_region;
  pos_region.reserve(P);
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
  const uint64_t R = inv_area.size();
  lap("connected components");

  // Pass 2: scatter into bins. Bin b of the normal pixels is neg16[neg_off[b] .. neg_off[b+1]).
  std::vector<uint64_t> neg_off(kBins + 1, 0), pos_off(kBins + 1, 0);
  for (size_t b = 0; b < kBins; ++b) {
    uint64_t nn = 0, np = 0;
    for (int64_t c = 0; c < nchunks; ++c) {
      const uint64_t a = stats[c].neg[b], q = stats[c].pos[b];
      stats[c].neg[b] = neg_off[b] + nn;  // this chunk's write cursor in bin b
      stats[c].pos[b] = pos_off[b] + np;
      nn += a;
      np += q;
    }
    neg_off[b + 1] = neg_off[b] + nn;
    pos_off[b + 1] = pos_off[b] + np;
  }
  std::vector<uint16_t> neg16(N);
  std::vector<uint64_t> pos_items(P);  // (low 16 key bits) << 32 | region id
  std::vector<uint64_t> pos_start(nchunks + 1, 0);
  for (int64_t c = 0; c < nchunks; ++c) pos_start[c + 1] = pos_start[c] + stats[c].positives;
  at::parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      uint64_t* ncur = stats[c].neg.data();
      uint64_t* pcur = stats[c].pos.data();
      uint64_t r = pos_start[c];
      for (int64_t i = bounds[c]; i < bounds[c + 1]; ++i) {
        const uint32_t k = sortable_key(maps[i]);
        if (masks[i]) {
          pos_items[pcur[k >> 16]++] = (uint64_t(k & 0xFFFF) << 32) | pos_region[r++];
        } else {
          neg16[ncur[k >> 16]++] = uint16_t(k & 0xFFFF);
        }
      }
    }
  });
  stats.clear();
  stats.shrink_to_fit();
  std::vector<uint32_t>().swap(pos_region);
  lap("scatter");

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
      for (int64_t i = 0; i < len; ++i)
        th.push_back(float(i == 0 ? start : i == 1 ? start + delta : start + double(i) * d2));
      sweep.set_reference_thresholds(std::move(th));
    } else {
      ref_why = "the anomaly maps are constant";
    }
  }

  // Sweep the bins from the highest score down.
  std::vector<uint32_t> table(kBins, 0);
  for (int64_t b = kBins - 1; b >= 0; --b) {
    uint16_t* nb = neg16.data() + neg_off[b];
    const size_t nn = neg_off[b + 1] - neg_off[b];
    uint64_t* pb = pos_items.data() + pos_off[b];
    const size_t np = pos_off[b + 1] - pos_off[b];
    if (nn + np == 0) continue;
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
    if (nn > 0 && int64_t(nn) >= opts.table_bin_min) {
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
  sweep.finish();
  lap("bins + sweep");

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
      warnings->push_back(
          "no defect pixel in the ground truth; pixel AUROC, AUPRO, AP, F1-max and IoU are undefined (null)");
    } else if (N == 0) {
      warnings->push_back("no normal pixel in the ground truth; pixel AUROC and AUPRO are undefined (null)");
    } else if (!ref_why.empty()) {
      warnings->push_back("reference AUPRO is undefined (null): " + ref_why);
    }
  }
  return out;
}

}  // namespace vcpclip::eval
