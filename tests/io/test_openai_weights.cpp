// Reading CLIP weights: OpenAI-style TorchScript archive (fixture), safetensors (own parser, round
// trip, F16/BF16, corrupt files), and config inference from tensor shapes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/openai_weights.h"
#include "vcpclip/io/safetensors.h"

using vcpclip::testing::error_of;

using namespace vcpclip;
namespace fs = std::filesystem;

namespace {

std::string archive() { return std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/clip/tiny_clip.pt"; }

std::string tmp(const std::string& name) {
  auto d = fs::temp_directory_path() / ("vcpclip_test_openai_weights_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return (d / name).string();
}

/// Writes a safetensors file by hand: header JSON text + raw bytes.
void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
}

std::string bytes_of(const at::Tensor& t) {
  auto c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

}  // namespace

TEST(OpenAIWeights, ReadsTorchScriptArchiveAsFloat32) {
  auto t = io::read_clip_tensors(archive());
  // 4 vision blocks, 3 text blocks of 12 tensors + 8 vision + 6 text/global tensors; the
  // archive's input_resolution / context_length / vocab_size entries are dropped.
  EXPECT_EQ(t.size(), 4u * 12 + 3 * 12 + 8 + 6);
  EXPECT_FALSE(t.count("input_resolution"));
  EXPECT_FALSE(t.count("vocab_size"));
  for (const auto& [k, v] : t) {
    EXPECT_EQ(v.scalar_type(), at::kFloat) << k;
    EXPECT_TRUE(v.device().is_cpu()) << k;
    // fp16-exact values (the archive stores fp16).
    EXPECT_TRUE(at::equal(v, v.to(at::kHalf).to(at::kFloat))) << k;
  }
  EXPECT_EQ(t.at("token_embedding.weight").sizes(), (std::vector<int64_t>{1000, 32}));  // no <|class|> row yet
  EXPECT_EQ(t.at("visual.transformer.resblocks.2.attn.in_proj_weight").sizes(), (std::vector<int64_t>{192, 64}));
  EXPECT_EQ(t.at("visual.conv1.weight").sizes(), (std::vector<int64_t>{64, 3, 8, 8}));
}

TEST(OpenAIWeights, SafetensorsRoundTrip) {
  std::map<std::string, at::Tensor> t = {{"a.weight", at::randn({3, 5})},
                                         {"b", at::randn({7})},
                                         {"scalar", at::full({}, 2.5)},
                                         {"empty", at::zeros({0, 4})}};
  const auto p = tmp("rt.safetensors");
  io::write_safetensors(p, t);
  EXPECT_TRUE(io::is_safetensors_file(p));
  auto r = io::read_clip_tensors(p);  // detected by content
  ASSERT_EQ(r.size(), t.size());
  for (const auto& [k, v] : t) {
    ASSERT_TRUE(r.count(k)) << k;
    EXPECT_EQ(r[k].sizes(), v.sizes()) << k;
    EXPECT_TRUE(at::equal(r[k], v)) << k;
  }
  // Header length is a multiple of 8 and the header is valid JSON with F32 entries.
  std::ifstream in(p, std::ios::binary);
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  EXPECT_EQ(n % 8, 0u);
  std::string h(n, ' ');
  in.read(h.data(), n);
  auto j = nlohmann::json::parse(h);
  EXPECT_EQ(j["a.weight"]["dtype"], "F32");
  EXPECT_EQ(j["a.weight"]["shape"], nlohmann::json::array({3, 5}));
}

TEST(OpenAIWeights, SafetensorsHalfAndBFloat16) {
  auto h = at::randn({2, 3}).to(at::kHalf);
  auto b = at::randn({4}).to(at::kBFloat16);
  std::string data = bytes_of(h) + bytes_of(b);
  std::string header = R"({"h":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
                       R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[12,20]},"__metadata__":{"x":"y"}})";
  const auto p = tmp("half.safetensors");
  write_raw(p, header, data);
  auto r = io::read_safetensors(p);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(at::equal(r["h"], h.to(at::kFloat)));
  EXPECT_TRUE(at::equal(r["b"], b.to(at::kFloat)));
}

