#pragma once
// The `train:` section of a training config (docs/design.md §7; defaults are the reference's).
//
//   train:
//     epochs: 10            # passes over the training set
//     batch_size: 32        # GLOBAL batch (split evenly over data-parallel ranks)
//     lr: 4.0e-5            # Adam lr of every trainable tensor except the two temperatures
//     lr_temp: 0.01         # Adam lr of New_Lan_Embed.prompt_temp and Zero_try.prompt_temp_l1
//     betas: [0.5, 0.999]   # Adam betas
//     eps: 1.0e-8           # Adam epsilon (PyTorch default, as the reference)
//     save_every: 1         # write checkpoint_epoch_N.pth every N epochs (last.pth + resume.pt too)
//     resume_every_steps: 50      # also write resume.pt inside an epoch every N steps (0 = off)
//     resume_every_seconds: 300   # ... and after the first step that ends N s after the last write (0 = off)
//     out_dir: runs/train   # checkpoints, train.log, epochs.jsonl, steps.jsonl
//     shuffle: true         # reshuffle the training set every epoch (seeded)
//     deterministic: false  # true: prompt dropout 0, no augmentation, no shuffling (parity runs)
//     val_classes: []       # held-out classes of `val_data` scored (pixel AP) after every epoch
//     data: {...}           # the training set, a data section (data/datasets.h; read by app::load_run_config):
//                           # its augment, skip_bad and workers keys steer augmentation, bad samples, loader threads
//     val_data: {...}       # the validation set, likewise; needed with val_classes
//     max_steps: 0          # stop after this many optimizer steps in total (0 = no limit)
//     init_from: ""         # start from this checkpoint's trainable tensors (fresh optimizer)
//     log_every: 1          # steps between lines of steps.jsonl
#include <array>
#include <cstdint>
#include <string>
#include <vector>

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
  int64_t resume_every_steps = 50;
  double resume_every_seconds = 300;
  std::string out_dir = "runs/train";
  bool shuffle = true;
  bool deterministic = false;  ///< applied once, by train::run_training (apply_deterministic)
  std::vector<std::string> val_classes;
  int64_t max_steps = 0;
  std::string init_from;
  int64_t log_every = 1;
};

/// Reads the `train:` keys above over `defaults` (the method's: app::load_run_config passes
/// model::MethodInfo::train) except the data sub-sections (the caller reads train.data and
/// train.val_data first, as app::load_run_config does), then calls node.finish(). Out-of-range values are
/// vcpclip::Error naming the key and the file (epochs ≥ 1, batch_size ≥ 1, lr/lr_temp/eps > 0, betas in [0,1),
/// save_every ≥ 1, resume_every_steps ≥ 0, resume_every_seconds ≥ 0, max_steps ≥ 0, log_every ≥ 1). Paths
/// are resolved relative to the config (io::ConfigNode::get_path).
TrainOptions parse_train_options(io::ConfigNode& node, const TrainOptions& defaults = {});

}  // namespace vcpclip::train
