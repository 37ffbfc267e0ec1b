#pragma once
// Resumable training state: OUT/resume.pt (a torch::serialize archive) holds everything needed
// to continue a run exactly: the trainable tensors, the Adam state (moments and step counts of
// both parameter groups), the counters, and the RNG states (torch CPU, CUDA devices, and the
// seed the data sampler derives each epoch's order and augmentation from).
//
// Written atomically (temporary file + fsync + rename, io::AtomicFileWriter): killing the
// process at any moment leaves either the previous resume.pt or the new one, never a torn file.
// Archive keys: "format" (= 2), "epoch", "batch_in_epoch", "step", "seed", "world_size",
// "global_batch", "sums/{loss,loss_raw,loss_post,batches,images,seconds}", "rng/cpu",
// "rng/cuda/<i>", "params/<name>", "optimizer/...". Format 1 (no sums) is still read.
// A file that cannot be written completely (full disk, file size limit) is a vcpclip::Error
// naming it; the previous resume.pt stays as it was and no temporary file is left.
#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vcpclip::train {

using NamedParams = std::vector<std::pair<std::string, at::Tensor>>;

/// Running sums of the epoch in progress, so that a resumed epoch's record (epochs.jsonl) equals
/// the uninterrupted one.
struct EpochSums {
  double loss = 0, loss_raw = 0, loss_post = 0;  ///< summed over the batches trained
  int64_t batches = 0, images = 0;
  double seconds = 0;  ///< training time of the epoch so far
};

struct TrainCounters {
  int64_t epoch = 0;           ///< completed epochs (the next epoch to run, 0-based)
  int64_t batch_in_epoch = 0;  ///< loader position in epoch `epoch`: batches consumed (mid-epoch state)
  int64_t step = 0;            ///< optimizer steps taken in total
  uint64_t seed = 0;           ///< the run's seed (sampler order / augmentation derive from it)
  int64_t world_size = 1;      ///< data-parallel ranks of the run that wrote the state
  int64_t global_batch = 0;    ///< batch size (global) of that run
  EpochSums sums;              ///< of epoch `epoch` up to batch_in_epoch
};

/// Writes the state to `path` atomically. `params` are the trainable tensors (copied to CPU).
void save_resume_state(const std::string& path, const TrainCounters& counters, const NamedParams& params,
                       torch::optim::Optimizer& optimizer);

/// Restores a state written by save_resume_state into `params` (in place, same names and shapes
/// required) and `optimizer` (which must have the same parameter groups in the same order), sets
/// the torch RNG states, and returns the counters. Errors name the file and the mismatch.
TrainCounters load_resume_state(const std::string& path, const NamedParams& params, torch::optim::Optimizer& optimizer);

/// Reads only the counters (for messages and checks before building anything).
TrainCounters peek_resume_state(const std::string& path);

}  // namespace vcpclip::train
