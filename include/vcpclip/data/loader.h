#pragma once
// Parallel batch loader: worker threads decode + (augment) + preprocess whole batches ahead of
// the consumer; batches come out in a fixed order that depends only on (seed, epoch, rank,
// world_size), never on thread timing.
//
//   DataLoader loader(samples, opts);
//   for (int64_t epoch = 0; epoch < E; ++epoch) {
//     loader.start_epoch(epoch);
//     while (auto batch = loader.next()) { ... batch->images [B,3,S,S], batch->masks [B,S,S] ... }
//   }
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vcpclip/data/augment.h"
#include "vcpclip/data/datasets.h"
#include "vcpclip/data/sample.h"

namespace vcpclip::data {

struct LoaderOptions {
  int64_t image_size = 518;  ///< S
  int64_t batch_size = 32;
  bool shuffle = false;    ///< reshuffle every epoch (seeded by seed and epoch)
  bool drop_last = false;  ///< drop a final partial batch
  uint64_t seed = 333;
  int workers = 2;               ///< 0 = load in the calling thread
  int prefetch = 2;              ///< batches in flight or ready ahead of the consumer (>= 1)
  int rank = 0, world_size = 1;  ///< sharding: rank takes every world_size-th sample of the
                                 ///< epoch order, padded (by wrapping) so all ranks get equally many
  bool skip_bad = false;         ///< warn and skip samples that fail to load (else vcpclip::Error)
  bool augment = false;          ///< docs/design.md §7 augmentations
  double mosaic_p = 0.0;         ///< probability of replacing a sample by a 2×2 same-class mosaic
  AugmentOptions aug;
};

/// Loader options from a data section plus the run's size, batch, shuffle and seed.
LoaderOptions make_loader_options(const DataOptions& data, int64_t image_size, int64_t batch_size, bool shuffle,
                                  uint64_t seed);

/// Loads one sample without augmentation (evaluation path). Normal samples get an all-zero mask.
Sample load_sample(const SampleInfo& info, int64_t size);

/// Stacks samples into a Batch ([B,3,S,S], [B,S,S], infos). Empty input is an error.
Batch collate(std::vector<Sample>& samples);

class DataLoader {
 public:
  DataLoader(std::vector<SampleInfo> samples, LoaderOptions opts);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Samples this rank sees per epoch (after sharding/padding).
  int64_t samples_per_epoch() const;
  /// Batches per epoch on this rank.
  int64_t batches_per_epoch() const;
  /// Indices into samples() in the order this rank visits them in `epoch`.
  std::vector<size_t> epoch_order(int64_t epoch) const;

  /// Starts (or restarts) an epoch; stops any unfinished previous one. `first_batch` > 0 resumes
  /// inside the epoch: the batches before it are not loaded (batch content depends only on the
  /// seed, epoch and position, so the rest of the epoch is what an uninterrupted run sees).
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  /// Batches of the current epoch consumed so far (returned, or skipped whole): the position to
  /// resume from.
  int64_t position() const;
  /// Next batch, or nullopt at the end of the epoch. A load failure (without skip_bad) is
  /// rethrown here as vcpclip::Error naming the file.
  std::optional<Batch> next();

  const std::vector<SampleInfo>& samples() const { return samples_; }
  const LoaderOptions& options() const { return opts_; }
  /// Samples skipped (skip_bad) since construction.
  int64_t skipped() const;

 private:
  struct Result {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  Result build_batch(int64_t k);
  Sample load_one(size_t pos_in_epoch, size_t index);
  void worker_loop();
  void stop_workers();

  std::vector<SampleInfo> samples_;
  LoaderOptions opts_;
  std::map<std::string, std::vector<size_t>> anomalous_by_class_;  // for the mosaic

  int64_t epoch_ = -1;
  std::vector<size_t> order_;
  int64_t n_batches_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t next_to_build_ = 0, next_to_return_ = 0;
  std::map<int64_t, Result> ready_;
  bool stop_ = false;
  int64_t skipped_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace vcpclip::data
