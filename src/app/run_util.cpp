// Helpers shared by demo and ablate (see include/vcpclip/app/run_util.h).
#include "vcpclip/app/run_util.h"

#include <ctime>

namespace vcpclip::app {

std::string substitute_out_dir(std::string s, const std::string& out_dir) {
  const std::string var(kOutDirVar);
  for (size_t p = s.find(var); p != std::string::npos; p = s.find(var, p + out_dir.size()))
    s.replace(p, var.size(), out_dir);
  return s;
}

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace vcpclip::app
