// Strict weight loading into ClipModel: exact messages for missing / mis-shaped / unexpected
// tensors and for unreadable files; safetensors round trip gives the same model.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "model/clip_fixture.h"
#include "support/test_util.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/safetensors.h"
#include "vcpclip/io/weights_reader.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/model/clip_weights.h"

using vcpclip::testing::error_of;

using namespace vcpclip;
namespace fx = clip_fixture;
namespace fs = std::filesystem;

namespace {

model::ClipConfig tiny_cfg() { return model::ClipConfig::from_json_file(fx::path("tiny_clip.json")); }
std::string archive() { return fx::path("tiny_clip.pt"); }

std::vector<io::WeightEntry> entries(const std::map<std::string, std::vector<int64_t>>& shapes) {
  std::vector<io::WeightEntry> out;
  for (const auto& [name, shape] : shapes) out.push_back(io::WeightEntry{name, at::kHalf, shape});
  return out;
}

std::string tmp(const std::string& name) {
  auto d = fs::temp_directory_path() / ("vcpclip_test_clip_load_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return (d / name).string();
}

}  // namespace

TEST(ClipLoad, MissingTensorIsNamed) {
  auto t = io::read_clip_tensors(archive());
  t.erase("ln_final.weight");
  model::ClipModel m(tiny_cfg());
  EXPECT_EQ(error_of([&] { model::load_clip_weights(m, t, "w.pt"); }),
            "CLIP weights 'w.pt' do not fit the model: missing tensor 'ln_final.weight' (expected shape [32])");
}

TEST(ClipLoad, MisShapedTensorIsNamed) {
  auto t = io::read_clip_tensors(archive());
  t["visual.proj"] = at::zeros({64, 16});
  model::ClipModel m(tiny_cfg());
  EXPECT_EQ(error_of([&] { model::load_clip_weights(m, t, "w.pt"); }),
            "CLIP weights 'w.pt' do not fit the model: tensor 'visual.proj' has shape [64, 16], expected [64, 32]");
}

TEST(ClipLoad, UnexpectedTensorIsNamed) {
  auto t = io::read_clip_tensors(archive());
  t["visual.extra"] = at::zeros({3});
  model::ClipModel m(tiny_cfg());
  EXPECT_EQ(error_of([&] { model::load_clip_weights(m, t, "w.pt"); }),
            "CLIP weights 'w.pt' do not fit the model: unexpected tensor 'visual.extra' of shape [3]");
}

TEST(ClipLoad, WrongBackboneListsSeveralProblems) {
  auto cfg = tiny_cfg();
  cfg.vision.layers = 3;
  {
    model::ClipModel m(cfg);
    auto e = error_of([&] { model::load_clip_weights(m, io::read_clip_tensors(archive()), "w.pt"); });
    EXPECT_EQ(e.rfind("CLIP weights 'w.pt' do not fit the model: unexpected tensor "
                      "'visual.transformer.resblocks.3.attn.in_proj_bias' of shape [192]; ",
                      0),
              0u)
        << e;
    EXPECT_NE(e.find("; and 4 more"), std::string::npos) << e;  // 12 problems, 8 shown
  }
  cfg.text.layers = 4;
  model::ClipModel m(cfg);
  auto e = error_of([&] { model::load_clip_weights(m, io::read_clip_tensors(archive()), "w.pt"); });
  // Missing tensors are listed first.
  EXPECT_NE(e.find("missing tensor 'transformer.resblocks.3.ln_1.weight' (expected shape [32])"), std::string::npos)
      << e;
  EXPECT_NE(e.find("; and 16 more"), std::string::npos) << e;
}

TEST(ClipLoad, FailedLoadLeavesNothingHalfWritten) {
  auto t = io::read_clip_tensors(archive());
  t.erase("logit_scale");
  model::ClipModel m(tiny_cfg());
  auto before = m->visual->proj.clone();
  EXPECT_THROW(model::load_clip_weights(m, t, "w.pt"), vcpclip::Error);
  EXPECT_TRUE(at::equal(before, m->visual->proj));
}

TEST(ClipLoad, TruncatedArchiveIsAClearError) {
  std::ifstream in(archive(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto p = tmp("truncated.pt");
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  auto e = error_of([&] { model::load_clip_model(p, tiny_cfg()); });
  EXPECT_EQ(e.rfind("cannot read '" + p + "' as an OpenAI CLIP TorchScript archive: ", 0), 0u) << e;
  EXPECT_NE(e.find("truncated download"), std::string::npos) << e;
}

TEST(ClipLoad, RandomBytesAreAClearError) {
  std::mt19937 rng(11);
  std::string bytes(4096, '\0');
  for (auto& c : bytes) c = static_cast<char>(rng() & 0xff);
  bytes[0] = 'x';
  const auto p = tmp("random.bin");
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_EQ(error_of([&] { model::load_clip_model(p); }),
            "'" + p + "' is neither an OpenAI CLIP TorchScript archive (.pt, a zip file) nor a safetensors file");
  // Random bytes behind a zip signature reach LibTorch's reader and come back as an Error.
  bytes[0] = 'P', bytes[1] = 'K', bytes[2] = 3, bytes[3] = 4;
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  auto e = error_of([&] { model::load_clip_model(p); });
  EXPECT_EQ(e.rfind("cannot read '" + p + "' as an OpenAI CLIP TorchScript archive: ", 0), 0u) << e;
  EXPECT_EQ(error_of([&] { model::load_clip_model(tmp("absent.pt")); }),
            "CLIP weights file '" + tmp("absent.pt") + "' does not exist");
}

TEST(ClipLoad, SafetensorsRoundTripGivesTheSameModel) {
  auto t = io::read_clip_tensors(archive());
  const auto p = tmp("tiny.safetensors");
  io::write_safetensors(p, t);
  auto a = model::load_clip_model(archive(), tiny_cfg());
  auto b = model::load_clip_model(p, tiny_cfg());
  auto pb = b->named_parameters();
  for (const auto& item : a->named_parameters()) EXPECT_TRUE(at::equal(item.value(), pb[item.key()])) << item.key();
  torch::NoGradGuard ng;
  auto img = fx::load("image_48");
  EXPECT_TRUE(at::equal(a->visual->forward(img, {2}).global, b->visual->forward(img, {2}).global));
  // Loaded models are frozen and in eval mode.
  for (const auto& q : b->parameters()) EXPECT_FALSE(q.requires_grad());
  EXPECT_FALSE(b->is_training());
}

TEST(ClipLoad, InferredConfigNeedsTextHeadsForNarrowWidths) {
  // The tiny fixture's text width (32) is below OpenAI's 64-per-head rule: inference must refuse.
  auto e = error_of([&] { model::load_clip_model(archive()); });
  EXPECT_EQ(e, "cannot infer the text heads of '" + archive() +
                   "': text width 32 is not a multiple of 64 (OpenAI's heads = width / 64); give the model config "
                   "explicitly");
}

TEST(ClipLoad, InfersOpenAIConfigsFromShapes) {
  // Shapes of OpenAI's ViT-L-14-336 (names and shapes only: nothing is read).
  auto z = [](std::vector<int64_t> s) { return s; };
  std::map<std::string, std::vector<int64_t>> t = {{"visual.conv1.weight", z({1024, 3, 14, 14})},
                                                   {"visual.positional_embedding", z({577, 1024})},
                                                   {"visual.proj", z({1024, 768})},
                                                   {"text_projection", z({768, 768})},
                                                   {"positional_embedding", z({77, 768})},
                                                   {"token_embedding.weight", z({49408, 768})},
                                                   {"ln_final.weight", z({768})}};
  for (int i = 0; i < 24; ++i) t["visual.transformer.resblocks." + std::to_string(i) + ".attn.in_proj_weight"] = z({1});
  for (int i = 0; i < 12; ++i) t["transformer.resblocks." + std::to_string(i) + ".ln_1.weight"] = z({1});
  auto c = model::infer_clip_config(entries(t), "x.pt");
  EXPECT_EQ(c.name, "ViT-L-14-336");
  EXPECT_EQ(c.embed_dim, 768);
  EXPECT_EQ(c.vision.image_size, 336);
  EXPECT_EQ(c.vision.layers, 24);
  EXPECT_EQ(c.vision.width, 1024);
  EXPECT_EQ(c.vision.patch_size, 14);
  EXPECT_EQ(c.text.context_length, 77);
  EXPECT_EQ(c.text.vocab_size, 49408);
  EXPECT_EQ(c.text.width, 768);
  EXPECT_EQ(c.text.heads, 12);
  EXPECT_EQ(c.text.layers, 12);
  EXPECT_EQ(c.activation, model::Activation::kGelu);

  t["visual.positional_embedding"] = z({197, 1024});
  EXPECT_EQ(model::infer_clip_config(entries(t), "x.pt").name, "ViT-W1024-P14-196");
  t.erase("visual.proj");
  EXPECT_EQ(error_of([&] { model::infer_clip_config(entries(t), "x.pt"); }),
            "cannot infer the CLIP config of 'x.pt': tensor 'visual.proj' is missing (only OpenAI ViT CLIP "
            "checkpoints are supported)");
}
