// Few-shot reference memory (docs/design.md §13) against the Python restatement of APRIL-GAN's
// few-shot branch (scripts/golden/make_golden_few_shot.py, tests/fixtures/vcp/few_shot*.npy) on the
// tiny VCP fixture; save/load round trip and the refusal of a memory made with another model; the
// normal level and scale (leave-one-out, augmented views) and the normalised map D̂ against
// scripts/golden/make_golden_few_shot_fusion.py (tests/fixtures/vcp/few_shot_fusion*).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "support/test_util.h"
#include "vcp_fixture.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/safetensors.h"
#include "vcpclip/model/reference_memory.h"
#include "vcpclip/model/vcp_clip.h"

using namespace vcpclip;
namespace fx = vcp_fixture;
namespace fs = std::filesystem;
using vcpclip::testing::error_of;

namespace {

model::VcpClip& tiny_model() {
  static model::VcpClip m = [] {
    auto model = model::build_vcp_clip(fx::options(), c10::Device(c10::kCPU));
    model::load_vcp_checkpoint(*model, fx::path("tiny_vcp.pth"));
    model->eval();
    return model;
  }();
  return m;
}

nlohmann::json few_shot_manifest() {
  std::ifstream in(fx::path("few_shot.json"));
  return nlohmann::json::parse(in);
}

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

model::ReferenceMemory golden_memory(const std::vector<int64_t>& layers) {
  const auto images = fx::load("images");
  return model::build_reference_memory(*tiny_model(), images.slice(0, 0, 2), layers, /*batch=*/1);
}

}  // namespace

TEST(FewShotParity, MemoryAndMapMatchThePythonRestatement) {
  const auto images = fx::load("images");
  const auto manifest = few_shot_manifest();  // kept alive: the loop walks into it
  ASSERT_EQ(manifest.at("sets").size(), 2u);
  for (const auto& set : manifest.at("sets")) {
    const auto layers = set.at("layers").get<std::vector<int64_t>>();
    SCOPED_TRACE(::testing::Message() << "layers " << set.at("layers").dump());
    const auto mem = golden_memory(layers);
    ASSERT_EQ(mem.features.size(), layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto want = io::read_npy(fx::path(set.at("memory").at(std::to_string(layers[i])).get<std::string>()));
      ASSERT_EQ(mem.features[i].sizes(), want.sizes());
      EXPECT_LT(max_abs(mem.features[i], want), 1e-5) << "memory of layer " << layers[i];
    }
    const auto want = io::read_npy(fx::path(set.at("map").get<std::string>()));
    const std::vector<const model::ReferenceMemory*> refs(3, &mem);
    const auto maps = tiny_model()->predict_maps(images, nullptr, refs);
    ASSERT_TRUE(maps.few_shot.defined());
    ASSERT_EQ(maps.few_shot.sizes(), want.sizes());
    EXPECT_LT(max_abs(maps.few_shot, want), 1e-5);
    // The test image that is no reference is far from the memory somewhere; the references are not.
    EXPECT_GT(maps.few_shot[2].max().item<double>(), 1e-2);
  }
}

TEST(FewShotParity, ZeroShotMapsUnchangedAndImagesWithoutMemoryGetZero) {
  const auto images = fx::load("images");
  const auto mem = golden_memory({1, 4});  // layer 1 is not in features_list [2, 3, 4]
  const auto plain = tiny_model()->predict_maps(images);
  EXPECT_FALSE(plain.few_shot.defined());
  const auto with = tiny_model()->predict_maps(images, nullptr, {&mem, nullptr, &mem});
  EXPECT_TRUE(at::equal(plain.raw, with.raw));
  EXPECT_TRUE(at::equal(plain.post, with.post));
  EXPECT_EQ(with.few_shot[1].abs().max().item<double>(), 0.0);
  const auto want = io::read_npy(fx::path("few_shot_map_1_4.npy"));
  EXPECT_LT(max_abs(with.few_shot[2], want[2]), 1e-5);
  EXPECT_EQ(error_of([&] { tiny_model()->predict_maps(images, nullptr, {&mem}); }),
            "VCP-CLIP: 1 reference memories for 3 images");
}

