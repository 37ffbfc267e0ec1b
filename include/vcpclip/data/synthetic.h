#pragma once
// Procedural stand-ins for MVTec AD / VisA: product images (textures and objects) with defects
// and exact masks, written in the real on-disk layouts so that every reader, `data check`,
// training and evaluation can run end to end without the real datasets.
//
// Product kinds belong to exactly one set, so an auxiliary (training) set and a target
// (evaluation) set never share a product class:
//   auxiliary: textures stripes, fabric (weave), carpet (mottled felt), mesh (thin grid),
//              metal (brushed); objects disk (washer), screw, capsule (pill), nut (hexagon)
//   target:    textures checker, wood (growth rings); objects plate (rounded tile), bottle
// A set uses the kinds listed in SynthOptions::kinds (default: its first four); more classes than
// kinds repeat them with other colours and geometry ("stripes_2", ...).
// Defects are shared by both sets, as real defect kinds are shared across products: every class
// cycles through scratch (light thin stroke), hole (near-black ellipse), color (saturated spots),
// crack (dark branching line), stain (tinted blobs) and missing (a ragged piece broken off the
// product's edge, exposing dark rough material).
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "vcpclip/io/config_node.h"

namespace vcpclip::data {

struct SynthOptions {
  std::string layout = "mvtec";    ///< mvtec | visa (the real on-disk layouts)
  std::string out;                 ///< output root (created)
  int classes = 4;                 ///< number of product classes
  int images = 20;                 ///< test images per class (40% normal, 60% anomalous)
  int train_images = -1;           ///< normal training images per class; -1 = images / 2
  int size = 128;                  ///< image side in pixels
  uint64_t seed = 0;               ///< everything is a function of (seed, class, split, index)
  std::string set = "auxiliary";   ///< auxiliary | target (disjoint product kinds)
  std::vector<std::string> kinds;  ///< product kinds of `set`, in class order; empty = its first four
  // Full-size stand-ins (`vcpclip bench --only gpu`, the paper's protocol as a dry run):
  int total_images = 0;       ///< > 0: test images of the whole set instead of `images` per class, the
                              ///< first (total % classes) classes one more (VisA: 2,162 over 12 classes)
  int max_size = 0;           ///< > size: class c is rendered at size + (max_size - size)·c / (classes - 1)
                              ///< px (MVTec AD: 700–1,024)
  int width = 0, height = 0;  ///< > 0: every image and mask written at width × height, rendered at
                              ///< `size` and resized (masks: nearest; VisA: 1,500 × 1,000)
  int threads = 1;            ///< classes rendered in parallel; the files are the same for any count
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

/// Every product kind of a set ("auxiliary" or "target"), in catalogue order.
std::vector<std::string> synthetic_kinds(const std::string& set);
/// The defect kinds, in the order the anomalous images of every class cycle through them.
const std::vector<std::string>& synthetic_defect_kinds();
/// Class names of a set: kinds[i % k], then "<kind>_2", "<kind>_3", ... (kinds empty = the set's
/// first four). Errors: unknown set, a kind of another set or unknown, a kind listed twice.
std::vector<std::string> synthetic_class_names(const std::string& set, int n,
                                               const std::vector<std::string>& kinds = {});
/// Renders one image of product `kind`, colour/geometry variant `variant` (0 = first round of
/// classes); defect "good" renders a normal one.
SynthItem render_synthetic(const std::string& kind, int variant, const std::string& defect, uint64_t seed, int size);
/// Writes a whole dataset; returns what was written. Errors name the path that failed.
SynthSummary generate_synthetic(const SynthOptions& opts);

/// Reads a config mapping {out (required), layout, set, classes, images, train_images, size, seed,
/// kinds} into SynthOptions (the `vcpclip synth` flags), checking values and unknown keys
/// (finish()). `out` is returned as written (callers substitute placeholders such as ${out_dir}).
SynthOptions parse_synth_options(io::ConfigNode& node);

}  // namespace vcpclip::data
