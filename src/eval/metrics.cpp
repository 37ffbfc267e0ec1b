// Options parsing and the small-array (image-level) metrics.
#include "vcpclip/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "sweep.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/config_node.h"

namespace vcpclip::eval {

AuproMode parse_aupro_mode(const std::string& text, const std::string& where) {
  if (text == "exact") return AuproMode::kExact;
  if (text == "reference") return AuproMode::kReference;
  fail(where, ": expected 'exact' or 'reference', found '", text, "'");
}

std::string to_string(AuproMode mode) { return mode == AuproMode::kExact ? "exact" : "reference"; }

MetricsOptions parse_metrics_options(io::ConfigNode& node) {
  MetricsOptions o;
  o.aupro = parse_aupro_mode(node.get<std::string>("aupro", "exact"), "config key " + node.where("aupro"));
  o.aupro_fpr_limit = node.get<double>("aupro_fpr_limit", o.aupro_fpr_limit);
  VCP_CHECK(o.aupro_fpr_limit > 0 && o.aupro_fpr_limit <= 1, "config key ", node.where("aupro_fpr_limit"),
            ": expected a number in (0, 1], found ", o.aupro_fpr_limit);
  o.aupro_reference_steps = node.get<int>("aupro_steps", o.aupro_reference_steps);
  VCP_CHECK(o.aupro_reference_steps >= 2, "config key ", node.where("aupro_steps"),
            ": expected an integer >= 2, found ", o.aupro_reference_steps);
  o.curves = node.get<bool>("curves", o.curves);
  node.finish();
  return o;
}

BinaryMetrics binary_metrics(const double* scores, const uint8_t* labels, size_t n, double f1_eps,
                             const std::string& what, std::vector<std::string>* warnings) {
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  uint64_t P = 0;
  for (size_t i = 0; i < n; ++i) {
    VCP_CHECK(!std::isnan(scores[i]), what, ": image score ", i, " is NaN");
    P += labels[i] ? 1 : 0;
  }
  const uint64_t N = n - P;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return scores[a] > scores[b]; });
  MetricsOptions opts;
  detail::Sweep sweep(P, N, 0, f1_eps, opts);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    uint64_t pos = 0, neg = 0;
    const double v = scores[order[i]];
    while (j < n && scores[order[j]] == v) {
      (labels[order[j]] ? pos : neg) += 1;
      ++j;
    }
    sweep.add(float(v), pos, neg, 0.0);
    i = j;
  }
  sweep.finish();
  BinaryMetrics m;
  m.auroc = sweep.auroc();
  m.ap = sweep.ap();
  m.f1_max = sweep.f1_max();
  m.f1_threshold = sweep.f1_threshold();
  if (warnings) {
    if (n == 0)
      warnings->push_back(what + ": no images; image AUROC, AP and F1-max are undefined (null)");
    else if (P == 0)
      warnings->push_back(what + ": all images are normal; image AUROC, AP and F1-max are undefined (null)");
    else if (N == 0)
      warnings->push_back(what + ": all images are anomalous; image AUROC is undefined (null)");
  }
  return m;
}

}  // namespace vcpclip::eval
