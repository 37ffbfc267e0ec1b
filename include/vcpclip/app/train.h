#pragma once
// `vcpclip train --config C [--set key=value ...] [--resume] [--init-from K] [--max-steps N]`
// (docs/design.md §7): the run config (app::load_run_config: runtime, model, train with train.data /
// train.val_data) and the command-line flags become one train::TrainRequest, run by
// train::run_training. Data-parallel: start one process per rank with RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT (and LOCAL_RANK) set, as torchrun does; train.batch_size is the
// global batch.
#include <cstdint>
#include <string>
#include <vector>

#include "vcpclip/app/config/run_config.h"
#include "vcpclip/train/trainer.h"

namespace vcpclip::app {

/// The flags of `vcpclip train` that are not config keys (or override one).
struct TrainFlags {
  bool resume = false;     ///< --resume: continue from train.out_dir/resume.pt
  std::string init_from;   ///< --init-from K (overrides train.init_from when set)
  int64_t max_steps = -1;  ///< --max-steps N (overrides train.max_steps when ≥ 0)
  bool progress = true;    ///< false with --no-progress
};

/// The request a loaded run config and the flags describe. Errors: a missing `model` or
/// `train.data` section (naming the config file).
train::TrainRequest make_train_request(const RunConfig& cfg, const TrainFlags& flags = {});

/// A whole command line: the config file, its --set overrides and the flags.
struct TrainCommand {
  std::string config;
  std::vector<std::string> overrides;  ///< --set key=value
  TrainFlags flags;
};

/// load_run_config + make_train_request + train::run_training.
train::TrainSummary run_train(const TrainCommand& cmd);

}  // namespace vcpclip::app
