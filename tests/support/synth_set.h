#pragma once
// A procedural MVTec-layout target set for the tests that run eval, calibrate or predict on the
// tiny golden VCP fixture (64 px, the fixture's size): made in a fresh folder under the test
// process's temporary directory. Callers keep it in a function-local static, once per process.
#include <filesystem>
#include <sstream>
#include <string>

#include "support/test_util.h"
#include "vcpclip/app/synth.h"

namespace vcpclip::testing {

inline std::filesystem::path make_synth_target_set(const std::string& folder, int classes, int images,
                                                   int train_images) {
  const auto d = fresh_temp_dir(folder);
  data::SynthOptions o;
  o.layout = "mvtec", o.out = d.string(), o.set = "target", o.size = 64;
  o.classes = classes, o.images = images, o.train_images = train_images;
  std::ostringstream sink;
  app::run_synth(o, sink);
  return d;
}

}  // namespace vcpclip::testing
