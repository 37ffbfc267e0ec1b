// runtime.precision in the model: bf16 stores and runs the towers' residual blocks in bfloat16 while
// the head stays fp32; the maps stay within 1e-2 of fp32 on the golden fixture; fp16 and autocast
// need CUDA.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "model/vcp_fixture.h"
#include "support/test_util.h"
#include "vcpclip/model/vcp_clip.h"

using vcpclip::testing::error_of;
using namespace vcpclip;
namespace fx = vcp_fixture;

namespace {

model::VcpClip fixture_model() {
  auto m = model::build_vcp_clip(fx::options(), c10::Device(c10::kCPU));
  model::load_vcp_checkpoint(*m, fx::path("tiny_vcp.pth"));
  m->eval();
  return m;
}

}  // namespace

TEST(Precision, Bf16TowersStayWithinTolerance) {
  auto m = fixture_model();
  const auto images = fx::load("images");
  auto ref = m->predict_maps(images);
  m->set_precision(Precision::kBf16);
  EXPECT_EQ(m->precision(), Precision::kBf16);
  // Attention and MLP weights in bf16; LayerNorms (and the residual stream) stay fp32.
  for (const auto& p : m->clip->visual->resblocks->named_parameters()) {
    const bool ln = p.key().find(".ln_") != std::string::npos;
    EXPECT_EQ(p.value().scalar_type(), ln ? at::kFloat : at::kBFloat16) << p.key();
  }
  for (const auto& p : m->clip->resblocks->parameters()) EXPECT_EQ(p.scalar_type(), at::kFloat);  // text tower
  for (const auto& p : m->head->parameters()) EXPECT_EQ(p.scalar_type(), at::kFloat);             // the head stays fp32
  EXPECT_EQ(m->clip->visual->proj.scalar_type(), at::kFloat);
  EXPECT_EQ(m->clip->token_embedding->weight.scalar_type(), at::kFloat);
  auto low = m->predict_maps(images);
  ASSERT_EQ(low.raw.scalar_type(), at::kFloat);
  ASSERT_EQ(low.post.scalar_type(), at::kFloat);
  const double raw = fx::max_abs_diff(low.raw, ref.raw), post = fx::max_abs_diff(low.post, ref.post);
  const double blend = fx::max_abs_diff(0.2 * low.raw + 0.8 * low.post, 0.2 * ref.raw + 0.8 * ref.post);
  std::printf("bf16 vs fp32 on the golden fixture: max |M_raw diff| %.3g, |M_post diff| %.3g, |blend diff| %.3g\n", raw,
              post, blend);
  EXPECT_LE(raw, 1e-2);
  EXPECT_LE(post, 1e-2);
  EXPECT_GT(raw + post, 0.0);  // bf16 really ran
  // The training forward runs in bf16 too (gradients reach the head through the bf16 text tower).
  m->train();
  auto out = m->forward(images);
  auto loss = out.raw[0].mean() + out.post[0].mean();
  loss.backward();
  EXPECT_TRUE(m->head->prompt_embeddings.grad().defined());
  EXPECT_GT(m->head->prompt_embeddings.grad().abs().sum().item<double>(), 0.0);
}

TEST(Precision, Fp32IsUnchangedAndCpuRefusesFp16AndAutocast) {
  auto m = fixture_model();
  const auto images = fx::load("images");
  m->set_precision(Precision::kFp32);
  auto maps = m->predict_maps(images);
  EXPECT_LE(fx::max_abs_diff(maps.raw, fx::load("m_raw")), 1e-4);
  auto e = error_of([&] { m->set_precision(Precision::kFp16); });
  EXPECT_EQ(e.rfind("runtime.precision fp16 needs a CUDA device", 0), 0u) << e;
  e = error_of([&] { m->set_precision(Precision::kAutocast); });
  EXPECT_EQ(e.rfind("runtime.precision autocast is CUDA autocast", 0), 0u) << e;
  EXPECT_EQ(m->precision(), Precision::kFp32);  // a refused precision changes nothing
}

namespace {

/// PackedAttention's output computed in float64 from the module's own bf16 projections of `x`
/// (the rounding every bf16 path shares), with the exact scores and probabilities.
at::Tensor attention_float64(model::PackedAttentionImpl& a, const at::Tensor& x) {
  const int64_t n = x.size(0), len = x.size(1), w = a.width, h = a.heads, hd = w / h;
  auto qkv = at::linear(x, a.in_proj_weight, a.in_proj_bias).to(at::kDouble);  // bf16 products, widened
  qkv = qkv.view({n, len, 3, h, hd}).permute({2, 0, 3, 1, 4}).reshape({3, n * h, len, hd});
  auto p = at::softmax(at::bmm(qkv[0], qkv[1].transpose(1, 2)) / std::sqrt(double(hd)), -1);
  auto o = at::bmm(p, qkv[2]).view({n, h, len, hd}).transpose(1, 2).reshape({n, len, w});
  return at::linear(o, a.out_proj->weight.to(at::kDouble), a.out_proj->bias.to(at::kDouble));
}

}  // namespace

// The bf16 attention scores are taken as hi + lo from two bf16 matmuls (docs/design.md §11): with
// scores of magnitude ~100, plain bf16 scores (8 significant bits) would move the attention
// weights by tens of percent; hi + lo keeps the output within the rounding of bf16 inputs. Both the
// batched path (short sequences) and the blocked CPU path (>= 256 positions) are checked.
TEST(Precision, Bf16AttentionScoresKeepFp32Accuracy) {
  at::NoGradGuard ng;
  at::manual_seed(5);
  for (const int64_t len : {40, 300}) {
    model::PackedAttention attn(128, 2);
    attn->in_proj_weight.normal_(0, 1.0 / std::sqrt(128.0));
    attn->out_proj->weight.normal_(0, 1.0 / std::sqrt(128.0));
    attn->to(at::kBFloat16);
    auto x = (at::randn({2, len, 128}) * 6.0).to(at::kBFloat16);  // scores up to ~|150|
    const auto ref = attention_float64(*attn, x);
    const double got = (attn->forward(x).to(at::kDouble) - ref).abs().max().item<double>();
    const double scale = ref.abs().max().item<double>();
    const auto qkv = at::linear(x, attn->in_proj_weight, attn->in_proj_bias).to(at::kDouble);
    auto q = qkv.slice(-1, 0, 64), k = qkv.slice(-1, 128, 192);  // head 0's q and k
    const double largest = at::matmul(q, k.transpose(1, 2)).abs().max().item<double>() / 8.0;
    std::printf("bf16 attention, L = %lld: largest score %.0f, max |out - float64| %.3g of max |out| %.3g\n",
                (long long)len, largest, got, scale);
    EXPECT_GT(largest, 50.0);      // the scores are large enough for plain bf16 to fail
    EXPECT_LE(got, 2e-2 * scale);  // within bf16 input/output rounding
  }
}