TEST(OpenAIWeights, SafetensorsErrorsNameFileAndTensor) {
  const auto p = tmp("bad.safetensors");
  write_raw(p, R"({"x":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  EXPECT_EQ(error_of([&] { io::read_clip_tensors(p); }),
            "safetensors file '" + p + "', tensor 'x': unsupported dtype 'I32' (supported: F32, F16, BF16)");
  write_raw(p, R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", std::string(12, '\0'));
  EXPECT_EQ(error_of([&] { io::read_clip_tensors(p); }),
            "safetensors file '" + p + "', tensor 'x': shape [2, 2] of F32 needs 16 bytes but data_offsets span 12");
  // Truncated data section.
  write_raw(p, R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(10, '\0'));
  EXPECT_EQ(error_of([&] { io::read_clip_tensors(p); }),
            "safetensors file '" + p +
                "', tensor 'x': data ends at byte 16 of the data section but the file holds only 10 bytes there "
                "(truncated file?)");
  // Truncated header.
  io::write_safetensors(p, {{"w", at::ones({64})}});
  fs::resize_file(p, 20);
  auto e = error_of([&] { io::read_clip_tensors(p); });
  EXPECT_EQ(e.rfind("safetensors file '" + p + "' is truncated: the header claims ", 0), 0u) << e;
  // Broken JSON.
  write_raw(p, R"({"x":{"dtype":"F32",)", "");
  e = error_of([&] { io::read_clip_tensors(p); });
  EXPECT_EQ(e.rfind("safetensors file '" + p + "' has an unreadable JSON header: ", 0), 0u) << e;
}

TEST(OpenAIWeights, NotAWeightsFile) {
  const auto p = tmp("text.txt");
  std::ofstream(p) << "hello, this is not a checkpoint\n";
  EXPECT_EQ(error_of([&] { io::read_clip_tensors(p); }),
            "'" + p + "' is neither an OpenAI CLIP TorchScript archive (.pt, a zip file) nor a safetensors file");
  const auto empty = tmp("empty.pt");
  std::ofstream(empty).flush();
  EXPECT_EQ(error_of([&] { io::read_clip_tensors(empty); }),
            "'" + empty + "' is neither an OpenAI CLIP TorchScript archive (.pt, a zip file) nor a safetensors file");
  EXPECT_EQ(error_of([&] { io::read_clip_tensors(fs::temp_directory_path().string()); }),
            "CLIP weights path '" + fs::temp_directory_path().string() + "' is not a file");
}

TEST(OpenAIWeights, InfersOpenAIConfigsFromShapes) {
  // Shapes of OpenAI's ViT-L-14-336 without allocating them (expanded zero-size storage).
  auto z = [](std::vector<int64_t> s) { return at::zeros({1}).expand(s); };
  std::map<std::string, at::Tensor> t = {{"visual.conv1.weight", z({1024, 3, 14, 14})},
                                         {"visual.positional_embedding", z({577, 1024})},
                                         {"visual.proj", z({1024, 768})},
                                         {"text_projection", z({768, 768})},
                                         {"positional_embedding", z({77, 768})},
                                         {"token_embedding.weight", z({49408, 768})},
                                         {"ln_final.weight", z({768})}};
  for (int i = 0; i < 24; ++i) t["visual.transformer.resblocks." + std::to_string(i) + ".attn.in_proj_weight"] = z({1});
  for (int i = 0; i < 12; ++i) t["transformer.resblocks." + std::to_string(i) + ".ln_1.weight"] = z({1});
  auto c = io::infer_clip_config(t, "x.pt");
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
  EXPECT_EQ(c.activation, "gelu");

  t["visual.positional_embedding"] = z({197, 1024});
  EXPECT_EQ(io::infer_clip_config(t, "x.pt").name, "ViT-W1024-P14-196");
  t.erase("visual.proj");
  EXPECT_EQ(error_of([&] { io::infer_clip_config(t, "x.pt"); }),
            "cannot infer the CLIP config of 'x.pt': tensor 'visual.proj' is missing (only OpenAI ViT CLIP "
            "checkpoints are supported)");
}
