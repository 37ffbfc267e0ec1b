#pragma once
// `vcpclip train --config C [--set key=value ...] [--resume] [--init-from K] [--max-steps N]`
// (DESIGN §7): reads the run config (app::load_run_config: runtime, model, train with
// train.data / train.val_data), applies the flags, and runs train::run_training.
// Data-parallel: start one process per rank with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
// (and LOCAL_RANK) set, as torchrun does; train.batch_size is the global batch.
#include <cstdint>
#include <string>
#include <vector>

#include "vcpclip/train/trainer.h"

namespace vcpclip::app {

struct TrainCommand {
  std::string config;
  std::vector<std::string> overrides;  ///< --set key=value
  bool resume = false;                 ///< --resume: continue from train.out_dir/resume.pt
  std::string init_from;               ///< --init-from K (overrides train.init_from)
  int64_t max_steps = -1;              ///< --max-steps N (overrides train.max_steps when ≥ 0)
  bool progress = true;
};

/// The request a command line describes (config + flags), without running it. Errors: those of
/// load_run_config, a missing `model` or `train.data` section.
train::TrainRequest make_train_request(const TrainCommand& cmd);

/// make_train_request + train::run_training.
train::TrainSummary run_train(const TrainCommand& cmd);

}  // namespace vcpclip::app
