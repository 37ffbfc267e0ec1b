#pragma once
// VCP-CLIP (docs/design.md §3–§5): the frozen CLIP backbone + the trainable VCP head, the method
// `vcp_clip` (model/method.h; registered by src/model/methods/vcp_clip.cpp).
//
//   auto model = vcpclip::model::build_vcp_clip(opts, device);   // backbone weights, tokenizer
//   vcpclip::model::load_vcp_checkpoint(*model, "train_visa.pth"); // reference .pth layout
//   model->eval();
//   auto maps = model->predict_maps(images);                       // M_raw, M_post [B,S,S]
//
// Training: optimise model->head->parameters() (see VcpHeadImpl::parameter_groups());
// model->train() puts the head in training mode (prompt dropout on); CLIP is always frozen,
// runs the vision tower without autograd and the text tower with autograd (the deep prompts and
// class tokens enter it).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vcpclip/common/runtime.h"
#include "vcpclip/common/stage_timer.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/model/method.h"
#include "vcpclip/model/model_options.h"
#include "vcpclip/model/post_vcp.h"
#include "vcpclip/model/pre_vcp.h"
#include "vcpclip/model/reference_memory.h"
#include "vcpclip/model/text_prompts.h"

namespace vcpclip::model {

/// Shapes of the head, derived from the backbone config and ModelOptions.
struct VcpHeadConfig {
  int64_t vision_width = 1024;     ///< W_v
  int64_t text_width = 768;        ///< W_t (== embed_dim, checked)
  int64_t embed_dim = 768;         ///< E
  int64_t num_feature_layers = 4;  ///< |features_list| (one Linear per layer)
  int64_t prompt_len = 2;          ///< r
  int64_t deep_prompt_len = 1;     ///< n
  int64_t deep_layers = 11;        ///< D (0 = shallow: no deep_prompt_embeddings parameter)
  int64_t post_heads = 8;
  double prompt_dropout = 0.1;

  static VcpHeadConfig from(const ModelOptions& opts, const ClipConfig& clip);
};

/// Reference class LinearLayer (checkpoint key "trainable_linearlayer"): fc.N = Linear(W_v → E).
class PatchLinearImpl : public torch::nn::Module {
 public:
  PatchLinearImpl(int64_t vision_width, int64_t embed_dim, int64_t layers);
  /// patch tokens of layer i WITHOUT the class token [B, N, W_v] → [B, N, E]
  torch::Tensor forward(int64_t layer, const torch::Tensor& patches);
  torch::nn::ModuleList fc{nullptr};
  std::vector<torch::nn::Linear> linears;
};
TORCH_MODULE(PatchLinear);

/// ALL trainable parameters of VCP-CLIP. named_parameters() are exactly the flattened reference
/// checkpoint names, in the reference file order:
///   trainable_linearlayer.fc.N.{weight,bias}
///   New_Lan_Embed.{prompt_query, prompt_temp, prompt_linear1.fc.weight, prompt_linear1.fc.bias}
///   Zero_try.{prompt_temp_l1, q_proj_pre.*, k_proj_pre_1.*, v_proj_pre_1.*, proj_post_t.*}
///   prompt_text_projection, prompt_embeddings, deep_prompt_embeddings (absent when D = 0),
///   prompt_proj.{weight,bias}, prompt_norm.{weight,bias}
/// (named_parameters lists the top-level tensors before the submodules; to_checkpoint() writes the
/// reference order: the three modules first, then the top-level tensors).
class VcpHeadImpl : public torch::nn::Module {
 public:
  /// Initialises like the reference from the global torch RNG: Linear/Conv1d defaults,
  /// prompt_query trunc-normal, prompt/deep prompt embeddings uniform(-1, 1), prompt_proj weight
  /// kaiming-normal fan_out, prompt_norm (1, 0), prompt_text_projection normal(0, W_t^-0.5),
  /// temperatures ln(1/0.07). `seed` ≥ 0 seeds the global RNG first (torch::manual_seed).
  explicit VcpHeadImpl(const VcpHeadConfig& cfg, int64_t seed = -1);

  PatchLinear trainable_linearlayer{nullptr};
  ContextPrompting New_Lan_Embed{nullptr};
  PostVcp Zero_try{nullptr};
  torch::Tensor prompt_embeddings;       ///< [1, n, W_t]
  torch::Tensor deep_prompt_embeddings;  ///< [D, n, W_t] (undefined when D = 0)
  torch::nn::Linear prompt_proj{nullptr};
  torch::nn::LayerNorm prompt_norm{nullptr};
  torch::Tensor prompt_text_projection;  ///< [W_t, E], trained in the reference but unused

  const VcpHeadConfig& config() const { return cfg_; }

  /// View of the deep prompt parameters for encode_text_with_context (dropout on iff is_training()).
  DeepPrompts deep_prompts();

  /// The trainer's two Adam groups (reference): {all except the temperatures} (lr) and
  /// {New_Lan_Embed.prompt_temp, Zero_try.prompt_temp_l1} (lr 0.01).
  std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> parameter_groups();

  /// Module names of the reference layout: {"trainable_linearlayer", "New_Lan_Embed", "Zero_try"}.
  static const std::vector<std::string>& checkpoint_modules();

