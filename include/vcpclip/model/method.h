#pragma once
// A method (docs/design.md "Methods"): what differs between the CLIP-based anomaly segmenters that
// vcpclip runs on one pair of towers. The frozen CLIP towers, the data, the training loop, resume,
// eval, predict, calibrate, few-shot, serve, the Inferencer, reports and ablate are shared; they
// receive a Method and never look at its type.
//
// What a method owns (one file pair per method, src/model/methods/<name>.cpp, registered in
// model/method_registry.h):
//   - the trainable head and its checkpoint layout (parameters(), to_checkpoint, load_checkpoint);
//   - the text side (learned or handcrafted prompts; class names when its prompts name the product);
//   - how patch tokens become per-layer probabilities (forward_train) and maps + an image score
//     (predict_maps);
//   - the loss (loss) and the optimiser's groups and defaults (parameter_groups, MethodInfo).
//
//   auto model = vcpclip::model::build_method(opts, device);        // registry: opts.method
//   vcpclip::model::load_method_checkpoint(*model, "ckpt.pth");      // strict, names a wrong method
//   model->eval();
//   auto maps = model->predict_maps(images, nullptr, {}, {"bottle", "bottle"});
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "vcpclip/common/runtime.h"
#include "vcpclip/common/stage_timer.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/model/model_options.h"

namespace vcpclip::model {

struct ReferenceMemory;

/// One product class name per image ("" for none), or an empty list when the method needs none.
using ClassNames = std::vector<std::string>;

/// What forward_train gives the loss: per feature layer, two-channel probabilities [B, 2, S, S]
/// (channel 1 = anomalous), with autograd through the trainable head.
struct MethodOutput {
  std::vector<at::Tensor> raw;   ///< the method's main branch (VCP: Pre-VCP; APRIL-GAN: its layers)
  std::vector<at::Tensor> post;  ///< a second branch (VCP: Post-VCP), empty when the method has none
  at::Tensor image_logits;       ///< [B, 2] image-level logits when the loss uses them, else undefined
};

/// The loss of one batch and the two numbers a training step reports (steps.jsonl loss_raw /
/// loss_post): the method says what they are (VCP: Pre-VCP / Post-VCP sums; APRIL-GAN: its sum / 0).
struct MethodLoss {
  at::Tensor total;  ///< differentiable
  at::Tensor raw;    ///< first reported term
  at::Tensor post;   ///< second reported term (zeros when the method has one term)
};

/// predict_maps' result: the maps before post-processing (eval/postprocess.h), float32 [B, S, S].
struct MethodMaps {
  at::Tensor raw;   ///< VCP: M_raw (mean over layers); APRIL-GAN: sum over layers of p_abnormal
  at::Tensor post;  ///< VCP: M_post; undefined for methods with one branch
  /// Few-shot map D [B, S, S] (model/reference_memory.h); undefined without reference memories.
  at::Tensor few_shot;
  /// Normalised few-shot map D̂ [B, S, S] (reference_memory.h); undefined without references or
  /// when a memory lacks its normal statistics (a memory file of version 1).
  at::Tensor few_shot_normalized;
  /// [B] float32: each image's memory's normal_max (0 where an image has none); with few_shot_normalized.
  at::Tensor few_shot_normal_max;
  /// [B] image score computed by the method from the image embedding (APRIL-GAN: softmax of
  /// 100·cos(class token, text), abnormal column); undefined when the score comes from the maps.
  at::Tensor image_score;
};

/// An optimiser group: the tensors and which `train:` learning rate they use.
struct ParamGroup {
  enum class Lr { kLr, kLrTemp };  ///< train.lr or train.lr_temp
  std::vector<at::Tensor> params;
  Lr lr = Lr::kLr;
};

/// Post-processing defaults of a method's official test.py (the `postprocess:` keys override).
struct PostprocessDefaults {
  double alpha = 0.2;         ///< weight of `raw` in the blend with `post` (unused without post)
  double sigma = 8.0;         ///< gaussian sigma, 0 = none
  int64_t topk = 2000;        ///< pixels of the top-k image score
  bool method_score = false;  ///< image score = MethodMaps::image_score (else top-k of the maps)
};

/// Training defaults of a method's official train.py (the `train:` keys override).
struct TrainDefaults {
  int64_t epochs = 10;
  int64_t batch_size = 32;
  double lr = 4e-5;
  double lr_temp = 0.01;
  double beta1 = 0.5, beta2 = 0.999;
};

/// Static facts about a method.
struct MethodInfo {
  std::string name;               ///< model.method value: "vcp_clip", "april_gan", "anomaly_clip"
  std::string title;              ///< for reports: "VCP-CLIP", "APRIL-GAN", "AnomalyCLIP"
  bool needs_class_name = false;  ///< its prompts name the product (predict needs --class)
  PostprocessDefaults postprocess;
  TrainDefaults train;
};

/// Base of every method: owns the frozen CLIP towers (module "clip"), the model options, the
/// precision, and the few-shot vision pass; a subclass registers its trainable head after it.
class MethodImpl : public torch::nn::Module {
 public:
  /// Registers `clip` as "clip", freezes it (requires_grad false, eval).
  MethodImpl(ClipModel clip_model, const ModelOptions& opts);
  ~MethodImpl() override = default;