TEST(FewShotParity, SaveLoadRoundTripAndRefusalForAnotherModel) {
  auto mem = golden_memory({2, 3, 4});
  mem.images = {"a.png", "b.png"};
  mem.image_sha256 = {std::string(64, 'a'), std::string(64, 'b')};
  mem.identity = {"backbone-sha", "weights-sha", 333, "checkpoint-sha", 64};
  const auto path = (fs::temp_directory_path() / ("vcpclip_refmem_" + std::to_string(::getpid()) + ".safetensors"));
  model::save_reference_memory(mem, path.string());
  const auto back = model::load_reference_memory(path.string());
  EXPECT_EQ(back.layers, mem.layers);
  EXPECT_EQ(back.images, mem.images);
  EXPECT_EQ(back.image_sha256, mem.image_sha256);
  EXPECT_EQ(back.fingerprint(), mem.fingerprint());
  ASSERT_EQ(back.features.size(), mem.features.size());
  for (size_t i = 0; i < mem.features.size(); ++i) EXPECT_TRUE(at::equal(back.features[i], mem.features[i]));
  EXPECT_NO_THROW(model::check_reference_identity(back, mem.identity, "m.safetensors"));

  auto other = mem.identity;
  other.checkpoint_sha256 = "other-sha";
  EXPECT_EQ(error_of([&] { model::check_reference_identity(back, other, "m.safetensors"); }),
            "reference memory m.safetensors was made with another model: checkpoint SHA-256 checkpoint-sha in the "
            "memory, other-sha in this run; build it again for this model");
  other = mem.identity;
  other.weights_sha256 = "";
  EXPECT_EQ(error_of([&] { model::check_reference_identity(back, other, "m.safetensors"); }),
            "reference memory m.safetensors was made with another model: weights SHA-256 weights-sha in the memory, "
            "(none) in this run; build it again for this model");
  other = mem.identity;
  other.backbone_sha256 = "b2";
  EXPECT_EQ(error_of([&] { model::check_reference_identity(back, other, "m.safetensors"); }),
            "reference memory m.safetensors was made with another model: backbone SHA-256 backbone-sha in the memory, "
            "b2 in this run; build it again for this model");
  other = mem.identity;
  other.input_size = 128;
  EXPECT_EQ(error_of([&] { model::check_reference_identity(back, other, "m.safetensors"); }),
            "reference memory m.safetensors was made with another model: image_size 64 in the memory, 128 in this "
            "run; build it again for this model");
  // The method travels with the file too (absent in files of before: vcp_clip).
  EXPECT_EQ(back.identity.method, "vcp_clip");
  other = mem.identity;
  other.method = "april_gan";
  EXPECT_EQ(error_of([&] { model::check_reference_identity(back, other, "m.safetensors"); }),
            "reference memory m.safetensors was made with method vcp_clip, but this run's model.method is april_gan; "
            "build it again for this method");
  // A memory's identity travels with the file: a changed fingerprint means other references.
  auto changed = mem;
  changed.image_sha256[1] = std::string(64, 'c');
  EXPECT_NE(changed.fingerprint(), mem.fingerprint());
  fs::remove(path);
  EXPECT_EQ(error_of([&] { model::load_reference_memory(path.string()); }),
            "reference memory " + path.string() + " does not exist");
}

TEST(FewShotParity, MapEqualsTheBruteForceMinimumOverALargeMemory) {
  // 300 references of the fixture's 64 patches: the map must equal the brute-force minimum.
  const auto images = fx::load("images");
  auto mem = golden_memory({4});
  mem.features[0] = at::cat(std::vector<at::Tensor>(150, mem.features[0]), 0);
  const auto tokens = tiny_model()->encode_layers(images, {4});
  const auto d = model::few_shot_map(mem, tokens, 64);
  const auto t = tokens[0].slice(1, 1);
  const auto tn = t / t.norm(2, {-1}, true);
  const auto brute = 1 - std::get<0>(at::einsum("bnw,mw->bnm", {tn, mem.features[0]}).max(2));
  const auto up = at::upsample_bilinear2d(brute.reshape({3, 1, 8, 8}), {64, 64}, true).squeeze(1);
  EXPECT_LT(max_abs(d, up), 1e-5);
}

namespace {

nlohmann::json fusion_manifest() {
  std::ifstream in(fx::path("few_shot_fusion.json"));
  return nlohmann::json::parse(in);
}

/// max |a − b| / max(1, max |b|): D̂ is in standard deviations, tens of units at most.
double scaled_error(const at::Tensor& a, const at::Tensor& b) {
  return max_abs(a, b) / std::max(1.0, b.abs().max().item<double>());
}

}  // namespace

