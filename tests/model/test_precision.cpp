// runtime.precision in the model: bf16 stores and runs the towers' residual blocks in bfloat16 while
// the head stays fp32; the maps stay within 1e-2 of fp32 on the golden fixture; fp16 and autocast
// need CUDA.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

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
