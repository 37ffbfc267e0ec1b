#pragma once
// vcpclip's public inference API: anomaly maps, scores and (with a calibration) OK/NG decisions
// and masks for single images, from a program that links vcpclip (CMake:
// find_package(vcpclip) + target_link_libraries(app PRIVATE vcpclip::vcpclip)).
//
//   vcpclip::Inferencer inf({"configs/predict_tiny.yaml", "tiny_vcp.pth", "calibration.json"});
//   cv::Mat image = cv::imread("part.png");                 // BGR, any size
//   vcpclip::Prediction p = inf.predict(image);             // map at the image's size, score
//   if (p.decision) std::cout << p.decision->label();       // "ok" | "ng"
//   cv::imwrite("part_mask.png", p.decision->mask);
//
// Per image (docs/design.md §6), exactly what `vcpclip predict` computes: the image is resized to
// S×S (PIL-exact bicubic) and CLIP-normalised, one forward pass gives M_raw and M_post, the pixel
// map is gaussian(alpha·M_raw + (1 − alpha)·M_post) and the score mean top-k M_raw + mean top-k
// M_post (eval's float32 sum). With a calibration, the decision, the threshold-centred score, the
// mask and its regions are those of `predict --calibration` (eval/decision.h).
//
// Thread safety: predict() may be called concurrently from several threads on one Inferencer.
// Pre- and post-processing run in parallel; the forward passes are serialised by a mutex (each
// one already uses all intra-op threads).
//
// Errors are vcpclip::Error exceptions with the messages the CLI prints (the same library calls
// produce them): a missing config key, checkpoint or vocabulary, a calibration made for another
// checkpoint or config, an unusable image.
#include <memory>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/common/error.h"
#include "vcpclip/eval/decision.h"

namespace vcpclip {

using Region = eval::Region;      ///< bounding box (x, y, width, height) and area of a mask region
using Decision = eval::Decision;  ///< OK/NG, threshold-centred score, mask, regions

/// What an Inferencer is built from.
struct InferencerOptions {
  std::string config;       ///< run config YAML (sections model, postprocess, runtime; others are checked too)
  std::string checkpoint;   ///< the method's checkpoint in its official layout (.pth), required
  std::string calibration;  ///< calibration.json ("" = maps and scores only, no decisions)
  /// The calibration's class ("" = its only class), and the product class that the prompts of a
  /// method like APRIL-GAN name (model.method april_gan: required, here or through the calibration).
  std::string class_name;
  std::vector<std::string> overrides;  ///< "key=value" config overrides, as --set
  std::string config_text;             ///< the run config as YAML text instead of a file (used when config is "")
  /// Few-shot (docs/design.md §13): a folder of normal images of the product (k of them with
  /// few_shot.k > 0, else all) or a saved reference memory (.safetensors); "" = few_shot.folder,
  /// or zero-shot. The memory is built once, here; a calibration must have been made with it.
  std::string reference;
};

/// Channel order of the images passed to predict().
enum class ColorOrder { kBGR, kRGB };

struct Prediction {
  cv::Mat map;                       ///< CV_32FC1 pixel map at the input's size (bilinear from S×S), unnormalised
  double score = 0;                  ///< image score, unnormalised (as eval, before its per-class min-max)
  std::optional<Decision> decision;  ///< with a calibration: ok/ng, normalised score, mask (input size), regions
};

class Inferencer {
 public:
  /// Loads the config (every key checked), applies its runtime section (device, threads, seed,
  /// log level; process-wide, as the CLI does), builds the model, loads the checkpoint and, when
  /// given, the calibration (refused for another checkpoint or config). The first Inferencer of a
  /// process may re-initialise OpenBLAS's kernels (vcpclip/common/blas_kernels.h): construct it
  /// before other threads of the application run BLAS, or set OPENBLAS_CORETYPE yourself.
  explicit Inferencer(const InferencerOptions& options);
  ~Inferencer();
  Inferencer(Inferencer&&) noexcept;
  Inferencer& operator=(Inferencer&&) noexcept;

  /// One image: CV_8U or CV_16U with 1 (grey), 3 or 4 (alpha ignored) channels, any size.
  Prediction predict(const cv::Mat& image, ColorOrder order = ColorOrder::kBGR) const;

  /// Several images in ONE forward pass (what `vcpclip serve` batches): element i is what
  /// predict(images[i]) gives, up to the BLAS rounding of a larger batch. Empty in, empty out.
  std::vector<Prediction> predict_batch(const std::vector<cv::Mat>& images, ColorOrder order = ColorOrder::kBGR) const;

  int64_t image_size() const;  ///< S, the model's working size
  bool calibrated() const;
  /// Reference images in the few-shot memory (0: zero-shot).
  int64_t reference_shots() const;
  /// The precision the model runs in: "fp32", "bf16", ... (runtime.precision auto resolved by the
  /// start-up GEMM probe, README "Precision and BLAS kernels").
  std::string precision() const;
  /// The choice as JSON text: {"requested", "used"} and, for auto, "probe" with both rates in
  /// GFLOP/s (model/precision_probe.h), as `predict` writes it into scores.json.
  std::string precision_report() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vcpclip
