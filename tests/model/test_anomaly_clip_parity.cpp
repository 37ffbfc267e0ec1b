// AnomalyCLIP parity with the restated official pipeline (scripts/golden/make_golden_anomaly_clip.py,
// itself checked against the official code when the fixtures were made): DPAM patch tokens and
// image embedding, text features within 1e-5, maps and image scores within 1e-4; the DPAM rule;
// the prompt learner's fresh buffers equal the official constructor's.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "anomaly_clip_fixture.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/model/dpam_vision.h"

using namespace vcpclip;
namespace fx = anomaly_clip_fixture;

namespace {

#define EXPECT_STAGE(stage, got, want, tol)                                                                  \
  do {                                                                                                       \
    ASSERT_EQ((got).sizes(), (want).sizes()) << "stage '" << stage << "': shape differs";                    \
    const double d_ = fx::max_abs_diff(got, want);                                                           \
    std::printf("  stage %-36s max |diff| = %.3g\n", std::string(stage).c_str(), d_);                        \
    EXPECT_LE(d_, tol) << "stage '" << stage << "' drifted from the official pipeline: max |diff| = " << d_; \
  } while (0)

}  // namespace

TEST(AnomalyClipParity, DpamLayerRuleScalesTheOfficialTwentyOfTwentyFour) {
  EXPECT_EQ(model::default_dpam_layer(24), 20);  // the official DPAM_layer: surgery from block 6
  EXPECT_EQ(model::first_dpam_block(24, 20), 6);
  EXPECT_EQ(model::default_dpam_layer(12), 10);  // round(2.5) = 3 blocks before: surgery from block 4
  EXPECT_EQ(model::first_dpam_block(12, 10), 4);
  EXPECT_EQ(model::default_dpam_layer(8), 7);
  EXPECT_EQ(model::default_dpam_layer(4), 4);  // the fixture: block 1 plain, blocks 2..4 dual-path
  EXPECT_EQ(model::first_dpam_block(4, 4), 2);
  EXPECT_EQ(fx::manifest().at("dpam_layer").get<int64_t>(), model::default_dpam_layer(4));
  EXPECT_EQ(model::first_dpam_block(4, 5), 1);  // every block dual-path
  try {
    model::first_dpam_block(24, 1);
    FAIL() << "dpam_layer 1 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dpam_layer must be in [2, 25] for a vision tower of 24 blocks"),
              std::string::npos)
        << e.what();
  }
}

TEST(AnomalyClipParity, FreshPromptBuffersEqualTheOfficialConstructors) {
  // Before any checkpoint: the prefix/suffix/ids buffers come from the tokenizer and the tiny
  // backbone's token embedding, exactly as the official constructor built the fixture's.
  auto m = fx::fresh_model();
  auto ckpt = io::read_reference_checkpoint(fx::path("tiny_anomaly_clip.pth"), /*keep_integer=*/true).flatten();
  for (const auto& [name, t] : m->prompt_learner->state_tensors()) {
    if (name.find("token") == std::string::npos) continue;
    const auto& want = ckpt.at("prompt_learner." + name);
    ASSERT_EQ(t.scalar_type(), want.scalar_type()) << name;
    EXPECT_TRUE(at::equal(t, want)) << name;
  }
  EXPECT_EQ(ckpt.at("prompt_learner.tokenized_prompts_pos").scalar_type(), at::kInt);
  // Through the registry the backbone's weights are loaded after the method is built: the fresh
  // buffers must follow them (not the allocation-time embedding).
  auto built = model::build_method(fx::options(), c10::Device(c10::kCPU));
  for (const auto& [name, t] : built->to_checkpoint().flatten())
    if (name.find("token") != std::string::npos) EXPECT_TRUE(at::equal(t, ckpt.at(name))) << "registry-built " << name;
  // the EOT (49407) ends "X x12 object." at 15 and "X x12 damaged object." at 16
  EXPECT_EQ(m->prompt_learner->tokenized_prompts_pos.argmax().item<int64_t>(), 15);
  EXPECT_EQ(m->prompt_learner->tokenized_prompts_neg.argmax().item<int64_t>(), 16);
}

