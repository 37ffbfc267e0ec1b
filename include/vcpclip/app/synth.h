#pragma once
// `vcpclip synth`: writes a procedural MVTec AD / VisA stand-in (see data/synthetic.h).
#include <ostream>

#include "vcpclip/data/synthetic.h"

namespace vcpclip::app {

/// Generates the dataset and prints a one-paragraph summary (classes, counts, time) to `out`.
data::SynthSummary run_synth(const data::SynthOptions& opts, std::ostream& out);

}  // namespace vcpclip::app
