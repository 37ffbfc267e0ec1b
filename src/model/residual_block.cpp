// Pre-LayerNorm residual block shared by both CLIP towers (docs/design.md §2), batch-first.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/nn/init.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>

#include "clip_internal.h"
#include "vcpclip/common/error.h"
#include "vcpclip/model/clip_model.h"

namespace vcpclip::model {

torch::Tensor apply_activation(const torch::Tensor& x, Activation act) {
  if (act == Activation::kGelu) return at::gelu(x);  // exact (erf) form
  return x * at::sigmoid(x * 1.702);
}

// ------------------------------------------------------------------------------------------
LinearParamsImpl::LinearParamsImpl(int64_t in, int64_t out, bool init) {
  weight = register_parameter("weight", torch::empty({out, in}));
  bias = register_parameter("bias", torch::empty({out}));
  if (!init) return;
  // torch::nn::Linear's reset_parameters(), draw for draw.
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  torch::nn::init::uniform_(bias, -bound, bound);
}

torch::Tensor LinearParamsImpl::forward(const torch::Tensor& x) { return at::linear(x, weight, bias); }

// ------------------------------------------------------------------------------------------
PackedAttentionImpl::PackedAttentionImpl(int64_t width_, int64_t heads_, bool init) : width(width_), heads(heads_) {
  VCP_CHECK(heads > 0 && width % heads == 0, "attention width ", width, " is not divisible by ", heads, " heads");
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * width, width}));
  in_proj_bias = register_parameter("in_proj_bias", init ? torch::zeros({3 * width}) : torch::empty({3 * width}));
  out_proj = register_module("out_proj", LinearParams(width, width, init));
}

namespace {

constexpr int64_t kBlockedAttentionMinLength = 256;

/// q kᵀ (2-D or batched 3-D) in fp32 for q, k in bf16 on the CPU, through two bf16 oneDNN matmuls
/// instead of one fp32 BLAS call (10x slower here, and the dominant cost of a bf16 block): hi is the
/// product rounded to bf16; the second matmul's fused sum gives q kᵀ − hi (accumulated in fp32,
/// then rounded), so hi + lo keeps ~16 significant bits where hi alone keeps 8. docs/design.md §11.
torch::Tensor scores_from_bf16(const torch::Tensor& q, const torch::Tensor& k) {
  const auto kt = k.transpose(-2, -1);
  auto hi = q.dim() == 2 ? at::mm(q, kt) : at::bmm(q, kt);
  auto lo = q.dim() == 2 ? at::addmm(hi, q, kt, /*beta=*/-1) : at::baddbmm(hi, q, kt, /*beta=*/-1);
  return hi.to(at::kFloat).add_(lo.to(at::kFloat));
}

/// The attention scores q kᵀ / √hd in fp32 for q, k [NH, L, hd] (or [l, hd] rows of one head) in the
/// compute dtype: bf16 on the CPU takes the two-matmul route above, any other dtype is widened.
torch::Tensor attention_scores(const torch::Tensor& q, const torch::Tensor& k, double sqrt_hd) {
  const bool bf16_cpu = q.scalar_type() == at::kBFloat16 && q.device().is_cpu();
  if (bf16_cpu) return scores_from_bf16(q, k).div_(sqrt_hd);
  const auto qf = q.to(at::kFloat) / sqrt_hd;  // scaled first, as PyTorch's MHA
  return q.dim() == 2 ? at::mm(qf, k.to(at::kFloat).t()) : at::bmm(qf, k.to(at::kFloat).transpose(1, 2));
}

/// CPU inference path: softmax(q kᵀ / √hd + mask) v for q, k, v [NH, L, hd] in the compute dtype,
/// computed in (head, query-row chunk) tasks spread over the intra-op threads. Each task's score
/// block stays in cache instead of materialising [NH, L, L] (2-3x faster than the batched form for
/// long sequences on CPU). Not differentiable: used only when no gradient is needed.
torch::Tensor attention_cpu_tasks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& mask, double sqrt_hd) {
  const int64_t nh = q.size(0), len = q.size(1);
  const int64_t threads = at::get_num_threads();
  const int64_t chunks_per_head = std::max<int64_t>(1, (4 * threads + nh - 1) / nh);
  const int64_t chunk = std::min<int64_t>(256, std::max<int64_t>(32, (len + chunks_per_head - 1) / chunks_per_head));
  const int64_t nchunks = (len + chunk - 1) / chunk;
  auto out = at::empty_like(v);
  at::parallel_for(0, nh * nchunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t h = t / nchunks, r0 = (t % nchunks) * chunk, r1 = std::min(len, r0 + chunk);
      auto scores = attention_scores(q[h].slice(0, r0, r1), k[h], sqrt_hd);
      if (mask.defined()) scores.add_(mask.slice(0, r0, r1));
      auto rows = out[h].slice(0, r0, r1);
      at::mm_out(rows, at::softmax(scores, -1).to(v.scalar_type()), v[h]);
    }
  });
  return out;
}

}  // namespace

