#pragma once
// The synthetic stand-ins of the paper's protocol at the real datasets' sizes, for the full-size dry
// run of `vcpclip bench --only gpu` (issue 31; docs/benchmarks.md "Next GPU machine"):
//   auxiliary (training) set, VisA-sized: VisA layout, 12 classes, 2,162 test images (normal and
//     anomalous with masks) as JPEG of 1,500 × 1,000 px, no train split (the reference trains on
//     VisA's test split);
//   target (evaluation) set, MVTec-AD-sized: MVTec layout, 15 classes, 1,725 test images as PNG,
//     class sides 700 to 1,024 px, no train split.
// `scale` < 1 shrinks the image counts (at least 2 per class) and sides (at least 16 px) in
// proportion, so that the generation is tested on the CPU at tiny sizes.
#include <string>

#include "vcpclip/data/synthetic.h"

namespace vcpclip::app {

struct ProtocolSets {
  data::SynthOptions auxiliary, target;
};

/// The two sets under `root` (root/visa_sized, root/mvtec_sized), rendered on `threads` threads.
/// Errors: scale outside (0, 1].
ProtocolSets protocol_set_options(const std::string& root, double scale, int threads);

}  // namespace vcpclip::app
