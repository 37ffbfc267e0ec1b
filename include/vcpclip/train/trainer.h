#pragma once
// VCP-CLIP training (docs/design.md §7, reference train.py).
//
//   run_training(request) — the whole `vcpclip train` run: data check, model, optimizer,
//   epochs of train_step over the (sharded, seeded) training set, validation pixel AP on the
//   held-out classes, logs, checkpoints, resume.
//
// Files under train.out_dir (written by rank 0 only; checkpoints and resume.pt atomically):
//   checkpoint_epoch_N.pth   trainable tensors in the reference layout, every save_every epochs
//   last.pth                 the latest of those (also written when the run stops at max_steps)
//   resume.pt                optimizer state, counters, RNG states, loader position (see resume.h):
//                            at the start, after every epoch, every resume_every_steps steps and
//                            resume_every_seconds seconds inside an epoch, and at max_steps; a run
//                            killed at any moment continues from it with --resume and ends with
//                            the weights of an uninterrupted run
//   train.log                spdlog file log (also receives the console messages)
//   epochs.jsonl             {"epoch", "loss", "loss_raw", "loss_post", "val_ap_raw", "val_ap_post",
//                             "seconds", "images_per_second", "steps"} per epoch
//   steps.jsonl              {"step", "epoch", "loss", "loss_raw", "loss_post", "lr", "lr_temp"} every log_every steps
#include <ATen/core/Tensor.h>
#include <torch/optim/adam.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/common/runtime.h"
#include "vcpclip/data/datasets.h"
#include "vcpclip/eval/metrics.h"
#include "vcpclip/model/method.h"
#include "vcpclip/model/vcp_clip.h"
#include "vcpclip/train/distributed.h"
#include "vcpclip/train/resume.h"
#include "vcpclip/train/train_options.h"

namespace vcpclip::train {

/// The reference optimizer: Adam(betas) with two groups, {every trainable tensor except the two
/// temperatures} at lr and {New_Lan_Embed.prompt_temp, Zero_try.prompt_temp_l1} at lr_temp.
std::unique_ptr<torch::optim::Adam> make_optimizer(model::VcpHeadImpl& head, const TrainOptions& opts);
/// Any method's optimizer: Adam(betas, eps) over model.parameter_groups(), each group at train.lr
/// or train.lr_temp as the method says (VCP-CLIP: the two groups above; APRIL-GAN: one group).
std::unique_ptr<torch::optim::Adam> make_optimizer(model::MethodImpl& model, const TrainOptions& opts);

/// The trainable tensors by their flattened reference names (resume state, checks).
NamedParams trainable_tensors(model::VcpHeadImpl& head);
/// Any method's trainable tensors by their checkpoint names (model.trainable_parameters()).
NamedParams trainable_tensors(model::MethodImpl& model);

struct StepResult {
  double loss = 0, loss_raw = 0, loss_post = 0;  ///< over the global batch (mean over ranks)
  int64_t images = 0;                            ///< images of this rank's shard
};

/// One optimizer step on this rank's shard of a global batch of `global_batch` images: forward
/// (vision tower without autograd), the method's loss, backward, gradient all-reduce (weighted so that the
/// averaged gradient is the gradient of the global-batch loss), Adam step. Masks are binarised at
/// 0.5 as the reference. A NaN/Inf loss (on any rank) is a vcpclip::Error naming `step` and the
/// step is not applied. The model must be in training mode for prompt dropout. `classes`: one
/// product class per image, for methods whose prompts name it (model::MethodInfo::needs_class_name).
StepResult train_step(model::MethodImpl& model, torch::optim::Optimizer& optimizer, const at::Tensor& images,
                      const at::Tensor& masks, int64_t step, Distributed* dist = nullptr, int64_t global_batch = 0,
                      const model::ClassNames& classes = {});

/// Pixel AP of a model on a labelled set, per class and their mean (the reference's validation:
/// per-layer anomaly probabilities summed, sklearn average_precision_score per class).
struct ValidationResult {
  std::vector<std::pair<std::string, double>> ap_raw, ap_post;  ///< per class
  std::optional<double> mean_ap_raw, mean_ap_post;
};
ValidationResult validate_pixel_ap(model::MethodImpl& model, const std::vector<data::SampleInfo>& samples,
                                   int64_t batch_size, int workers);

/// Everything a training run needs (app::make_train_request fills it from a run config).
struct TrainRequest {
  RuntimeOptions runtime;
  model::ModelOptions model;
  data::DataOptions data;                     ///< training set (`train.data`): augment, skip_bad, workers
  std::optional<data::DataOptions> val_data;  ///< validation set (`train.val_data`), with train.val_classes
  TrainOptions train;
  bool resume = false;   ///< continue from out_dir/resume.pt
  bool progress = true;  ///< progress bar on stderr
  /// The resolved config (app::run_config_file_text): copied into train.log and written by rank 0 to
  /// train.out_dir/config.yaml, beside the checkpoints ("" = neither).
  std::string config_text;
};

/// train.deterministic (docs/design.md §7 debugging and parity runs), applied in this one place: prompt
/// dropout 0, no augmentation (nor mosaic) of train.data, no shuffling. No-op when it is false.
void apply_deterministic(TrainRequest& request);

struct EpochRecord {
  int64_t epoch = 0;  ///< 1-based
  double loss = 0, loss_raw = 0, loss_post = 0;
  std::optional<double> val_ap_raw, val_ap_post;
  double seconds = 0, images_per_second = 0;
  int64_t steps = 0;  ///< optimizer steps done in total at the end of the epoch
  /// Seconds the training loop waited for the loader in this invocation's part of the epoch (the
  /// device idle: each step ends synchronised); epochs.jsonl "loader_wait_seconds".
  double loader_wait_seconds = 0;
};

struct TrainSummary {
  std::vector<EpochRecord> epochs;  ///< epochs run by this invocation
  int64_t steps = 0;                ///< total optimizer steps (including resumed ones)
  int64_t epochs_done = 0;          ///< completed epochs (including resumed ones)
  bool stopped_early = false;       ///< max_steps reached
  std::string last_checkpoint;      ///< out_dir/last.pth ("" on ranks other than 0)
};

/// Runs training: apply_deterministic, builds the model, trains. Errors (bad data without
/// skip_bad, non-finite loss, resume mismatch, a file that cannot be written) are vcpclip::Error
/// naming the file or step; the last good checkpoint and resume state stay in place.
TrainSummary run_training(const TrainRequest& request);

}  // namespace vcpclip::train
