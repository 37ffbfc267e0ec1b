// Held-out false alarms with and without references (see include/vcpclip/app/calibrate/reference_check.h).
#include "vcpclip/app/calibrate/reference_check.h"

#include <cstdio>

#include "vcpclip/common/error.h"
#include "vcpclip/eval/calibration.h"
#include "vcpclip/eval/decision.h"

namespace vcpclip::app {

namespace {

bool held_out(size_t i, size_t n) { return n < 4 ? i + 1 == n : i % 4 == 3; }

/// False alarms on the held-out images of `acc` under the quantile calibration of the others.
int64_t false_alarms(const eval::ClassAccumulator& acc, double iq, double pq) {
  eval::ClassAccumulator kept(acc.name());
  for (size_t i = 0; i < acc.size(); ++i)
    if (!held_out(i, acc.size()))
      kept.add(acc.id(i), acc.map(i), nullptr, acc.height(i), acc.width(i), acc.score(i), 0);
  const auto cal = eval::quantile_class_calibration(kept, iq, pq);
  int64_t n = 0;
  for (size_t i = 0; i < acc.size(); ++i)
    if (held_out(i, acc.size()) && eval::class_score(acc.score(i), cal) >= cal.image_threshold) ++n;
  return n;
}

double share(int64_t n, int64_t of) { return of ? static_cast<double>(n) / static_cast<double>(of) : 0.0; }

}  // namespace

std::string HeldOutCheck::warning() const {
  if (false_alarms_with <= false_alarms_without) return "";
  char b[512];
  std::snprintf(b, sizeof b,
                "references raise false alarms on class '%s': of %lld good images held out of the calibration, "
                "%lld were called defective with the references and %lld without them; the reference images "
                "probably do not show how good '%s' parts normally vary: add more varied good images, or inspect "
                "this product without references (few_shot.k: 0)",
                name.c_str(), static_cast<long long>(held_out), static_cast<long long>(false_alarms_with),
                static_cast<long long>(false_alarms_without), name.c_str());
  return b;
}

std::vector<HeldOutCheck> held_out_false_alarms(const std::vector<eval::ClassAccumulator>& with,
                                                const std::vector<eval::ClassAccumulator>& without,
                                                double image_quantile, double pixel_quantile) {
  VCP_CHECK(with.size() == without.size(), "reference check: ", with.size(), " classes with references, ",
            without.size(), " without");
  std::vector<HeldOutCheck> out;
  for (size_t c = 0; c < with.size(); ++c) {
    VCP_CHECK(with[c].size() == without[c].size() && with[c].name() == without[c].name(), "reference check: class '",
              with[c].name(), "' has other images with and without references");
    if (with[c].size() < 2) continue;
    HeldOutCheck h;
    h.name = with[c].name();
    for (size_t i = 0; i < with[c].size(); ++i) h.held_out += held_out(i, with[c].size());
    h.false_alarms_with = false_alarms(with[c], image_quantile, pixel_quantile);
    h.false_alarms_without = false_alarms(without[c], image_quantile, pixel_quantile);
    out.push_back(h);
  }
  return out;
}

nlohmann::json held_out_json(const std::vector<HeldOutCheck>& checks) {
  nlohmann::json classes = nlohmann::json::array();
  for (const auto& h : checks)
    classes.push_back({{"name", h.name},
                       {"held_out", h.held_out},
                       {"false_alarms_with_references", h.false_alarms_with},
                       {"false_alarms_without_references", h.false_alarms_without},
                       {"share_with_references", share(h.false_alarms_with, h.held_out)},
                       {"share_without_references", share(h.false_alarms_without, h.held_out)},
                       {"references_raise_false_alarms", h.false_alarms_with > h.false_alarms_without}});
  return {{"held_out", "every 4th good image of each class (the last one of a class of 2 or 3)"}, {"classes", classes}};
}

std::string held_out_table(const std::vector<HeldOutCheck>& checks) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-20s %8s %28s %28s\n", "class", "held out", "false alarms with references",
                "without references");
  out += line;
  for (const auto& h : checks) {
    std::snprintf(line, sizeof line, "%-20s %8lld %20lld (%5.1f %%) %20lld (%5.1f %%)\n", h.name.c_str(),
                  static_cast<long long>(h.held_out), static_cast<long long>(h.false_alarms_with),
                  100 * share(h.false_alarms_with, h.held_out), static_cast<long long>(h.false_alarms_without),
                  100 * share(h.false_alarms_without, h.held_out));
    out += line;
  }
  return out;
}

}  // namespace vcpclip::app
