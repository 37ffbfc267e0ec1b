// APRIL-GAN against the golden outputs of its official code (scripts/golden/make_golden_april_gan.py,
// tests/fixtures/april_gan/): the prompt ensemble's text features (1e-5), per-layer logits and
// probabilities, the summed map and the image scores (1e-4), the checkpoint layout (written by the
// official train.py's torch.save, read strictly), and the method's registry entry.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "vcp_fixture.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/methods/april_gan.h"

using namespace vcpclip;

namespace {

const std::string kDir = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/april_gan/";

const nlohmann::json& gold() {
  static const nlohmann::json j = [] {
    std::ifstream in(kDir + "golden.json");
    if (!in) throw std::runtime_error("missing " + kDir + "golden.json (run scripts/golden/make_golden_april_gan.py)");
    return nlohmann::json::parse(in);
  }();
  return j;
}

at::Tensor load(const std::string& name) {
  return io::read_npy(kDir + gold().at("tensors").at(name).at("file").get<std::string>());
}

model::ModelOptions options() {
  model::ModelOptions o;
  o.method = "april_gan";
  o.backbone = kDir + gold().at("config").get<std::string>();
  o.weights = kDir + gold().at("weights").get<std::string>();
  o.vocab = vcp_fixture::vocab_path();
  o.input_size = gold().at("image_size").get<int64_t>();
  o.features_list = gold().at("features_list").get<std::vector<int64_t>>();
  return o;
}

model::AprilGan fixture_model(bool with_checkpoint = true) {
  auto m = model::build_method(options(), c10::Device(c10::kCPU));
  auto a = std::dynamic_pointer_cast<model::AprilGanImpl>(m.ptr());
  if (!a) throw std::runtime_error("build_method(april_gan) did not build an AprilGanImpl");
  if (with_checkpoint) model::load_method_checkpoint(*a, kDir + gold().at("checkpoint").get<std::string>());
  a->eval();
  return model::AprilGan(a);
}

std::vector<std::string> classes() { return gold().at("classes").get<std::vector<std::string>>(); }

double max_diff(const at::Tensor& a, const at::Tensor& b) { return vcp_fixture::max_abs_diff(a, b); }

}  // namespace

TEST(AprilGanParity, PromptEnsembleTextFeaturesWithin1e5) {
  auto m = fixture_model(false);
  for (const std::string name : {"metal_nut", "bottle"}) {
    const auto ref = load("text_" + name);  // [E, 2]
    const auto ours = m->text_features(name).t();
    ASSERT_EQ(ours.sizes(), ref.sizes()) << name;
    const double d = max_diff(ours, ref);
    EXPECT_LE(d, 1e-5) << name;
    std::printf("text features '%s': max |diff| %.3g\n", name.c_str(), d);
  }
}

TEST(AprilGanParity, SentencesAreTheOfficialEnsemble) {
  const auto normal = model::april_gan_sentences("metal_nut", false);
  const auto abnormal = model::april_gan_sentences("metal_nut", true);
  ASSERT_EQ(normal.size(), 7u * 35u);
  ASSERT_EQ(abnormal.size(), 5u * 35u);
  EXPECT_EQ(normal.front(), "a bad photo of a metal_nut.");
  EXPECT_EQ(normal[35], "a bad photo of a flawless metal_nut.");
  EXPECT_EQ(abnormal.back(), "this is one metal_nut with damage in the scene.");
}

TEST(AprilGanParity, LogitsProbabilitiesMapsAndScoresWithin1e4) {
  auto m = fixture_model();
  const auto images = load("images");
  const auto names = classes();
  const auto text = m->text_for(names, images.size(0));
  const auto ref_logits = load("logits");  // [L, B, G², 2]
  {
    at::NoGradGuard ng;
    auto vis = m->clip->visual->forward(images, m->options().features_list, true);
    for (int64_t l = 0; l < ref_logits.size(0); ++l) {
      const auto ours = m->layer_logits(l, vis.patch_features[l].slice(1, 1), text);
      EXPECT_LE(max_diff(ours, ref_logits[l]), 1e-4) << "layer " << l;
    }
  }
  const auto out = m->forward_train(images, names);
  const auto ref_probs = load("probs");
  ASSERT_EQ(out.raw.size(), static_cast<size_t>(ref_probs.size(0)));
  for (size_t l = 0; l < out.raw.size(); ++l)
    EXPECT_LE(max_diff(out.raw[l], ref_probs[static_cast<int64_t>(l)]), 1e-4) << "layer " << l;

  const auto maps = m->predict_maps(images, nullptr, {}, names);
  EXPECT_FALSE(maps.post.defined());
  const double dm = max_diff(maps.raw, load("map"));
  const double ds = max_diff(maps.image_score, load("score"));
  EXPECT_LE(dm, 1e-4);
  EXPECT_LE(ds, 1e-4);
  // The maps must have contrast for the comparison to mean something.
  EXPECT_GT((maps.raw.max() - maps.raw.min()).item<double>(), 1.0);
  std::printf("map max |diff| %.3g, image score max |diff| %.3g\n", dm, ds);
}

TEST(AprilGanParity, OfficialCheckpointLoadsStrictlyAndRoundTrips) {
  auto m = fixture_model();
  const auto ckpt = io::read_reference_checkpoint(kDir + gold().at("checkpoint").get<std::string>());
  EXPECT_EQ(model::recognise_checkpoint(ckpt), "april_gan");
  const auto ours = m->to_checkpoint();
  ASSERT_EQ(ours.modules.size(), 1u);
  EXPECT_EQ(ours.modules[0].first, "trainable_linearlayer");
  const auto a = ours.flatten(), b = ckpt.flatten();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : b) {
    ASSERT_TRUE(a.count(k)) << k;
    EXPECT_TRUE(at::equal(a.at(k), t)) << k;
  }
  // A missing layer is an error naming the key.
  auto broken = ckpt;
  broken.modules[0].second.pop_back();
  const std::string err = vcpclip::testing::error_of([&] { m->load_checkpoint(broken, "x.pth"); });
  EXPECT_NE(err.find("trainable_linearlayer.fc.2.bias"), std::string::npos) << err;
}

TEST(AprilGanParity, RefusesAVcpClipCheckpointNamingBothMethods) {
  auto m = fixture_model(false);
  const std::string err = vcpclip::testing::error_of(
      [&] { model::load_method_checkpoint(*m, vcp_fixture::path(vcp_fixture::manifest().at("checkpoint"))); });
  EXPECT_NE(err.find("is a vcp_clip checkpoint"), std::string::npos) << err;
  EXPECT_NE(err.find("model.method is april_gan"), std::string::npos) << err;
}

TEST(AprilGanParity, NeedsAClassNamePerImage) {
  auto m = fixture_model();
  const auto images = load("images");
  const std::string err = vcpclip::testing::error_of([&] { m->predict_maps(images); });
  EXPECT_NE(err.find("APRIL-GAN (model.method april_gan) names the product in its prompts"), std::string::npos) << err;
  EXPECT_NE(err.find("--class NAME"), std::string::npos) << err;
}
