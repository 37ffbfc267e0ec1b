#pragma once
// `vcpclip score --maps DIR --config C [--out DIR] [--aupro exact|reference]`: the metrics of
// DESIGN §8 from saved maps, without the model. DIR holds <class>/<defect>/<stem>.npy pixel maps
// and scores.json (layout in vcpclip/eval/ground_truth.h; `vcpclip eval --save-maps` writes it);
// the ground truth is the test set of the config's eval.data section (masks preprocessed to the
// maps' size as in DESIGN §7). Per class: min-max normalisation of maps and scores (reference
// test.py; idempotent on maps already normalised), then all metrics.
// A class that cannot be scored (missing map, map/mask size mismatch, NaN, missing score, no
// images) is reported with its error and null metrics; the other classes are still scored.
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/eval/metrics.h"
#include "vcpclip/eval/report.h"

namespace vcpclip::app {

struct ScoreRequest {
  std::string maps_dir;                  ///< --maps
  std::string config_path;               ///< --config (needs eval.data)
  std::vector<std::string> overrides;    ///< --set key=value
  std::string out_dir;                   ///< --out: metrics.json/.csv/.md ("" = none)
  std::optional<eval::AuproMode> aupro;  ///< --aupro (default: eval.aupro of the config)
};

struct ScoreResult {
  eval::EvaluationReport report;
  double seconds = 0;
};

ScoreResult run_score(const ScoreRequest& req);

}  // namespace vcpclip::app
