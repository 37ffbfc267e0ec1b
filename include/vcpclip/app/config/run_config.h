#pragma once
// The unified run config (docs/design.md §6, §8): ONE loader for every command that takes --config
// (predict, train, eval, ablate, demo, ...).
//
//   auto cfg = vcpclip::app::load_run_config("configs/eval_mvtec.yaml", {"eval.batch_size=4"});
//   const auto& model = cfg.require_model("eval");     // "eval needs a `model` section in F"
//   const auto& data = cfg.require_eval_data("eval");  // "eval needs an `eval.data` section in F"
//
// load_run_config applies the `--set key=value` overrides first, then parses EVERY known
// top-level section with the parse_* function of its area, whichever command reads the file:
//
//   runtime:      device, threads, seed, log_level                   (parse_runtime_options)
//   model:        model::parse_model_options  (backbone required when the section is present)
//   postprocess:  eval::parse_postprocess_options (alpha, sigma, topk)
//   predict:      app::parse_predict_options
//   train:        train::parse_train_options + train.data, train.val_data (data::parse_data_options,
//                 training defaults for train.data)
//   eval:         batch_size, out_dir, save_maps, export_png, png_limit
//                 + eval.data (data::parse_data_options) + eval::parse_metrics_options keys
//                 (aupro, aupro_fpr_limit, aupro_steps, curves)
//   serve:        app::parse_serve_options (host, port, batching, limits, token)
//   few_shot:     k, seed, folder | data, layers, fusion, weight   (app::parse_few_shot_options)
//
// An unknown or mistyped key anywhere (top level or inside any section) is a vcpclip::Error naming
// the key and the file. Sections absent from the file get their defaults; sections without a
// usable default (model, train.data, eval.data) are std::nullopt and the require_* accessors
// turn that into a clear error for the command that needs them. A new command with its own
// section adds it here (struct member + parse call), so the check stays file-wide.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/app/config/serve_options.h"
#include "vcpclip/app/few_shot.h"
#include "vcpclip/app/predict.h"
#include "vcpclip/common/runtime.h"
#include "vcpclip/data/datasets.h"
#include "vcpclip/eval/metrics.h"
#include "vcpclip/io/config_node.h"
#include "vcpclip/model/model_options.h"
#include "vcpclip/train/train_options.h"

namespace vcpclip::app {

/// `runtime:` section → vcpclip::RuntimeOptions (calls finish(); checks the device text and
/// log level names, not whether CUDA is available).
RuntimeOptions parse_runtime_options(io::ConfigNode& node);

/// `train:` section with its data sub-sections.
struct TrainSection {
  train::TrainOptions options;                ///< train.* keys (see train_options.h)
  std::optional<data::DataOptions> data;      ///< train.data: the training set
  std::optional<data::DataOptions> val_data;  ///< train.val_data: validation set (train.val_classes)
};

/// `eval:` section.
struct EvalSection {
  std::optional<data::DataOptions> data;  ///< eval.data: the test set (split defaults to test)
  eval::MetricsOptions metrics;           ///< eval.aupro, aupro_fpr_limit, aupro_steps, curves
  int64_t batch_size = 8;                 ///< eval.batch_size: images per forward pass
  std::string out_dir = "runs/eval";      ///< eval.out_dir: where metrics.* go (--out overrides)
  bool save_maps = false;                 ///< eval.save_maps: as --save-maps
  bool export_png = false;                ///< eval.export_png: as --export-png
  int64_t png_limit = 0;                  ///< eval.png_limit: PNG strips per class (0 = all)
};
/// Reads the `eval:` section (calls finish()). `eval.data` is parsed when present.
EvalSection parse_eval_section(io::ConfigNode& node);

struct RunConfig {
  std::string path;      ///< the config file
  YAML::Node effective;  ///< the resolved config: every key as used, defaults included, paths absolute
  std::string text;      ///< `effective` as YAML text: logs, and config.yaml beside a run's outputs
  std::vector<std::string> overrides;
  RuntimeOptions runtime;
  std::optional<model::ModelOptions> model;
  PostprocessOptions postprocess;
  PredictOptions predict;
  TrainSection train;
  EvalSection eval;
  ServeOptions serve;
  FewShotOptions few_shot;  ///< `few_shot:` (k 0 = zero-shot)

  /// Changes one key of `effective` (dotted: "model.backbone") and `text`, for the few values a run
  /// changes after loading (the demo's backbone written out); the typed options are set by the caller.
  void set_effective(const std::string& dotted_key, const YAML::Node& value);

  /// The model options, or a vcpclip::Error "<command> needs a `model` section in <path>".
  const model::ModelOptions& require_model(const std::string& command) const;
  /// eval.data, or "<command> needs an `eval.data` section in <path> (...)".
  const data::DataOptions& require_eval_data(const std::string& command) const;
  /// train.data, or "<command> needs a `train.data` section in <path> (...)".
  const data::DataOptions& require_train_data(const std::string& command) const;
};

/// Loads and validates a run config. `overrides` are "a.b.c=value" (values parsed as YAML),
/// applied in order before parsing. Errors: missing/unparsable file, bad override, unknown key
/// anywhere, bad values (all vcpclip::Error naming key and file).
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// The run config a command uses when it is given a checkpoint: `config` when not empty (it wins),
/// else the `config.yaml` beside `checkpoint` (written by train, eval, calibrate and demo). Logs
/// which file it uses. Errors: neither given ("<command>: no run config: pass -c CONFIG ...").
std::string find_run_config(const std::string& config, const std::string& checkpoint, const std::string& command);

/// The text of a run's config.yaml: a comment header, then `yaml` (a resolved config's text).
std::string run_config_file_text(const std::string& yaml);

/// Writes run_config_file_text(yaml) to DIR/config.yaml (atomically, the directory created): the
/// resolved config of a run, which `-k DIR/<checkpoint>` finds without -c. Returns the file's path.
std::string write_run_config(const std::string& yaml, const std::string& dir);

/// Same, from text (`origin` names it in messages; relative paths resolve against the cwd).
RunConfig parse_run_config(const std::string& text, const std::string& origin,
                           const std::vector<std::string>& overrides = {});

}  // namespace vcpclip::app
