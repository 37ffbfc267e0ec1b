#pragma once
// The frozen OpenAI CLIP backbone (DESIGN §2) with OpenAI's parameter names, so that
// `named_parameters()` of ClipModel equals the keys of OpenAI's checkpoints:
//   visual.conv1.weight, visual.class_embedding, visual.positional_embedding, visual.ln_pre.*,
//   visual.transformer.resblocks.N.{ln_1,attn.in_proj_weight,attn.in_proj_bias,attn.out_proj,ln_2,
//   mlp.c_fc,mlp.c_proj}.*, visual.ln_post.*, visual.proj,
//   token_embedding.weight ([vocab_size + 1, W_t]: extra zero row for <|class|> = 49408),
//   positional_embedding, transformer.resblocks.N.*, ln_final.*, text_projection, logit_scale.
// All tensors are batch-first ([N, L, W]); compute in fp32.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <functional>
#include <vector>

#include "vcpclip/model/clip_config.h"

namespace vcpclip::model {

/// One pre-LayerNorm residual block: x += out_proj(MHA(ln_1(x))); x += c_proj(act(c_fc(ln_2(x)))).
/// Parameters: ln_1, attn.in_proj_weight [3W,W], attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t width, int64_t heads, std::string activation);
  /// x [N, L, W]; `mask` an additive [L, L] mask or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {});
  // (members are the implementation's)
};
TORCH_MODULE(ResidualBlock);

/// Output of the vision tower.
struct VisionOutput {
  std::vector<torch::Tensor> patch_features;  ///< per features_list entry: raw block output [B, 1+G², W]
  torch::Tensor global;                       ///< ln_post(x_final[:,0]) @ proj, [B, E], not normalised
};

/// Vision tower (module name "visual" inside ClipModel).
class ClipVisionImpl : public torch::nn::Module {
 public:
  ClipVisionImpl(const ClipVisionConfig& cfg, int64_t embed_dim, const std::string& activation);
  /// images [B, 3, S, S] normalised; S any multiple of patch_size (positional embedding resized
  /// bicubic/antialias as DESIGN §2, cached per grid size). features_list is 1-based block indices.
  /// Blocks after the last requested one still run only if `need_global` (the global feature needs the last).
  VisionOutput forward(const torch::Tensor& images, const std::vector<int64_t>& features_list, bool need_global = true);
  /// The positional embedding resized for grid g (g*g+1 rows).
  torch::Tensor positional_embedding_for(int64_t grid);
  const ClipVisionConfig& config() const;
};
TORCH_MODULE(ClipVision);

/// The whole CLIP backbone: `visual` + the text tower registered at the top level (OpenAI names).
class ClipModelImpl : public torch::nn::Module {
 public:
  explicit ClipModelImpl(const ClipConfig& cfg);

  ClipVision visual{nullptr};

  /// Token embeddings [N, 77] int64 → [N, 77, W_t] (positional embedding NOT added).
  torch::Tensor embed_tokens(const torch::Tensor& ids);
  /// The text positional embedding [77, W_t].
  torch::Tensor text_positional_embedding();
  /// Runs the text blocks (causal mask) on x [N, L, W_t] (positional embedding already added).
  /// before_block(i, x), if given, is called before block i (0-based) and returns the x to use
  /// (VCP's deep prompts replace rows there). Returns the output of the last block (no ln_final).
  torch::Tensor run_text_transformer(torch::Tensor x,
                                     const std::function<torch::Tensor(int64_t, torch::Tensor)>& before_block = {});
  /// ln_final(x) — x [..., W_t].
  torch::Tensor ln_final_forward(const torch::Tensor& x);
  /// The text projection [W_t, E].
  torch::Tensor text_projection_weight();
  /// Plain CLIP text features for ids [N, 77]: ln_final(x)[EOT = argmax id] @ text_projection, [N, E],
  /// not normalised (parity check of the tower).
  torch::Tensor encode_text(const torch::Tensor& ids);

  const ClipConfig& config() const;
};
TORCH_MODULE(ClipModel);

/// Parameter count of a module (for `info`).
int64_t count_parameters(const torch::nn::Module& m);

}  // namespace vcpclip::model
