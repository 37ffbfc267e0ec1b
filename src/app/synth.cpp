// `vcpclip synth`: procedural dataset generation with a readable summary.
#include "vcpclip/app/synth.h"

#include <iomanip>

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

}  // namespace vcpclip::app
