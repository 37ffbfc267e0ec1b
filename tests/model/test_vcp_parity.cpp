// VCP-CLIP parity with the reference pipeline (scripts/golden/make_golden_vcp.py): every stage within
// 1e-4 absolute, and the test names the stage that drifted.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "vcp_fixture.h"
#include "vcpclip/model/vcp_clip.h"

using namespace vcpclip;
namespace fx = vcp_fixture;

namespace {

constexpr double kTol = 1e-4;

model::VcpClip& tiny_model() {
  static model::VcpClip m = [] {
    auto model = model::build_vcp_clip(fx::options(), c10::Device(c10::kCPU));
    model::load_vcp_checkpoint(*model, fx::path(fx::manifest().at("checkpoint").get<std::string>()));
    model->eval();
    return model;
  }();
  return m;
}

#define EXPECT_STAGE(stage, got, want)                                                                \
  do {                                                                                                \
    ASSERT_EQ((got).sizes(), (want).sizes()) << "stage '" << stage << "': shape differs";             \
    double d_ = fx::max_abs_diff(got, want);                                                          \
    std::printf("  stage %-40s max |diff| = %.3g\n", std::string(stage).c_str(), d_);                 \
    EXPECT_LE(d_, kTol) << "stage '" << stage << "' drifted from the reference: max |diff| = " << d_; \
  } while (0)

}  // namespace

TEST(VcpParity, TokenizedTemplatesMatchReference) {
  auto& m = tiny_model();
  EXPECT_TRUE(at::equal(m->templates().ids, fx::load("text_ids"))) << "stage 'template token ids'";
  EXPECT_EQ(m->templates().class_pos, (std::vector<int64_t>{6, 6}));
  EXPECT_EQ(m->templates().eot_pos, (std::vector<int64_t>{7, 7}));
}

TEST(VcpParity, StagesMatchReference) {
  auto& m = tiny_model();
  auto images = fx::load("images");
  at::NoGradGuard no_grad;
  auto vis = m->encode_image(images);
  EXPECT_STAGE("global feature", vis.global, fx::load("global"));
  auto cls = m->head->New_Lan_Embed->forward(vis.global, true);
  EXPECT_STAGE("class tokens (Pre-VCP)", cls, fx::load("class_tokens"));
  auto text = m->encode_text(fx::load("class_tokens"));
  EXPECT_STAGE("text features", text, fx::load("text"));
  auto raw = fx::load("raw_logits"), post = fx::load("post_logits");
  for (int64_t i = 0; i < raw.size(0); ++i) {
    auto tokens = vis.patch_features[i].slice(1, 1);
    EXPECT_STAGE("raw-branch logits, layer index " + std::to_string(i), m->raw_logits(i, tokens, text), raw[i]);
    EXPECT_STAGE("Post-VCP logits, layer index " + std::to_string(i), m->post_logits(tokens, text), post[i]);
  }
}

TEST(VcpParity, ForwardMapsMatchReference) {
  auto& m = tiny_model();
  at::NoGradGuard no_grad;
  auto out = m->forward(fx::load("images"));
  ASSERT_EQ(out.raw.size(), 3u);
  ASSERT_EQ(out.post.size(), 3u);
  ASSERT_EQ(out.raw[0].sizes(), (std::vector<int64_t>{3, 2, 64, 64}));
  // probabilities: the two channels sum to 1
  EXPECT_LE(fx::max_abs_diff(out.raw[1].sum(1), at::ones({3, 64, 64})), 1e-6);
  auto mean1 = [](const std::vector<at::Tensor>& v) {
    auto acc = at::zeros_like(v[0].select(1, 1));
    for (const auto& t : v) acc += t.select(1, 1);
    return acc / static_cast<double>(v.size());
  };
  EXPECT_STAGE("M_raw (forward)", mean1(out.raw), fx::load("m_raw"));
  EXPECT_STAGE("M_post (forward)", mean1(out.post), fx::load("m_post"));
}

TEST(VcpParity, PredictMapsAndScoreMatchReference) {
  auto& m = tiny_model();
  auto maps = m->predict_maps(fx::load("images"));
  EXPECT_STAGE("M_raw (predict_maps)", maps.raw, fx::load("m_raw"));
  EXPECT_STAGE("M_post (predict_maps)", maps.post, fx::load("m_post"));
  const int64_t k = fx::manifest().at("topk").get<int64_t>();
  auto topk_mean = [&](const at::Tensor& t) { return std::get<0>(t.flatten(1).topk(k, 1)).mean(1); };
  EXPECT_STAGE("image score", topk_mean(maps.raw) + topk_mean(maps.post), fx::load("score"));
}

TEST(VcpParity, BatchedTextPassEqualsPerImage) {
  // One text pass for all images × templates must equal the reference's per-image loop.
  auto& m = tiny_model();
  at::NoGradGuard no_grad;
  auto cls = fx::load("class_tokens");
  auto all = m->encode_text(cls);
  for (int64_t b = 0; b < cls.size(0); ++b)
    EXPECT_LE(fx::max_abs_diff(all[b], m->encode_text(cls.slice(0, b, b + 1))[0]), 1e-6) << "image " << b;
}