TEST(FewShotParity, NormalStatisticsAndNormalizedMapMatchThePythonRestatement) {
  // scripts/golden/make_golden_few_shot_fusion.py: leave-one-out (K = 2) and augmented views (K = 1).
  const auto images = fx::load("images");
  const auto manifest = fusion_manifest();
  const auto layers = manifest.at("layers").get<std::vector<int64_t>>();
  ASSERT_EQ(manifest.at("sets").size(), 2u);
  for (const auto& set : manifest.at("sets")) {
    const auto refs = set.at("references").get<std::vector<int64_t>>();
    SCOPED_TRACE(::testing::Message() << "K = " << refs.size());
    const auto mem = model::build_reference_memory(*tiny_model(), images.index_select(0, at::tensor(refs)), layers, 1);
    ASSERT_TRUE(mem.has_normal_stats());
    const auto level = set.at("normal_level").get<std::vector<double>>();
    const auto scale = set.at("normal_scale").get<std::vector<double>>();
    ASSERT_EQ(mem.normal_level.size(), layers.size());
    for (size_t l = 0; l < layers.size(); ++l) {
      EXPECT_NEAR(mem.normal_level[l], level[l], 1e-5 * level[l]) << "level of layer " << layers[l];
      EXPECT_NEAR(mem.normal_scale[l], scale[l], 1e-4 * scale[l]) << "scale of layer " << layers[l];
    }
    EXPECT_NEAR(mem.normal_max, set.at("normal_max").get<double>(), 1e-4 * set.at("normal_max").get<double>());
    const std::vector<const model::ReferenceMemory*> per_image(3, &mem);
    const auto maps = tiny_model()->predict_maps(images, nullptr, per_image);
    ASSERT_TRUE(maps.few_shot_normalized.defined());
    const auto want = io::read_npy(fx::path(set.at("normalized_map").get<std::string>()));
    ASSERT_EQ(maps.few_shot_normalized.sizes(), want.sizes());
    EXPECT_LT(scaled_error(maps.few_shot_normalized, want), 1e-4);
    // D is unchanged by the statistics: APRIL-GAN's map of make_golden_few_shot.py for K = 2.
    if (refs.size() == 2) EXPECT_LT(max_abs(maps.few_shot, io::read_npy(fx::path("few_shot_map_2_3_4.npy"))), 1e-5);
  }
}

TEST(FewShotParity, AugmentedViewsAndLeaveOneOutByHand) {
  const auto images = fx::load("images");
  // augmented_views(image, 8) shifts by 8 / 2 = 4 pixels (inside, away from the border; float32
  // grid coordinates: 1e-4).
  const auto v = model::augmented_views(images[2], 8);
  ASSERT_EQ(v.sizes(), (std::vector<int64_t>{6, 3, 64, 64}));
  EXPECT_LT(max_abs(v[0].slice(2, 8, 56), images[2].slice(2, 12, 60)), 1e-4) << "view 0: content from 4 px right";
  EXPECT_LT(max_abs(v[2].slice(1, 8, 56), images[2].slice(1, 12, 60)), 1e-4) << "view 2: content from 4 px below";
  // Leave-one-out: identical references are at distance 0 from each other.
  const auto f = at::cat({at::eye(4), at::eye(4)}, 0);
  EXPECT_LT(model::normal_distances(f, 2).abs().max().item<double>(), 1e-6);
  const auto d = model::normal_distances(at::eye(4), 2);  // rows 0,1 vs rows 2,3: orthogonal
  EXPECT_LT((d - 1).abs().max().item<double>(), 1e-6);
  EXPECT_EQ(error_of([] { model::normal_distances(at::eye(4), 1); }),
            "normal distances: one reference needs the tokens [V, 1+G², 4] of its augmented views");
  EXPECT_EQ(error_of([] { model::normal_distances(at::eye(5), 2); }),
            "normal distances: a memory [5, 5] does not hold 2 reference image(s)");
}

TEST(FewShotParity, NormalStatisticsSurviveSaveLoadAndVersion1LoadsWithout) {
  auto mem = golden_memory({2, 3, 4});
  mem.images = {"a.png", "b.png"};
  mem.image_sha256 = {std::string(64, 'a'), std::string(64, 'b')};
  mem.identity = {"backbone-sha", "weights-sha", 333, "checkpoint-sha", 64};
  const auto dir = fs::temp_directory_path() / ("vcpclip_refmem_v_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  model::save_reference_memory(mem, (dir / "v2.safetensors").string());
  const auto back = model::load_reference_memory((dir / "v2.safetensors").string());
  EXPECT_EQ(back.normal_level, mem.normal_level);
  EXPECT_EQ(back.normal_scale, mem.normal_scale);
  EXPECT_EQ(back.normal_max, mem.normal_max);
  // A version 1 file (written before the statistics): loads, without them.
  auto file = io::read_safetensors_with_metadata((dir / "v2.safetensors").string());
  auto info = nlohmann::json::parse(file.metadata.at("reference"));
  info.erase("normal_level");
  info.erase("normal_scale");
  info.erase("normal_max");
  file.metadata["reference"] = info.dump();
  file.metadata["version"] = "1";
  io::write_safetensors((dir / "v1.safetensors").string(), file.tensors, file.metadata);
  const auto old = model::load_reference_memory((dir / "v1.safetensors").string());
  EXPECT_FALSE(old.has_normal_stats());
  const auto maps = tiny_model()->predict_maps(fx::load("images"), nullptr, {&old, &old, &old});
  EXPECT_TRUE(maps.few_shot.defined());
  EXPECT_FALSE(maps.few_shot_normalized.defined());
  file.metadata["version"] = "3";
  io::write_safetensors((dir / "v3.safetensors").string(), file.tensors, file.metadata);
  EXPECT_EQ(
      error_of([&] { model::load_reference_memory((dir / "v3.safetensors").string()); }),
      "reference memory " + (dir / "v3.safetensors").string() + " has an unsupported version '3' (expected 1 or 2)");
  fs::remove_all(dir);
}