  /// Copies a reference checkpoint into the parameters, strictly: a missing, unexpected or
  /// mis-shaped tensor is a vcpclip::Error naming the key, the shapes and `path`.
  void load_checkpoint(const io::ReferenceCheckpoint& ckpt, const std::string& path);
  /// The parameters in the reference layout (CPU float32 copies), ready for
  /// io::write_reference_checkpoint.
  io::ReferenceCheckpoint to_checkpoint() const;

 private:
  VcpHeadConfig cfg_;
};
TORCH_MODULE(VcpHead);

/// Everything forward() computes for a batch. Per feature layer: anomaly probabilities
/// (softmax over the 2 channels of bilinear align_corners=true upsampled logits) [B, 2, S, S].
struct VcpOutput {
  std::vector<torch::Tensor> raw;   ///< Pre-VCP ("raw") branch, one per features_list entry
  std::vector<torch::Tensor> post;  ///< Post-VCP branch (empty when post_vcp is false)
  torch::Tensor global;             ///< global image feature [B, E] (not normalised)
  torch::Tensor class_tokens;       ///< Pre-VCP class tokens C [B, r, E]
  torch::Tensor text;               ///< text features T [B, 2, E] (L2-normalised)
};

/// The pixel maps of docs/design.md §6 before blending: M_raw, M_post = mean over layers of channel
/// 1 (model::MethodMaps; image_score undefined: VCP-CLIP scores images from its maps).
using VcpMaps = MethodMaps;

class VcpClipImpl : public MethodImpl {
 public:
  /// Takes a built backbone; validates opts against its config (validate_model_options, the one
  /// place that runs it) and creates the head from opts (seeded by opts.init_seed).
  VcpClipImpl(ClipModel clip, const ModelOptions& opts, TokenizedTemplates templates);

  VcpHead head{nullptr};

  /// Full forward for images [B, 3, S, S] (CLIP-normalised, on the model's device).
  VcpOutput forward(const torch::Tensor& images);
  /// M_raw, M_post [B, S, S] float32 (no autograd: use under eval for inference). With a timer,
  /// the stages "vision tower", "Pre-VCP", "text tower", "Post-VCP + maps" are charged to it.
  /// `refs`: empty, or one reference memory per image (nullptr = none for that image; all with the
  /// same layers): then maps.few_shot is D (0 where an image has none), from the same vision pass.
  /// `classes` is not used (VCP-CLIP's prompts name no product).
  VcpMaps predict_maps(const torch::Tensor& images, StageTimer* timer = nullptr,
                       const std::vector<const ReferenceMemory*>& refs = {}, const ClassNames& classes = {}) override;

  // --- the method interface (model/method.h) ---
  const MethodInfo& info() const override;
  /// forward(): raw and post probabilities (class names unused).
  MethodOutput forward_train(const at::Tensor& images, const ClassNames& classes) override;
  /// vcp_seg_loss (model/seg_losses.h): Σ layers focal + dice of both branches.
  MethodLoss loss(const MethodOutput& out, const at::Tensor& gt) const override;
  /// {all except the temperatures} at train.lr, {the two temperatures} at train.lr_temp.
  std::vector<ParamGroup> parameter_groups() override;
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override;
  void load_checkpoint(const io::ReferenceCheckpoint& ckpt, const std::string& path) override;
  io::ReferenceCheckpoint to_checkpoint() const override;

  // --- stages (used by forward; public for parity tests and diagnostics) ---
  /// Vision tower without autograd: patch features per layer + global feature (under CUDA autocast
  /// when the precision is autocast).
  VisionOutput encode_image(const torch::Tensor& images);
  /// T [B, 2, E] from class tokens [B, r, E] (one batched text pass).
  torch::Tensor encode_text(const torch::Tensor& class_tokens);
  /// Raw-branch logits [B, N, 2] of feature layer index i (0-based in features_list).
  torch::Tensor raw_logits(int64_t i, const torch::Tensor& patch_tokens, const torch::Tensor& text);
  /// Post-branch logits [B, N, 2].
  torch::Tensor post_logits(const torch::Tensor& patch_tokens, const torch::Tensor& text);
  /// logits [B, N, 2] → probabilities [B, 2, S, S] (grid reshape, bilinear align_corners upsample, softmax).
  torch::Tensor logits_to_probs(const torch::Tensor& logits) const;

  const TokenizedTemplates& templates() const { return templates_; }

 private:
  TokenizedTemplates templates_;
};
TORCH_MODULE(VcpClip);

/// VCP-CLIP's MethodInfo (name vcp_clip; the default post-processing and training settings).
const MethodInfo& vcp_clip_info();

/// Builds the backbone from opts.backbone (+ activation override), loads opts.weights (empty:
/// random init, with a warning), loads the tokenizer (opts.vocab), tokenizes the templates,
/// validates everything, moves the model to `device`, and returns it in eval mode
/// (model::build_method for opts.method vcp_clip; any other method is an error).
VcpClip build_vcp_clip(const ModelOptions& opts, c10::Device device);

/// Reads a reference-layout checkpoint (.pth) into model->head (strict); errors name the file.
void load_vcp_checkpoint(VcpClipImpl& model, const std::string& path);
/// Writes model->head in the reference layout (atomic; loadable by the reference's torch.load).
void save_vcp_checkpoint(const VcpClipImpl& model, const std::string& path);

}  // namespace vcpclip::model
