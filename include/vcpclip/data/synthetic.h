#pragma once
// Procedural stand-ins for MVTec AD / VisA: product images (textures and objects) with realistic
// defects and exact masks, written in the real on-disk layouts so that every reader, `data
// check`, training and evaluation can run end to end without the real datasets.
//
//   auxiliary set (train on it): textures stripes, fabric (weave); objects disk, screw
//   target set (evaluate on it): textures checker, wood (grain); objects plate (rounded square), bottle
// More classes than kinds repeat the kinds with other colours/geometry ("stripes_2", ...), so
// the two sets never share a class name or a kind.
// Defects: scratch, crack, hole, stain, missing (piece), color (spots); each class uses 3 of them.
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "vcpclip/io/config_node.h"

namespace vcpclip::data {

struct SynthOptions {
  std::string layout = "mvtec";   ///< mvtec | visa (the real on-disk layouts)
  std::string out;                ///< output root (created)
  int classes = 4;                ///< number of product classes
  int images = 20;                ///< test images per class (40% normal, 60% anomalous)
  int train_images = -1;          ///< normal training images per class; -1 = images / 2
  int size = 128;                 ///< image side in pixels
  uint64_t seed = 0;              ///< everything is a function of (seed, class, split, index)
  std::string set = "auxiliary";  ///< auxiliary | target (disjoint class/kind sets)
};

struct SynthSummary {
  std::vector<std::string> classes;
  int64_t normal = 0, anomalous = 0, train = 0;  ///< test normal, test anomalous, train normal
  double seconds = 0;
};

/// One rendered item: RGB image, mask (0/255, all zero when normal), defect type ("good").
struct SynthItem {
  cv::Mat rgb;
  cv::Mat mask;
  std::string defect;
};

/// Class names of a set: the first 4 are the kinds, then "<kind>_2", "<kind>_3", ...
std::vector<std::string> synthetic_class_names(const std::string& set, int n);
/// The defect types used for class `index` of a set.
std::vector<std::string> synthetic_defects(const std::string& set, int index);
/// Renders one image of class `index` of `set`; defect "good" renders a normal one.
SynthItem render_synthetic(const std::string& set, int index, const std::string& defect, uint64_t seed, int size);
/// Writes a whole dataset; returns what was written. Errors name the path that failed.
SynthSummary generate_synthetic(const SynthOptions& opts);

/// Reads a config mapping {out (required), layout, set, classes, images, train_images, size, seed}
/// into SynthOptions (the `vcpclip synth` flags), checking values and unknown keys (finish()).
/// `out` is returned as written (callers substitute placeholders such as ${out_dir}).
SynthOptions parse_synth_options(io::ConfigNode& node);

}  // namespace vcpclip::data
