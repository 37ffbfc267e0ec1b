// Terminal progress bar (see include/vcpclip/common/progress.h).
#include "vcpclip/common/progress.h"

#include <unistd.h>

#include <cstdio>

namespace vcpclip {

Progress::Progress(std::string label, int64_t total, std::string unit, bool visible)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      tty_(isatty(fileno(stderr)) != 0),
      visible_(visible),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (!finished_ && done_ > 0) finish();
}

double Progress::rate() const {
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return s > 0 ? done_ / s : 0.0;
}

void Progress::update(int64_t n, const std::string& status) {
  done_ += n;
  if (!status.empty()) status_ = status;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ > std::chrono::milliseconds(100) || done_ >= total_) {
      last_draw_ = now;
      draw(false);
    }
  } else if (total_ > 0) {
    int decile = static_cast<int>(10 * done_ / total_);
    if (decile != last_decile_) {
      last_decile_ = decile;
      draw(false);
    }
  }
}

void Progress::draw(bool final) {
  if (!visible_) return;
  const int width = 30;
  double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done_) / total_) : 0.0;
  int filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar += std::string(width - filled, '.');
  double r = rate();
  double eta = r > 0 && total_ > done_ ? (total_ - done_) / r : 0.0;
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %.2f %s/s eta %.0fs %s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               bar.c_str(), static_cast<long long>(done_), static_cast<long long>(total_), r, unit_.c_str(), eta,
               status_.c_str(), (tty_ && !final) ? "" : "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_)
    draw(true);
  else if (last_decile_ != 10)
    draw(true);
}

}  // namespace vcpclip
