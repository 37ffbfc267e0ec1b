#pragma once
// The demo's few-shot stage (app/demo/demo.h, docs/design.md §13): after the zero-shot evaluation of the
// trained head, the same evaluation with k reference images per target class, drawn (seeded) from
// that class's train/good images, never its test images — for every k of demo.few_shot.shots.
//
//   demo:
//     few_shot: {shots: [1, 2, 4], seed: 0}   # shots: [] = no few-shot stage
#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "vcpclip/app/evaluate.h"
#include "vcpclip/io/config_node.h"

namespace vcpclip::app {

struct DemoFewShotOptions {
  std::vector<int64_t> shots{1, 2, 4};  ///< k values, each ≥ 1
  uint64_t seed = 0;                    ///< few_shot.seed of every run
};
/// Reads `demo.few_shot` (calls finish()).
DemoFewShotOptions parse_demo_few_shot(io::ConfigNode& node);

struct FewShotRun {
  int64_t k = 0;
  EvalResult result;
  std::string out_dir;
};

/// Evaluates `zero_shot` (the trained head's request) with k references per class for each k;
/// out_dir = <eval out_dir>_<k>shot, no PNGs.
std::vector<FewShotRun> run_demo_few_shot(const EvalRequest& zero_shot, const DemoFewShotOptions& opts);

/// "zero-shot vs k-shot": class-mean metrics (columns zero-shot, k-shot..., change at the largest
/// k), then per class pixel and image AUROC.
std::string format_few_shot_comparison(const EvalResult& zero_shot, const std::vector<FewShotRun>& runs);

/// summary.json's "few_shot": [{"k", "seed", "out_dir", "mean": {metrics}, "classes": {name: {metrics}}}]
/// and "zero_shot_classes": the per-class metrics of the zero-shot run, for the same comparison.
nlohmann::json few_shot_json(const EvalResult& zero_shot, const std::vector<FewShotRun>& runs, uint64_t seed);

}  // namespace vcpclip::app
