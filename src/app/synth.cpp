// `vcpclip synth` and the generate-once step of demo / ablate (see include/vcpclip/app/synth.h).
#include "vcpclip/app/synth.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>

#include "vcpclip/io/atomic_file.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

data::SynthSummary run_synth(const data::SynthOptions& opts, std::ostream& out) {
  data::SynthSummary s = data::generate_synthetic(opts);
  out << "wrote a synthetic " << (opts.layout == "visa" ? "VisA" : "MVTec AD") << "-layout " << opts.set << " set to "
      << opts.out << "\n  classes:";
  for (const auto& c : s.classes) out << " " << c;
  out << "\n  per split: train " << s.train << " normal; test " << s.normal << " normal + " << s.anomalous
      << " anomalous (" << opts.size << "x" << opts.size << ")\n  time: " << std::fixed << std::setprecision(2)
      << s.seconds << " s\n";
  return s;
}

bool ensure_synthetic(const data::SynthOptions& o, const std::string& who) {
  const std::string marker = o.out + ".synth.json";
  const nlohmann::json want = {{"layout", o.layout}, {"set", o.set},    {"classes", o.classes},
                               {"images", o.images}, {"size", o.size},  {"train_images", o.train_images},
                               {"seed", o.seed},     {"kinds", o.kinds}};
  if (fs::exists(o.out) && fs::exists(marker)) {
    std::ifstream in(marker);
    if (nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false) == want) {
      spdlog::info("{}: reusing the synthetic {} set {}", who, o.set, o.out);
      return false;
    }
  }
  fs::remove(marker);
  fs::remove_all(o.out);
  data::SynthOptions tmp = o;
  tmp.out = o.out + ".partial";
  fs::remove_all(tmp.out);
  spdlog::info("{}: generating the synthetic {} set {} ({} layout, {} classes x {} images, {} px)", who, o.set, o.out,
               o.layout, o.classes, o.images, o.size);
  data::generate_synthetic(tmp);
  fs::rename(tmp.out, o.out);
  io::write_file_atomically(marker, want.dump(2) + "\n");
  return true;
}

}  // namespace vcpclip::app