  ClipModel clip{nullptr};  ///< frozen (requires_grad false, always eval)

  virtual const MethodInfo& info() const = 0;
  const std::string& method_name() const { return info().name; }

  /// Training forward for images [B, 3, S, S] (CLIP-normalised, on the model's device): the
  /// per-layer probabilities the loss needs. `classes`: one name per image when info().needs_class_name.
  virtual MethodOutput forward_train(const at::Tensor& images, const ClassNames& classes) = 0;
  /// The loss of forward_train's output; gt [B, S, S] binarised masks.
  virtual MethodLoss loss(const MethodOutput& out, const at::Tensor& gt) const = 0;
  /// Inference maps (no autograd). With a timer, the method charges its stages to it. `refs`:
  /// empty, or one reference memory per image (nullptr = none; all with the same layers): then
  /// maps.few_shot is D (0 where an image has none), from the same vision pass.
  virtual MethodMaps predict_maps(const at::Tensor& images, StageTimer* timer = nullptr,
                                  const std::vector<const ReferenceMemory*>& refs = {},
                                  const ClassNames& classes = {}) = 0;

  /// The optimiser groups (every trainable tensor in exactly one).
  virtual std::vector<ParamGroup> parameter_groups() = 0;
  /// The trainable tensors by their flattened checkpoint names (resume state, checks).
  virtual std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() = 0;
  /// Copies a checkpoint in the method's official layout into the head, strictly: a missing,
  /// unexpected or mis-shaped tensor is a vcpclip::Error naming the key and `path`.
  virtual void load_checkpoint(const io::ReferenceCheckpoint& ckpt, const std::string& path) = 0;
  /// The head in the method's official layout (CPU float32 copies), for io::write_reference_checkpoint.
  virtual io::ReferenceCheckpoint to_checkpoint() const = 0;

  /// runtime.precision: bf16/fp16 run the vision tower's matmuls in that dtype (the head stays
  /// fp32); autocast runs forward_train and predict_maps under CUDA autocast (fp16). Call after
  /// moving the model to its device.
  virtual void set_precision(Precision p);
  Precision precision() const { return precision_; }

  /// train(true) switches the head only; CLIP stays in eval.
  void train(bool on = true) override;

  /// Raw block outputs [B, 1+G², W] of the 1-based vision blocks `layers` (no autograd): the
  /// features of the few-shot reference memory (the same for every method: the shared tower).
  std::vector<at::Tensor> encode_layers(const at::Tensor& images, const std::vector<int64_t>& layers);

  const ModelOptions& options() const { return opts_; }
  /// S: the input size images must have ([B, 3, S, S]) and the maps come out at (model.image_size).
  int64_t input_size() const { return opts_.input_size; }
  /// The device of the model's parameters.
  c10::Device device() const;

 protected:
  /// Checks images are [B, 3, S, S] (`who` names the method in the message).
  void check_images(const at::Tensor& images) const;
  /// One vision pass (no autograd) over opts.features_list and, with reference memories, their
  /// layers: returns the features_list outputs + the global feature, and sets maps->few_shot (D),
  /// few_shot_normalized (D̂) and few_shot_normal_max (all undefined without memories). Charges
  /// "vision tower" and "few-shot memory search" to `timer`.
  VisionOutput vision_with_references(const at::Tensor& images, const std::vector<const ReferenceMemory*>& refs,
                                      MethodMaps* maps, StageTimer* timer);

  ModelOptions opts_;
  Precision precision_ = Precision::kFp32;
};

/// Holder of any method (`Method m{nullptr}`; `m->predict_maps(...)`); converts from the holder
/// of a concrete method (VcpClip → Method).
class Method : public torch::nn::ModuleHolder<MethodImpl> {
 public:
  using torch::nn::ModuleHolder<MethodImpl>::ModuleHolder;
  template <typename Impl, typename = std::enable_if_t<std::is_base_of<MethodImpl, Impl>::value>>
  Method(const torch::nn::ModuleHolder<Impl>& holder)  // NOLINT(google-explicit-constructor)
      : torch::nn::ModuleHolder<MethodImpl>(std::static_pointer_cast<MethodImpl>(holder.ptr())) {}
};

/// CUDA autocast (fp16) for the scope's lifetime when `on` (the methods' forward under
/// runtime.precision autocast).
class AutocastScope {
 public:
  explicit AutocastScope(bool on);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  bool previous_ = false;
};

/// Checks that `classes` gives one non-empty name per image for a method that needs class names:
/// else a vcpclip::Error saying how to give one (`--class`, the calibration's class, the dataset's
/// class folder).
void check_class_names(const MethodInfo& info, const ClassNames& classes, int64_t images);

}  // namespace vcpclip::model
