// Per-stage wall-clock profile (see include/vcpclip/common/stage_timer.h).
#include "vcpclip/common/stage_timer.h"

#include <cstdio>

namespace vcpclip {

using Clock = std::chrono::steady_clock;

StageTimer::StageTimer(bool enabled, std::function<void()> sync) : enabled_(enabled), sync_(std::move(sync)) {}

void StageTimer::sync() const {
  if (sync_) sync_();
}

StageTimer::Scope::Scope(StageTimer* timer, std::string stage) : timer_(timer), stage_(std::move(stage)) {
  if (timer_) {
    timer_->sync();
    start_ = Clock::now();
  }
}

StageTimer::Scope::Scope(Scope&& other) noexcept
    : timer_(other.timer_), stage_(std::move(other.stage_)), start_(other.start_) {
  other.timer_ = nullptr;
}

StageTimer::Scope::~Scope() {
  if (!timer_) return;
  timer_->sync();
  timer_->add(stage_, std::chrono::duration<double>(Clock::now() - start_).count());
}

StageTimer::Scope& StageTimer::Scope::operator=(Scope&& other) noexcept {
  if (this == &other) return *this;
  if (timer_) {
    timer_->sync();
    timer_->add(stage_, std::chrono::duration<double>(Clock::now() - start_).count());
  }
  timer_ = other.timer_;
  stage_ = std::move(other.stage_);
  start_ = other.start_;
  other.timer_ = nullptr;
  return *this;
}

StageTimer::Scope StageTimer::scope(StageTimer* timer, const std::string& stage) {
  return Scope(timer && timer->enabled_ ? timer : nullptr, stage);
}

void StageTimer::add(const std::string& stage, double seconds) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& e : entries_) {
    if (e.stage == stage) {
      e.seconds += seconds;
      ++e.calls;
      return;
    }
  }
  entries_.push_back(Entry{stage, seconds, 1});
}

double StageTimer::seconds(const std::string& stage) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& e : entries_)
    if (e.stage == stage) return e.seconds;
  return 0.0;
}

std::vector<std::string> StageTimer::stages() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.stage);
  return out;
}

std::string StageTimer::table(double total_seconds) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "  %-36s %10s %7s %7s\n", "stage", "seconds", "calls", "share");
  out += line;
  for (const auto& e : entries_) {
    std::string share = total_seconds > 0
                            ? std::to_string(static_cast<int>(100.0 * e.seconds / total_seconds + 0.5)) + "%"
                            : std::string("-");
    std::snprintf(line, sizeof line, "  %-36s %10.3f %7lld %7s\n", e.stage.c_str(), e.seconds,
                  static_cast<long long>(e.calls), share.c_str());
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-36s %10.3f\n", "total (wall)", total_seconds);
  return out + line;
}

nlohmann::json StageTimer::to_json(double total_seconds) const {
  std::lock_guard<std::mutex> lock(mutex_);
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& e : entries_) stages.push_back({{"stage", e.stage}, {"seconds", e.seconds}, {"calls", e.calls}});
  return {{"stages", stages}, {"total_seconds", total_seconds}};
}

}  // namespace vcpclip
