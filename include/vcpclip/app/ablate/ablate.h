#pragma once
// `vcpclip ablate --config configs/ablations/<name>.yaml`: runs a set of named variants of one
// run config over several seeds (train + eval, or eval only), resumable, and writes a comparison
// table (mean ± sample std over seeds) and a bar chart.
//
// Ablation config (strict: an unknown key anywhere is an error naming it):
//
//   base: ../ablations/base/synthetic.yaml   # a run config with model, train (train.data) and
//                                             # eval (eval.data) sections; relative to this file
//                                             # unless it exists relative to the working directory
//   out_dir: runs/ablate/components           # every run goes to out_dir/<variant>/seed_<s>/
//   seeds: [333, 334]                         # each variant runs once per seed
//   seed_keys: [runtime.seed, model.init_seed]  # (default) run-config keys that receive the seed
//   metrics: [pixel_auroc, pixel_aupro, pixel_ap, image_auroc]  # (default) bars of the chart; any
//                                             # key of eval::metric_columns()
//   set: {train.epochs: 1}                    # (optional) overrides applied to every variant
//   synthetic:                                # (optional) procedural sets generated on first use
//     - {out: "${out_dir}/data/aux", layout: visa, set: auxiliary, classes: 2, images: 8,
//        train_images: 0, size: 64, seed: 0}  # (data::SynthOptions; reused while its options are
//                                             #  unchanged, app::ensure_synthetic)
//   backbones:                                # (optional) demo backbones (app/demo_backbone.h), made
//     - {out: "${out_dir}/model/b.safetensors"}  # before a run whose model.weights is `out`, from
//                                             # its train.data images (reused while unchanged)
//   variants:
//     - name: full                            # [A-Za-z0-9_.-]+, unique
//       set: {}                               # overrides "key: value" (dotted keys, or nested maps)
//     - name: baseline
//       train: true                           # (default true) train, then evaluate last.pth
//       set: {model.use_global: false, model.post_vcp: false}
//     - name: test_normal_abnormal
//       train_from: full                      # evaluate the checkpoint of `full` (same seed); the
//                                             # variant inherits full's overrides, then its own
//       set: {model.templates_normal: ["a photo of a normal <|class|>"]}
//     - name: zero_shot
//       train: false                          # evaluate only: `checkpoint: FILE`, or no checkpoint
//                                             # (the untrained, seeded head)
//
// "${out_dir}" in `synthetic[].out`, `backbones[].out` and in string values of `set` is replaced by out_dir.
// The effective overrides of run (variant v, seed s), applied to `base` with
// app::load_run_config(base, overrides) in this order:
//   top-level set, the set of every variant in v's train_from chain (oldest first), v's set,
//   <seed_keys>=s, train.out_dir=<run>/train, eval.out_dir=<run>/eval.
// Every variant is validated when the ablation config is loaded (before anything runs): an
// unknown or bad key is a vcpclip::Error "ablation config F, variant 'v': <what load_run_config
// says>"; also unknown train_from targets, train_from cycles, duplicate names, train_from
// combined with train: true or checkpoint.
//
// Per run, out_dir/<variant>/seed_<s>/ holds
//   train/         the training run (checkpoints, logs; train/done.json when training finished)
//   eval/          metrics.json, metrics.csv, metrics.md of the evaluation
//   config.yaml    the effective run config
//   results.json   written atomically last: the done-marker (variant, seed, overrides,
//                  "metrics" = mean over classes, "finished_at"); a run with it is skipped.
// A killed run restarts from train/resume.pt when training was under way. A results.json
// written with other overrides is an error (remove that run's directory or use another out_dir).
//
// Summary (out_dir/, atomically): summary.md (table "mean ± std" in %), summary.csv (fractions:
// <metric>_mean, <metric>_std, <metric>_n per variant), summary.json (every run and the
// summary), summary.png (grouped bar chart: one group per variant, one bar per chart metric,
// error bars = std), report.html (the table, the chart and the runs, app/ablate/html.h). Std is
// the sample standard deviation (n − 1); undefined with one value.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/app/demo_backbone.h"
#include "vcpclip/data/synthetic.h"
#include "vcpclip/eval/metrics.h"
#include "vcpclip/io/config_node.h"

