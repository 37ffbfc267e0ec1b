#pragma once
// `vcpclip score --maps DIR --config C [--out DIR] [--aupro exact|reference]`: the metrics of
// docs/design.md §8 from saved maps, without the model. DIR holds <class>/<defect>/<stem>.npy pixel maps
// and scores.json (layout in vcpclip/eval/ground_truth.h; `vcpclip eval --save-maps` writes it);
// the ground truth is the test set of the config's eval.data section (masks preprocessed to the
// maps' size as in docs/design.md §7). Per class: min-max normalisation of maps and scores (reference
// test.py; idempotent on maps already normalised), then all metrics.
// Partial results are failures: an image whose map or score cannot be used (missing or corrupt
// .npy, map/mask size mismatch, NaN, missing score) fails its class, and a class without metrics
// (such an image, no test images) fails the run with every class's error in one line, before any
// report is written. skip_bad leaves such images out instead (the class is scored on the rest);
// allow_partial reports the classes that could be scored, labelled as partial (eval/report.h).
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/data/sample.h"
#include "vcpclip/eval/ground_truth.h"
#include "vcpclip/eval/metrics.h"
#include "vcpclip/eval/report.h"

namespace vcpclip::app {

struct ScoreRequest {
  std::string maps_dir;                  ///< --maps
  std::string config_path;               ///< --config (needs eval.data)
  std::vector<std::string> overrides;    ///< --set key=value
  std::string out_dir;                   ///< --out: metrics.json/.csv/.md ("" = none)
  std::optional<eval::AuproMode> aupro;  ///< --aupro (default: eval.aupro of the config)
  bool skip_bad = false;                 ///< --skip-bad: leave out images whose map/score is unusable
  bool allow_partial = false;            ///< --allow-partial: report even if classes failed
};

struct ScoreResult {
  eval::EvaluationReport report;
  double seconds = 0;
};

ScoreResult run_score(const ScoreRequest& req);

/// A test sample as `score` and `eval --save-maps` name it: key <class>/<defect>/<stem>, where
/// defect is the sample's defect type, else "good" / "anomaly" by its label.
eval::GroundTruthItem ground_truth_item(const data::SampleInfo& sample);

}  // namespace vcpclip::app
