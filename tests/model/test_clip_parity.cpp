// Parity of the C++ CLIP backbone with the reference implementation (golden outputs written by
// scripts/golden/make_golden_clip.py from a tiny random-weight model stored as an OpenAI-style
// TorchScript archive). Each stage has its own check so a drift names where it starts.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cstdio>
#include <limits>

#include "model/clip_fixture.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/model/clip_weights.h"

using namespace vcpclip;
namespace fx = clip_fixture;

namespace {

constexpr double kTol = 1e-5;  // relative (max abs diff / max abs value), every stage

/// Checks one stage and prints its error (the numbers quoted in the report).
void expect_close(const at::Tensor& got, const at::Tensor& ref, const std::string& stage) {
  ASSERT_EQ(got.sizes(), ref.sizes()) << "stage: " << stage;
  const double e = fx::rel_err(got, ref);
  std::printf("  %-48s rel err %.2e\n", stage.c_str(), e);
  EXPECT_LT(e, kTol) << "stage: " << stage;
}

model::ClipModel load_tiny() {
  auto cfg = model::ClipConfig::from_json_file(fx::path(fx::manifest().at("config").get<std::string>()));
  return model::load_clip_model(fx::path(fx::manifest().at("weights").get<std::string>()), cfg);
}

std::vector<int64_t> features_list() { return fx::manifest().at("features_list").get<std::vector<int64_t>>(); }

}  // namespace

TEST(ClipParity, VisionTowerAtEverySize) {
  auto m = load_tiny();
  torch::NoGradGuard ng;
  const auto layers = features_list();
  const int64_t patch = m->config().vision.patch_size;
  for (int64_t s : fx::manifest().at("sizes").get<std::vector<int64_t>>()) {
    SCOPED_TRACE("image size " + std::to_string(s));
    auto pos = m->visual->positional_embedding_for(s / patch);
    auto pos_ref = fx::load("pos_embed_" + std::to_string(s));
    expect_close(pos, pos_ref,
                 "S=" + std::to_string(s) + " positional embedding (grid " + std::to_string(s / patch) + ")");

    auto out = m->visual->forward(fx::load("image_" + std::to_string(s)), layers, /*need_global=*/true);
    ASSERT_EQ(out.patch_features.size(), layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      auto ref = fx::load("patch_" + std::to_string(s) + "_layer" + std::to_string(layers[i]));
      expect_close(out.patch_features[i], ref,
                   "S=" + std::to_string(s) + " patch features of block " + std::to_string(layers[i]));
    }
    auto g = fx::load("global_" + std::to_string(s));
    expect_close(out.global, g, "S=" + std::to_string(s) + " global image feature (ln_post, proj)");
  }
}

TEST(ClipParity, TextTower) {
  auto m = load_tiny();
  torch::NoGradGuard ng;
  auto f = m->encode_text(fx::load("text_ids"));
  auto ref = fx::load("text_features");
  expect_close(f, ref, "text features (EOT row of ln_final @ text_projection)");
}

TEST(ClipParity, ClassTokenRowIsAddedAsZeros) {
  auto m = load_tiny();
  const int64_t vocab = m->config().text.vocab_size;
  ASSERT_EQ(m->token_embedding->weight.size(0), vocab + 1);
  auto row = m->token_embedding->weight[vocab];
  EXPECT_TRUE(at::equal(row, fx::load("token_embedding_class_row")));
  EXPECT_EQ(row.abs().sum().item<float>(), 0.0f);
  // The rows before it are the archive's (not zero).
  EXPECT_GT(m->token_embedding->weight[vocab - 1].abs().sum().item<float>(), 0.0f);
}

TEST(ClipParity, PatchFeaturesWithoutGlobalSkipLaterBlocks) {
  auto m = load_tiny();
  torch::NoGradGuard ng;
  auto img = fx::load("image_32");
  auto full = m->visual->forward(img, {1, 3}, true);
  // Poison the last block: a forward that needs only blocks 1..3 must not touch it.
  const int64_t layers = m->config().vision.layers;
  for (auto& p : m->visual->resblocks[layers - 1]->parameters()) p.fill_(std::numeric_limits<float>::quiet_NaN());
  auto part = m->visual->forward(img, {3, 1}, /*need_global=*/false);
  EXPECT_FALSE(part.global.defined());
  ASSERT_EQ(part.patch_features.size(), 2u);
  EXPECT_TRUE(at::equal(part.patch_features[0], full.patch_features[1]));  // order follows features_list
  EXPECT_TRUE(at::equal(part.patch_features[1], full.patch_features[0]));
  auto poisoned = m->visual->forward(img, {1}, /*need_global=*/true);
  EXPECT_TRUE(at::isnan(poisoned.global).any().item<bool>());
}

TEST(ClipParity, PositionalCacheFollowsWeightUpdates) {
  auto m = load_tiny();
  torch::NoGradGuard ng;
  auto a = m->visual->positional_embedding_for(6).clone();
  m->visual->positional_embedding.mul_(2.0);
  auto b = m->visual->positional_embedding_for(6);
  EXPECT_LT(fx::rel_err(b, a * 2.0), 1e-6);
}

TEST(ClipParity, CudaMatchesGoldenToo) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  // Full fp32 on the GPU (TF32 would round the patch-embedding convolution to ~1e-3).
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  auto m = load_tiny();
  m->to(torch::kCUDA);
  torch::NoGradGuard ng;
  const auto layers = features_list();
  for (int64_t s : fx::manifest().at("sizes").get<std::vector<int64_t>>()) {
    auto out = m->visual->forward(fx::load("image_" + std::to_string(s)).cuda(), layers, true);
    for (size_t i = 0; i < layers.size(); ++i)
      expect_close(out.patch_features[i].cpu(),
                   fx::load("patch_" + std::to_string(s) + "_layer" + std::to_string(layers[i])),
                   "cuda S=" + std::to_string(s) + " patch features of block " + std::to_string(layers[i]));
    expect_close(out.global.cpu(), fx::load("global_" + std::to_string(s)), "cuda S=" + std::to_string(s) + " global");
  }
  expect_close(m->encode_text(fx::load("text_ids").cuda()).cpu(), fx::load("text_features"), "cuda text features");
}