namespace vcpclip::app {

struct AblationVariant {
  std::string name;
  bool train = true;                   ///< train, then evaluate out_dir/<name>/seed_<s>/train/last.pth
  std::string train_from;              ///< evaluate this variant's checkpoint (same seed); implies train false
  std::string checkpoint;              ///< eval only: this checkpoint ("" = untrained head)
  std::vector<std::string> overrides;  ///< its own `set`, as "key=value"
};

struct AblationConfig {
  std::string path;  ///< the ablation config file
  std::string base;  ///< the base run config (resolved)
  std::string out_dir;
  std::vector<uint64_t> seeds;
  std::vector<std::string> seed_keys{"runtime.seed", "model.init_seed"};
  std::vector<std::string> metrics{"pixel_auroc", "pixel_aupro", "pixel_ap", "image_auroc"};
  std::vector<std::string> overrides;  ///< top-level `set`
  std::vector<data::SynthOptions> synthetic;
  std::vector<BackboneRecipe> backbones;  ///< made where a run's model.weights is their `out`
  std::vector<AblationVariant> variants;  ///< file order

  const AblationVariant& variant(const std::string& name) const;  ///< Error if unknown
  /// Variants in an order where every train_from target comes before its users (stable).
  std::vector<std::string> run_order() const;
  /// The overrides of run (variant, seed) (see the header comment).
  std::vector<std::string> run_overrides(const std::string& variant, uint64_t seed) const;
  /// Only the configuration part: top-level set + chain + own set (what results.json is checked against).
  std::vector<std::string> variant_overrides(const std::string& variant) const;
  std::string run_dir(const std::string& variant, uint64_t seed) const;
};

/// Reads an ablation config (strict) and validates every variant against the base run config.
/// `out_dir_override` (CLI --out) replaces out_dir when non-empty; `extra_overrides` (CLI --set,
/// "key=value") follow the top-level `set` (a variant's own `set` still wins).
AblationConfig load_ablation_config(const std::string& path, const std::string& out_dir_override = "",
                                    const std::vector<std::string>& extra_overrides = {});
/// Same from parsed text (`origin` names it; relative paths resolve from the working directory).
AblationConfig parse_ablation_config(io::ConfigNode& root, const std::string& out_dir_override = "",
                                     const std::vector<std::string>& extra_overrides = {});

/// Turns a `set:` mapping into "a.b=value" overrides (nested maps flattened; values as flow YAML).
std::vector<std::string> overrides_from_map(const YAML::Node& map, const std::string& where);

/// Mean and sample standard deviation over seeds of one metric (undefined values are left out).
struct MetricSummary {
  int64_t n = 0;           ///< defined values
  eval::Metric mean, std;  ///< std needs n ≥ 2
};
MetricSummary summarize(const std::vector<eval::Metric>& values);

/// One finished (or failed) run.
struct AblationRun {
  std::string variant;
  uint64_t seed = 0;
  /// "skipped" (results.json was already there), "ran", "failed", "pending" (dry run / not reached)
  std::string state;
  std::string error;       ///< why it failed
  nlohmann::json results;  ///< the contents of results.json
};

struct AblationSummary {
  std::vector<AblationRun> runs;  ///< run order
  struct Row {
    std::string variant;
    std::vector<std::pair<std::string, MetricSummary>> metrics;  ///< eval::metric_columns() order
    int64_t runs = 0, failed = 0;
  };
  std::vector<Row> rows;  ///< variants in file order
};

/// Builds the table rows from runs (results["metrics"][key], null = undefined).
AblationSummary summarize_runs(const AblationConfig& cfg, std::vector<AblationRun> runs);

std::string summary_markdown(const AblationConfig& cfg, const AblationSummary& s);
std::string summary_csv(const AblationSummary& s);
nlohmann::json summary_json(const AblationConfig& cfg, const AblationSummary& s);
/// The grouped bar chart as an encoded PNG (cfg.metrics, in %).
std::vector<unsigned char> summary_png(const AblationConfig& cfg, const AblationSummary& s);
/// Writes out_dir/summary.{md,csv,json,png} and out_dir/report.html atomically.
void write_summary(const AblationConfig& cfg, const AblationSummary& s);

struct AblateOptions {
  std::vector<std::string> only;  ///< run only these variants (and what they train_from); empty = all
  bool dry_run = false;           ///< validate, list the runs and their state, run nothing
  bool progress = true;
};

/// Generates missing synthetic sets, runs every (variant, seed) that has no results.json yet,
/// and writes the summary. A failed run is logged, recorded and the others go on (its
/// train_from users fail too); at the end a vcpclip::Error lists the failures.
AblationSummary run_ablation(const AblationConfig& cfg, const AblateOptions& opts = {});

}  // namespace vcpclip::app
