#pragma once
// `vcpclip synth`: writes a procedural MVTec AD / VisA stand-in (see data/synthetic.h); and the
// generate-once step that demo and ablate share.
#include <ostream>
#include <string>

#include "vcpclip/data/synthetic.h"

namespace vcpclip::app {

/// Generates the dataset and prints a one-paragraph summary (classes, counts, time) to `out`.
data::SynthSummary run_synth(const data::SynthOptions& opts, std::ostream& out);

/// Writes the set unless the same one is already complete: <out>.synth.json (written last)
/// records the options; a set with another or no record is replaced. The set is written to
/// <out>.partial and renamed, so an interrupted run leaves no half set at `out`. `who` prefixes
/// the log lines ("demo", "ablate"). Returns true when it wrote the set.
bool ensure_synthetic(const data::SynthOptions& opts, const std::string& who);

}  // namespace vcpclip::app
