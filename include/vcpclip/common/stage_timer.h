#pragma once
// Wall-clock time per named stage of a run (`predict --profile`, `eval --profile`):
//
//   vcpclip::StageTimer timer(/*enabled=*/true, vcpclip::device_sync(device));
//   { auto s = timer.scope("vision tower"); ... }       // adds the scope's time to the stage
//   timer.add("decode/preprocess", seconds);             // from any thread (loader workers)
//   std::cout << timer.table(total_seconds);             // stages in first-use order, % of total
//
// A disabled timer (the default of every run without --profile) does nothing and costs nothing
// but a branch. `sync` runs before each reading of the clock, so that asynchronous CUDA work is
// charged to the stage that launched it (it is called only when the timer is enabled).
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vcpclip {

class StageTimer {
 public:
  explicit StageTimer(bool enabled = false, std::function<void()> sync = {});

  /// Adds the time from construction to destruction to `stage`.
  class Scope {
   public:
    Scope(StageTimer* timer, std::string stage);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    Scope(Scope&& other) noexcept;
    /// Ends this scope (charging its stage), then continues `other`'s: `t = timer.scope("next");`.
    Scope& operator=(Scope&& other) noexcept;

   private:
    StageTimer* timer_;
    std::string stage_;
    std::chrono::steady_clock::time_point start_;
  };

  /// A scope charging `stage` (nothing when disabled or when `timer` is null).
  static Scope scope(StageTimer* timer, const std::string& stage);
  Scope scope(const std::string& stage) { return Scope(enabled_ ? this : nullptr, stage); }

  /// Adds `seconds` (and one call) to `stage`; thread-safe.
  void add(const std::string& stage, double seconds);
  bool enabled() const { return enabled_; }
  /// Seconds charged to `stage` so far (0 when unknown).
  double seconds(const std::string& stage) const;
  /// Stage names in first-use order.
  std::vector<std::string> stages() const;

  /// A table: stage, seconds, calls, share of `total_seconds` (when > 0), one stage per line.
  std::string table(double total_seconds) const;
  /// {"stages": [{"stage", "seconds", "calls"}...], "total_seconds"}.
  nlohmann::json to_json(double total_seconds) const;

 private:
  struct Entry {
    std::string stage;
    double seconds = 0;
    int64_t calls = 0;
  };
  bool enabled_;
  std::function<void()> sync_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
  void sync() const;
  friend class Scope;
};

}  // namespace vcpclip
