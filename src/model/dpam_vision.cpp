// AnomalyCLIP's DPAM vision forward on the CLIP vision tower (see dpam_vision.h).
#include "vcpclip/model/dpam_vision.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

#include "clip_internal.h"
#include "vcpclip/common/error.h"

namespace vcpclip::model {

int64_t default_dpam_layer(int64_t layers) {
  VCP_CHECK(layers >= 1, "DPAM: the vision tower needs at least one block, found ", layers);
  const auto before = static_cast<int64_t>(std::floor(5.0 * static_cast<double>(layers) / 24.0 + 0.5));
  return layers + 1 - before;
}

int64_t first_dpam_block(int64_t layers, int64_t dpam_layer) {
  VCP_CHECK(dpam_layer >= 2 && dpam_layer <= layers + 1, "DPAM: dpam_layer must be in [2, ", layers + 1,
            "] for a vision tower of ", layers, " blocks (the last dpam_layer - 1 blocks are dual-path), found ",
            dpam_layer);
  return layers - dpam_layer + 2;
}

at::Tensor resize_positional_embedding_bilinear(const at::Tensor& pos, int64_t grid) {
  return resize_positional_embedding_as(pos, grid, PositionalResize::kBilinear);
}

namespace {

/// One DPAM block: the original stream's attention and the v-v attention from one packed
/// projection of ln_1(original). Returns {original attention, v-v attention}, both after out_proj,
/// in the stream dtype.
std::pair<at::Tensor, at::Tensor> dual_attention(ResidualBlockImpl& block, const at::Tensor& ori) {
  auto& a = *block.attn;
  const int64_t n = ori.size(0), len = ori.size(1), w = a.width, heads = a.heads, hd = w / heads;
  const auto stream = ori.scalar_type(), compute = a.in_proj_weight.scalar_type();
  auto h = at::layer_norm(ori, {w}, block.ln_1->weight, block.ln_1->bias, 1e-5).to(compute);
  auto qkv = at::linear(h, a.in_proj_weight, a.in_proj_bias)
                 .view({n, len, 3, heads, hd})
                 .permute({2, 0, 3, 1, 4})
                 .contiguous()
                 .view({3, n * heads, len, hd});
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  auto project = [&](const at::Tensor& o) {
    auto merged = o.view({n, heads, len, hd}).transpose(1, 2).reshape({n, len, w}).to(compute);
    return at::linear(merged, a.out_proj->weight, a.out_proj->bias).to(stream);
  };
  auto original = project(scaled_dot_attention(q, k, v, {}, /*need_grad=*/false));
  auto surgery = project(scaled_dot_attention(v, v, v, {}, /*need_grad=*/false));
  return {original, surgery};
}

/// x + MLP(ln_2(x)) in place on x (a fresh tensor), the MLP in the weights' dtype.
void add_mlp(ResidualBlockImpl& block, at::Tensor& x) {
  const int64_t w = x.size(-1);
  const auto compute = block.mlp->c_fc->weight.scalar_type();
  x.add_(block.mlp->forward(at::layer_norm(x, {w}, block.ln_2->weight, block.ln_2->bias, 1e-5).to(compute))
             .to(x.scalar_type()));
}

}  // namespace

DpamOutput dpam_forward(ClipVisionImpl& visual, const at::Tensor& images, const std::vector<int64_t>& features_list,
                        int64_t dpam_layer) {
  const auto& cfg = visual.config();
  VCP_CHECK(images.dim() == 4 && images.size(1) == 3, "vision tower expects images [B, 3, S, S], found ",
            images.sizes());
  const int64_t s = images.size(2), p = cfg.patch_size, w = cfg.width;
  VCP_CHECK(images.size(3) == s && s % p == 0, "vision tower expects square images with a side that is a multiple of ",
            p, ", found ", images.size(2), "x", images.size(3));
  const int64_t layers = static_cast<int64_t>(visual.resblocks->size());
  const int64_t first = first_dpam_block(layers, dpam_layer);
  VCP_CHECK(!features_list.empty(), "DPAM: features_list is empty");
  for (size_t i = 0; i < features_list.size(); ++i) {
    const int64_t l = features_list[i];
    VCP_CHECK(l >= 1 && l <= layers, "feature layer ", l, " is out of range: the vision tower has blocks 1..", layers);
    VCP_CHECK(i == 0 || l > features_list[i - 1], "DPAM: features_list must be strictly increasing, found ", l,
              " after ", features_list[i - 1]);
  }
  at::NoGradGuard no_grad;
  const int64_t b = images.size(0), grid = s / p;
  auto x = at::conv2d(images, visual.conv1->weight, {}, {p, p}).flatten(2).transpose(1, 2);
  auto cls = visual.class_embedding.to(x.scalar_type()).view({1, 1, w}).expand({b, 1, w});
  x = at::cat({cls, x}, 1);
  x = x + resize_positional_embedding_bilinear(visual.positional_embedding, grid).to(x.scalar_type());
  at::Tensor ori = at::layer_norm(x, {w}, visual.ln_pre->weight, visual.ln_pre->bias, 1e-5), surgery;

  DpamOutput out;
  size_t next = 0;
  for (int64_t i = 1; i <= layers; ++i) {
    auto& block = *visual.resblocks->ptr<ResidualBlockImpl>(i - 1);
    if (i < first) {
      ori = block.forward(ori);
    } else {
      if (!surgery.defined()) surgery = ori;
      auto [attn_ori, attn_vv] = dual_attention(block, ori);
      surgery = surgery + attn_vv;  // no FFN on the surgery stream
      ori = ori + attn_ori;
      add_mlp(block, ori);
    }
    if (next < features_list.size() && features_list[next] == i) {
      const auto& t = surgery.defined() ? surgery : ori;
      auto tokens = at::layer_norm(t, {w}, visual.ln_post->weight, visual.ln_post->bias, 1e-5);
      out.patch_tokens.push_back(at::matmul(tokens, visual.proj.to(tokens.scalar_type())));
      ++next;
    }
  }
  out.image_embedding = at::matmul(ori.select(1, 0), visual.proj.to(ori.scalar_type()));
  return out;
}

}  // namespace vcpclip::model
