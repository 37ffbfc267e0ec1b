#pragma once
// The `train:` section of a training config (DESIGN.md §7; defaults are the reference's).
//
//   train:
//     epochs: 10            # passes over the training set
//     batch_size: 32        # GLOBAL batch (split evenly over data-parallel ranks)
//     lr: 4.0e-5            # Adam lr of every trainable tensor except the two temperatures
//     lr_temp: 0.01         # Adam lr of New_Lan_Embed.prompt_temp and Zero_try.prompt_temp_l1
//     betas: [0.5, 0.999]   # Adam betas
//     eps: 1.0e-8           # Adam epsilon (PyTorch default, as the reference)
//     save_every: 1         # write checkpoint_epoch_N.pth every N epochs (last.pth + resume.pt too)
//     out_dir: runs/train   # checkpoints, train.log, epochs.jsonl, steps.jsonl
//     augment: true         # training augmentation (DESIGN §7)
//     shuffle: true         # reshuffle the training set every epoch (seeded)
//     deterministic: false  # true: prompt dropout 0, augment false, shuffle false (parity runs)
//     workers: 2            # data loader threads
//     val_classes: []       # held-out classes of `val_data` scored (pixel AP) after every epoch
//     data: {...}           # the training set, a data section (data/datasets.h; read by app::load_run_config)
//     val_data: {...}       # the validation set, likewise; needed with val_classes
//     skip_bad: false       # drop unreadable samples (data check) instead of refusing to train
//     max_steps: 0          # stop after this many optimizer steps in total (0 = no limit)
//     init_from: ""         # start from this checkpoint's trainable tensors (fresh optimizer)
//     log_every: 1          # steps between lines of steps.jsonl
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/data/datasets.h"
#include "vcpclip/io/config_node.h"

namespace vcpclip::train {

struct TrainOptions {
  int64_t epochs = 10;
  int64_t batch_size = 32;
  double lr = 4e-5;
  double lr_temp = 0.01;
  std::array<double, 2> betas{0.5, 0.999};
  double eps = 1e-8;
  int64_t save_every = 1;
  std::string out_dir = "runs/train";
  bool augment = true;
  bool shuffle = true;
  bool deterministic = false;
  int workers = 2;
  std::vector<std::string> val_classes;
  std::optional<data::DataOptions> val_data;  ///< train.val_data (filled by the caller, not parse_train_options)
  bool skip_bad = false;
  int64_t max_steps = 0;
  std::string init_from;
  int64_t log_every = 1;

  /// Applies `deterministic` (augment and shuffle off); returns *this.
  TrainOptions& resolve();
};

/// Reads the `train:` keys above except the data sub-sections (the caller reads train.data and
/// train.val_data first, as app::load_run_config does), then calls node.finish(). Out-of-range values are
/// vcpclip::Error naming the key and the file (epochs ≥ 1, batch_size ≥ 1, lr/lr_temp/eps > 0, betas in [0,1),
/// save_every ≥ 1, workers ≥ 0, max_steps ≥ 0, log_every ≥ 1). Paths are resolved relative to
/// the config (io::ConfigNode::get_path).
TrainOptions parse_train_options(io::ConfigNode& node);

}  // namespace vcpclip::train
