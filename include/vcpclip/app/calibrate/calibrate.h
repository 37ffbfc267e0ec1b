#pragma once
// `vcpclip calibrate` (docs/design.md §6, §8): per-class thresholds that turn maps and scores into
// OK/NG decisions and masks, written to OUT/calibration.json (format: eval/calibration.h).
//
//   method f1        the labelled images of `eval.data`: runs the evaluation (app/evaluate.h) and
//                    takes eval's F1-optimal image and pixel thresholds, so that predict
//                    --calibration reproduces eval's F1-optimal decisions on that set exactly;
//                    OUT also gets eval's metrics.json/csv/md of the calibration set.
//   method quantile  the NORMAL images of `eval.data` only (e.g. MVTec AD's train/good with
//                    --set eval.data.split=train): the image_quantile of their class scores and
//                    the pixel_quantile of their pixels; anomalous images are ignored.
// `eval --calibration-out F` writes the f1 calibration of its run as a by-product.
//
// The file records the method, the data, the checkpoint's SHA-256, the config path and the
// settings that determine maps and scores (app/decider.h); predict --calibration and
// vcpclip::Inferencer refuse it for another checkpoint or config.
#include <string>
#include <vector>

#include "vcpclip/app/evaluate.h"
#include "vcpclip/eval/calibration.h"

namespace vcpclip::app {

struct CalibrateRequest {
  EvalRequest eval;               ///< runtime, model, postprocess, eval.data, checkpoint (required), out_dir
  std::string method = "f1";      ///< f1 | quantile
  double image_quantile = 0.99;   ///< quantile method: of the normal images' class scores
  double pixel_quantile = 0.999;  ///< quantile method: of the normal images' pixels
};

/// From a loaded run config (as eval: model and eval.data required); out_dir = runs/calibrate.
CalibrateRequest make_calibrate_request(const RunConfig& cfg);

/// OUT/calibration.json
std::string calibration_path(const std::string& out_dir);

/// Runs the calibration, writes OUT/calibration.json and returns it. Errors: no checkpoint, an
/// unknown method, a quantile outside [0, 1], no usable class (each class's reason listed).
eval::Calibration run_calibrate(const CalibrateRequest& req);

/// eval --calibration-out: the f1 calibration of an evaluation. `ranges` were taken before the
/// per-class normalisation, `normalised` are the accumulators after it, `result` has eval's metrics.
/// Classes without F1 thresholds are listed as skipped; none usable is an error.
void write_eval_calibration(const EvalRequest& req, const std::vector<eval::ClassRange>& ranges,
                            const std::vector<eval::ClassAccumulator>& normalised, const EvalResult& result);

/// Table for the terminal: class | images | anomalous | image thr | pixel thr | image F1 | pixel F1,
/// then the skipped classes.
std::string format_calibration_table(const eval::Calibration& cal);

}  // namespace vcpclip::app
