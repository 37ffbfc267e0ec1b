#pragma once
// A terminal progress bar for long loops (training, evaluation), written to stderr.
//   Progress bar("train epoch 1", n_batches, "img");
//   bar.update(batch_size, "loss 0.53");   // advances by batch_size units
//   bar.finish();
// Redraws at most 10 times a second; when stderr is not a terminal it logs a line every 10%.
#include <chrono>
#include <cstdint>
#include <string>

namespace vcpclip {

class Progress {
 public:
  /// `visible` false (--no-progress): counts and rates only, nothing is drawn.
  Progress(std::string label, int64_t total, std::string unit = "it", bool visible = true);
  ~Progress();
  /// Advances by `n` units; `status` is shown after the rate (e.g. "loss 0.41").
  void update(int64_t n = 1, const std::string& status = "");
  void finish();
  double rate() const;  ///< units per second so far
  int64_t done() const { return done_; }

 private:
  void draw(bool final);
  std::string label_, unit_, status_;
  int64_t total_, done_ = 0;
  int last_decile_ = -1;
  bool tty_, visible_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace vcpclip