TEST(AnomalyClipParity, VisionDpamMatchesOfficial) {
  auto m = fx::model(/*multi=*/true);
  auto out = m->encode_image(fx::images());
  ASSERT_EQ(out.patch_tokens.size(), 3u);
  EXPECT_STAGE("image embedding (no ln_post)", out.image_embedding, fx::load("image_embedding"), 1e-5);
  EXPECT_STAGE("patch tokens, block 1 (before DPAM)", out.patch_tokens[0], fx::load("patch_tokens_multi_l1"), 1e-5);
  EXPECT_STAGE("patch tokens, block 3 (surgery)", out.patch_tokens[1], fx::load("patch_tokens_multi_l3"), 1e-5);
  EXPECT_STAGE("patch tokens, block 4 (surgery)", out.patch_tokens[2], fx::load("patch_tokens_multi_l4"), 1e-5);
  // Surgery tokens are not the original stream's: the plain tower's block-4 output differs.
  at::NoGradGuard ng;
  auto plain = m->clip->visual->forward(fx::images(), {4}, false).patch_features[0];
  auto plain_tokens = at::matmul(
      at::layer_norm(plain, {plain.size(-1)}, m->clip->visual->ln_post->weight, m->clip->visual->ln_post->bias, 1e-5),
      m->clip->visual->proj);
  EXPECT_GT(fx::max_abs_diff(plain_tokens, out.patch_tokens[2]), 1e-2);
}

TEST(AnomalyClipParity, TextFeaturesWithin1e5) {
  auto m = fx::model();
  at::NoGradGuard ng;
  EXPECT_STAGE("text features", m->encode_text(), fx::load("text"), 1e-5);
}

TEST(AnomalyClipParity, DeepPromptsAreRoundedThroughFp16) {
  // The official forward rounds compound_prompts_text through .half(): a change of a deep prompt
  // smaller than a quarter of an fp16 step (around an fp16 value) changes nothing, a full step does.
  auto m = fx::model();
  at::NoGradGuard ng;
  auto p = m->prompt_learner->compound_prompts()[0];
  const float h = at::tensor(p[0][0].item<float>()).to(at::kHalf).to(at::kFloat).item<float>();
  const float ulp = std::ldexp(1.0f, std::ilogb(h) - 10);  // fp16: 10 fraction bits
  p[0][0].fill_(h);
  const auto at_h = m->encode_text();
  p[0][0].fill_(h + 0.25f * ulp);
  EXPECT_TRUE(at::equal(m->encode_text(), at_h)) << "a sub-step change of a deep prompt changed the text";
  p[0][0].fill_(h + ulp);
  EXPECT_FALSE(at::equal(m->encode_text(), at_h));
}

TEST(AnomalyClipParity, MapsAndScoresWithin1e4) {
  auto m = fx::model();
  auto out = m->predict_maps(fx::images());
  EXPECT_STAGE("map (sum over layers, before gaussian)", out.raw, fx::load("map_sum"), 1e-4);
  EXPECT_STAGE("image score", out.image_score, fx::load("score"), 1e-4);
  // the scores are small here (~0.007): relative 1e-4 as well
  EXPECT_LE(fx::max_abs_diff(out.image_score, fx::load("score")), 1e-4 * fx::load("score").abs().min().item<double>());
  at::NoGradGuard ng;
  auto vis = m->encode_image(fx::images());
  EXPECT_STAGE("image logits", m->image_logits(vis.image_embedding, m->encode_text()), fx::load("image_logits"), 1e-4);
  // The maps have contrast (a flat map would pass any tolerance).
  const auto range = fx::manifest().at("map_range");
  EXPECT_LT(range[0].get<double>(), 0.05);
  EXPECT_GT(range[1].get<double>(), 0.95);
}

TEST(AnomalyClipParity, MapsSumOverSeveralLayers) {
  auto m = fx::model(/*multi=*/true);
  auto out = m->predict_maps(fx::images());
  EXPECT_STAGE("map, blocks 1+3+4", out.raw, fx::load("map_sum_multi"), 1e-4);
  EXPECT_GT(out.raw.max().item<double>(), 1.5);  // three layers: the sum exceeds one layer's range
}

TEST(AnomalyClipParity, EvalModeReusesTextUntilThePromptsChange) {
  auto m = fx::model();
  auto first = m->predict_maps(fx::images());
  auto again = m->predict_maps(fx::images());
  EXPECT_TRUE(at::equal(first.raw, again.raw));
  {
    at::NoGradGuard ng;
    m->prompt_learner->ctx_neg.mul_(0.5);  // an in-place change (an optimiser step) must be seen
  }
  auto changed = m->predict_maps(fx::images());
  EXPECT_GT(fx::max_abs_diff(changed.raw, first.raw), 1e-3);
}
