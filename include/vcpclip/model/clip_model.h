#pragma once
// The frozen OpenAI CLIP backbone (docs/design.md §2) with OpenAI's parameter names, so that
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
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/model/clip_config.h"

namespace vcpclip::model {

/// Applies the activation (gelu: exact erf form; quick_gelu: x·sigmoid(1.702x)).
torch::Tensor apply_activation(const torch::Tensor& x, Activation act);

/// A linear layer's parameters, weight [out, in] and bias [out], named as torch::nn::Linear's.
/// `init` true: LibTorch's Linear initialisation (same random draws); false: allocated only,
/// because weights are loaded next (initialising ViT-L's 300M linear weights costs seconds).
class LinearParamsImpl : public torch::nn::Module {
 public:
  LinearParamsImpl(int64_t in, int64_t out, bool init = true);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
};
TORCH_MODULE(LinearParams);

/// MultiheadAttention parameters with OpenAI's names: in_proj_weight [3W,W] (q,k,v rows),
/// in_proj_bias [3W], out_proj (Linear W→W).
class PackedAttentionImpl : public torch::nn::Module {
 public:
  PackedAttentionImpl(int64_t width, int64_t heads, bool init = true);
  /// Self-attention on x [N, L, W]; `mask` additive [L, L] or undefined. Scores scaled by 1/sqrt(head_dim).
  /// `causal`: `mask` is the causal mask (-inf above the diagonal); with LibTorch >= 2.0 the fused
  /// kernel then applies it itself (is_causal), LibTorch 1.13 adds `mask`.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {}, bool causal = false);
  torch::Tensor in_proj_weight, in_proj_bias;
  LinearParams out_proj{nullptr};
  int64_t width, heads;
};
TORCH_MODULE(PackedAttention);

/// mlp.c_fc (W→4W) and mlp.c_proj (4W→W).
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t width, Activation act, bool init = true);
  torch::Tensor forward(const torch::Tensor& x);
  LinearParams c_fc{nullptr}, c_proj{nullptr};
  Activation act;
};
TORCH_MODULE(Mlp);

/// The attention computation this build uses, compiled in (TORCH_VERSION_MAJOR from <torch/version.h>):
/// at::scaled_dot_product_attention with LibTorch >= 2.0, the explicit softmax(QKᵀ/√d)V before.
/// Printed by `vcpclip version` and `vcpclip bench`.
const char* attention_kernel();

/// One pre-LayerNorm residual block: x += out_proj(MHA(ln_1(x))); x += c_proj(act(c_fc(ln_2(x)))).
/// Parameters: ln_1, attn.in_proj_weight [3W,W], attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  /// init false: parameters allocated, not initialised (weights are loaded next).
  ResidualBlockImpl(int64_t width, int64_t heads, Activation activation, bool init = true);
  /// x [N, L, W]; `mask` an additive [L, L] mask or undefined; `causal` as PackedAttentionImpl::forward.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {}, bool causal = false);

  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  PackedAttention attn{nullptr};
  Mlp mlp{nullptr};
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
  /// random_init false: parameters are allocated but not initialised (weights are loaded next).
  ClipVisionImpl(const ClipVisionConfig& cfg, int64_t embed_dim, Activation activation, bool random_init = true);
  /// images [B, 3, S, S] normalised; S any multiple of patch_size (positional embedding resized
  /// bicubic/antialias as docs/design.md §2, cached per grid size). features_list is 1-based block indices.
  /// Blocks after the last requested one still run only if `need_global` (the global feature needs the last).
  VisionOutput forward(const torch::Tensor& images, const std::vector<int64_t>& features_list, bool need_global = true);
  /// The positional embedding resized for grid g (g*g+1 rows).
  torch::Tensor positional_embedding_for(int64_t grid);
  const ClipVisionConfig& config() const;
  int64_t embed_dim() const { return embed_dim_; }

  torch::nn::Conv2d conv1{nullptr};
  torch::Tensor class_embedding;       ///< [W]
  torch::Tensor positional_embedding;  ///< [G²+1, W] at the native resolution
  torch::nn::LayerNorm ln_pre{nullptr}, ln_post{nullptr};
  torch::nn::ModuleList resblocks{nullptr};  ///< registered as transformer.resblocks
  torch::Tensor proj;                        ///< [W, E]

 private:
  ClipVisionConfig cfg_;
  int64_t embed_dim_;
  struct PosCacheEntry {
    torch::Tensor value;
    const void* source = nullptr;
    uint32_t version = 0;
  };
  std::map<std::pair<int64_t, std::string>, PosCacheEntry> pos_cache_;  ///< (grid, device) → resized rows
};
TORCH_MODULE(ClipVision);

/// The whole CLIP backbone: `visual` + the text tower registered at the top level (OpenAI names).
class ClipModelImpl : public torch::nn::Module {
 public:
  /// random_init false: parameters are allocated but not initialised (weights are loaded next;
  /// initialising ViT-L's 428M parameters costs seconds).
  explicit ClipModelImpl(const ClipConfig& cfg, bool random_init = true);

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

  /// Stores the vision tower's attention and MLP weights in `dtype` (runtime.precision bf16/fp16):
  /// those matmuls then run in it, while the residual stream, LayerNorms, attention scores and
  /// softmax, embeddings, projections and the whole text tower (~12 positions) stay fp32 (mixed
  /// precision, see ResidualBlockImpl::forward). fp32 afterwards keeps the rounding already done.
  void set_block_dtype(c10::ScalarType dtype);

  torch::nn::ModuleList resblocks{nullptr};  ///< text blocks, registered as transformer.resblocks
  torch::nn::Embedding token_embedding{nullptr};
  torch::Tensor positional_embedding;  ///< [77, W_t]
  torch::nn::LayerNorm ln_final{nullptr};
  torch::Tensor text_projection;  ///< [W_t, E]
  torch::Tensor logit_scale;      ///< scalar, ln(1/0.07) at init

  /// The additive causal mask [L, L] (0 on and below the diagonal, -inf above) on `device`.
  torch::Tensor causal_mask(int64_t length, const c10::Device& device, c10::ScalarType dtype);

 private:
  ClipConfig cfg_;
  torch::Tensor mask_cache_;
};
TORCH_MODULE(ClipModel);

/// Parameter count of a module (for `info`).
int64_t count_parameters(const torch::nn::Module& m);

/// Resizes a vision positional embedding [g0²+1, W] to grid `grid` like the reference's
/// resize_pos_embed: class row kept, grid rows as [1, W, g0, g0] → bicubic, align_corners=false,
/// antialias=true → [grid²+1, W]. Returns the input itself when the grid is unchanged.
torch::Tensor resize_positional_embedding(const torch::Tensor& pos, int64_t grid);

}  // namespace vcpclip::model
