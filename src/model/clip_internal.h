#pragma once
// Helpers shared by the CLIP tower implementations (not part of the public API).
#include <ATen/ATen.h>
#include <torch/nn/modules/container/modulelist.h>

namespace vcpclip::model {

/// OpenAI-style random initialisation of residual blocks (in_proj N(0, W^-1/2), out_proj/c_proj
/// N(0, W^-1/2 (2L)^-1/2), c_fc N(0, (2W)^-1/2), biases 0) for random-weight models.
void init_blocks(torch::nn::ModuleList& blocks, int64_t width);

/// softmax(q kᵀ / √hd + mask) v for q, k, v [N·H, L, hd] in the compute dtype (the scores and the
/// softmax in fp32; `mask` additive [L, L] or undefined). On the CPU without autograd and for long
/// sequences it runs in (head, row-chunk) tasks; otherwise batched. PackedAttention's core, shared
/// with AnomalyCLIP's DPAM blocks (v-v attention: q = k = v).
at::Tensor scaled_dot_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                                bool need_grad);

/// How the grid rows of a positional embedding are resized: bicubic with antialias (open_clip's
/// resize_pos_embed: VCP-CLIP, APRIL-GAN; resize_positional_embedding) or bilinear (AnomalyCLIP;
/// resize_positional_embedding_bilinear), both align_corners=false.
enum class PositionalResize { kBicubicAntialias, kBilinear };
at::Tensor resize_positional_embedding_as(const at::Tensor& pos, int64_t grid, PositionalResize how);

/// x / ||x|| over the last dimension.
inline at::Tensor l2_normalise(const at::Tensor& x) { return x / x.norm(2, {-1}, true); }

}  // namespace vcpclip::model