/// softmax(q kᵀ / √hd + mask) v for q, k, v [N·H, L, hd] (model/clip_internal.h): the scores in
/// fp32 (attention_scores), the probabilities then in v's dtype. LibTorch 1.13's path on every
/// device, CPU bf16's on 2.x, and AnomalyCLIP's DPAM streams' (model/dpam_vision.cpp).
torch::Tensor scaled_dot_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   const torch::Tensor& mask, bool need_grad) {
  const double sqrt_hd = std::sqrt(static_cast<double>(q.size(-1)));
  auto m = mask.defined() ? mask.to(at::kFloat) : mask;
  // Blocked tasks pay off once the [N·H, L, L] scores outgrow the caches (ViT-L-14 at 336/518:
  // L = 577/1370); short sequences (ViT-B-16 at 224: L = 197; text: 77) run faster batched.
  if (q.device().is_cpu() && !need_grad && q.size(1) >= kBlockedAttentionMinLength)
    return attention_cpu_tasks(q, k, v, m, sqrt_hd);
  auto scores = attention_scores(q, k, sqrt_hd);  // [N·H, L, L] fp32
  if (m.defined()) scores.add_(m);
  return at::bmm(at::softmax(scores, -1).to(v.scalar_type()), v);
}

#if TORCH_VERSION_MAJOR >= 2
namespace {
/// LibTorch ≥ 2.0: at::scaled_dot_product_attention on q, k, v [N, H, L, hd] (PyTorch picks the
/// flash, memory-efficient, cuDNN or math kernel per call; docs/design.md §11). The causal text
/// tower passes is_causal instead of its mask, so that the flash kernels stay eligible. The scale
/// is SDPA's default, 1/√hd.
torch::Tensor fused_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& mask, bool causal) {
  if (causal) return at::scaled_dot_product_attention(q, k, v, {}, /*dropout_p=*/0.0, /*is_causal=*/true);
  if (!mask.defined()) return at::scaled_dot_product_attention(q, k, v);
  return at::scaled_dot_product_attention(q, k, v, mask.to(q.scalar_type()));
}
}  // namespace
#endif

const char* attention_kernel() {
#if TORCH_VERSION_MAJOR >= 2
  return "at::scaled_dot_product_attention (LibTorch >= 2.0; CPU bf16 keeps the explicit fp32-score path)";
#else
  return "explicit softmax(QK^T/sqrt(d))V (LibTorch < 2.0 has no fused attention)";
#endif
}

torch::Tensor PackedAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, bool causal) {
  const int64_t n = x.size(0), len = x.size(1), hd = width / heads;
  VCP_CHECK(!causal || mask.defined(), "attention: causal = true needs the causal mask too (it is what LibTorch ",
            "< 2.0 adds), found none");
  // [N, L, 3W] → contiguous [3, N·H, L, hd]: q, k, v rows of the packed projection in that order.
  // The scores and softmax run in fp32 whatever the weights' dtype (runtime.precision): bf16 scores
  // (3 significant digits) would shift the attention weights by percents. The probabilities and v
  // then enter P·V in the weights' dtype, like the input of every other matmul of the block.
  auto qkv = at::linear(x, in_proj_weight, in_proj_bias)
                 .view({n, len, 3, heads, hd})
                 .permute({2, 0, 3, 1, 4})
                 .contiguous()
                 .view({3, n * heads, len, hd});
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  torch::Tensor out;
#if TORCH_VERSION_MAJOR >= 2
  // The fused kernels keep the scores and the softmax in fp32 accumulators for 16-bit inputs too.
  // CPU bf16 keeps the two-matmul fp32 scores below, whose map differences were measured
  // (docs/precision.md); SDPA's CPU bf16 kernel has not been compared with them.
  if (!(x.device().is_cpu() && q.scalar_type() == at::kBFloat16)) {
    const auto as4 = [&](const torch::Tensor& t) { return t.view({n, heads, len, hd}); };
    out = fused_attention(as4(q), as4(k), as4(v), mask, causal);
  }
#endif
  if (!out.defined()) {
    const bool need_grad = c10::GradMode::is_enabled() && (x.requires_grad() || in_proj_weight.requires_grad());
    out = scaled_dot_attention(q, k, v, mask, need_grad);
  }
  out = out.view({n, heads, len, hd}).transpose(1, 2).reshape({n, len, width}).to(out_proj->weight.scalar_type());
  return at::linear(out, out_proj->weight, out_proj->bias);
}

// ------------------------------------------------------------------------------------------
MlpImpl::MlpImpl(int64_t width, Activation act_, bool init) : act(act_) {
  c_fc = register_module("c_fc", LinearParams(width, 4 * width, init));
  c_proj = register_module("c_proj", LinearParams(4 * width, width, init));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  auto h = apply_activation(at::linear(x, c_fc->weight, c_fc->bias), act);
  return at::linear(h, c_proj->weight, c_proj->bias);
}

// ------------------------------------------------------------------------------------------
ResidualBlockImpl::ResidualBlockImpl(int64_t width, int64_t heads, Activation act, bool init) {
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-5)));
  attn = register_module("attn", PackedAttention(width, heads, init));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-5)));
  mlp = register_module("mlp", Mlp(width, act, init));
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, bool causal) {
  const int64_t w = x.size(-1);
  // Mixed precision (runtime.precision bf16/fp16): the attention and MLP run in their weights'
  // dtype, while the residual stream and the LayerNorms stay in x's (fp32), so that rounding does
  // not accumulate over the blocks. Both casts are no-ops in fp32.
  const auto stream = x.scalar_type(), compute = attn->in_proj_weight.scalar_type();
  auto h = attn->forward(at::layer_norm(x, {w}, ln_1->weight, ln_1->bias, 1e-5).to(compute), mask, causal).to(stream);
  h.add_(x);  // h is a fresh tensor: accumulate the residual in place
  auto out = mlp->forward(at::layer_norm(h, {w}, ln_2->weight, ln_2->bias, 1e-5).to(compute)).to(stream);
  out.add_(h);
  return out;
}

}  // namespace vcpclip::model
