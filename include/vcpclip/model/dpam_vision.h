#pragma once
// AnomalyCLIP's vision forward with DPAM (docs/design.md "AnomalyCLIP"), on the frozen CLIP
// vision tower (ClipVisionImpl) without changing it:
//
//   * the positional embedding is resized BILINEARLY (align_corners false, no antialias) when the
//     patch grid differs from the native one (VCP-CLIP and APRIL-GAN resize bicubically);
//   * with DPAM_layer = D the last D - 1 blocks are dual-path: a "surgery" stream starts as the
//     output of block L - D + 1 (1-based) and at each DPAM block adds out_proj(v-v attention)
//     (q = k = v, the block's own v projection, heads and 1/sqrt(head_dim) scale) computed on ln_1
//     of the ORIGINAL stream; it has no FFN. The original stream runs the plain block;
//   * a feature layer at or after the first DPAM block gives the surgery stream, an earlier one
//     the original stream; patch tokens = ln_post(tokens) @ proj (class token kept, row 0);
//   * the image embedding is the original stream's final class token @ proj, WITHOUT ln_post.
//
//   auto out = dpam_forward(*clip->visual, images, {24}, default_dpam_layer(24));  // DPAM_layer 20
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "vcpclip/model/clip_model.h"

namespace vcpclip::model {

/// What the DPAM forward gives.
struct DpamOutput {
  std::vector<at::Tensor> patch_tokens;  ///< per features_list entry: [B, 1+G², E] (row 0 = class token)
  at::Tensor image_embedding;            ///< [B, E], not normalised
};

/// The official DPAM_layer for a tower of `layers` blocks scaled from 20 of 24: layers + 1 −
/// round(5·layers/24) (rounding halves up): 20 for 24 blocks (surgery from block 6), 10 for 12,
/// 7 for 8, 4 for 4. Always in [2, layers + 1].
int64_t default_dpam_layer(int64_t layers);

/// The first dual-path block (1-based) for `dpam_layer`: layers − dpam_layer + 2.
int64_t first_dpam_block(int64_t layers, int64_t dpam_layer);

/// Resizes a vision positional embedding [g0²+1, W] to grid `grid` as AnomalyCLIP does: class row
/// kept, grid rows as [1, W, g0, g0] → bilinear, align_corners=false, no antialias → [grid²+1, W].
/// Returns the input itself when the grid is unchanged.
at::Tensor resize_positional_embedding_bilinear(const at::Tensor& pos, int64_t grid);

/// The DPAM vision forward (no autograd) for images [B, 3, S, S] (S a multiple of the patch size).
/// `features_list`: 1-based blocks, strictly increasing; `dpam_layer` in [2, layers + 1].
/// Mixed precision (ClipModelImpl::set_block_dtype) as in ResidualBlockImpl::forward: the streams
/// and the LayerNorms stay in the input dtype, the attention and MLP run in the weights' dtype.
DpamOutput dpam_forward(ClipVisionImpl& visual, const at::Tensor& images, const std::vector<int64_t>& features_list,
                        int64_t dpam_layer);

}  // namespace vcpclip::model
