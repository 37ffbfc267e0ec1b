// The full-size protocol sets of `bench --only gpu` (app/bench/protocol_sets.h).
#include "vcpclip/app/bench/protocol_sets.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "vcpclip/common/error.h"

namespace vcpclip::app {

ProtocolSets protocol_set_options(const std::string& root, double scale, int threads) {
  VCP_CHECK(scale > 0 && scale <= 1, "protocol sets: expected a scale in (0, 1], found ", scale);
  const auto scaled = [&](int n, int least) { return std::max(least, static_cast<int>(std::lround(n * scale))); };
  ProtocolSets s;
  auto& a = s.auxiliary;
  a.layout = "visa";
  a.set = "auxiliary";
  a.out = (std::filesystem::path(root) / "visa_sized").string();
  a.classes = 12;
  a.total_images = scaled(2162, 2 * a.classes);
  a.train_images = 0;
  a.size = scaled(1000, 16);   // rendered square, then written at 1500 x 1000
  a.width = scaled(1500, 24);  // keeps VisA's 3:2
  a.height = a.size;
  a.seed = 31;
  a.threads = threads;
  auto& t = s.target;
  t.layout = "mvtec";
  t.set = "target";
  t.out = (std::filesystem::path(root) / "mvtec_sized").string();
  t.classes = 15;
  t.total_images = scaled(1725, 2 * t.classes);
  t.train_images = 0;
  t.size = scaled(700, 16);
  t.max_size = std::max(t.size + 1, scaled(1024, 17));
  t.seed = 32;
  t.threads = threads;
  return s;
}

}  // namespace vcpclip::app
