// Reading CLIP weights: OpenAI-style TorchScript archive (fixture), safetensors (own parser, round
// trip, F16/BF16, corrupt files), and config inference from tensor shapes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/openai_weights.h"
#include "vcpclip/io/pickle.h"
#include "vcpclip/io/safetensors.h"
#include "vcpclip/io/weights_reader.h"

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

TEST(OpenAIWeights, StreamingReaderListsFirstAndReadsIntoAnyDtype) {
  auto file = io::open_weights(archive());
  EXPECT_EQ(file->entries().size(), 4u * 12 + 3 * 12 + 8 + 6);
  const io::WeightEntry* e = file->find("visual.transformer.resblocks.2.attn.in_proj_weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dtype, at::kHalf);  // as stored: OpenAI ships fp16
  EXPECT_EQ(e->shape, (std::vector<int64_t>{192, 64}));
  EXPECT_EQ(file->find("input_resolution"), nullptr);  // not a weight
  // fp16 records straight into tensors of other dtypes, and into a strided view.
  auto f32 = at::empty({192, 64});
  file->read_into(e->name, f32);
  auto bf16 = at::empty({192, 64}, at::kBFloat16);
  file->read_into(e->name, bf16);
  EXPECT_TRUE(at::equal(bf16, f32.to(at::kBFloat16)));
  auto big = at::zeros({200, 64});
  file->read_into(e->name, big.slice(0, 0, 192));
  EXPECT_TRUE(at::equal(big.slice(0, 0, 192), f32));
  EXPECT_EQ(big.slice(0, 192).abs().sum().item<float>(), 0.f);
  EXPECT_EQ(error_of([&] {
              file->read_into(e->name, at::empty({64, 192}));
            }),
            "weights file '" + archive() + "', tensor '" + e->name +
                "': stored shape [192, 64] cannot be read into a tensor of shape [64, 192]");
  EXPECT_EQ(error_of([&] { file->read_into("visual.nothing", f32); }),
            "weights file '" + archive() + "' has no tensor 'visual.nothing'");
}

TEST(OpenAIWeights, EqualsTheTorchScriptInterpreter) {
  // The archive read without the interpreter gives exactly what torch::jit::load's module holds.
  auto t = io::read_clip_tensors(archive());
  auto m = torch::jit::load(archive(), c10::Device(c10::kCPU));
  size_t n = 0;
  auto check = [&](const std::string& name, const at::Tensor& v) {
    if (name == "input_resolution" || name == "context_length" || name == "vocab_size") return;
    ++n;
    ASSERT_TRUE(t.count(name)) << name;
    EXPECT_TRUE(at::equal(t.at(name), v.to(at::kFloat))) << name;
  };
  for (const auto& p : m.named_parameters(true)) check(p.name, p.value);
  for (const auto& b : m.named_buffers(true)) check(b.name, b.value);
  EXPECT_EQ(n, t.size());
}

TEST(OpenAIWeights, ReadsATorchSaveStateDictZip) {
  auto root = io::pickle::Value::dict(true);
  auto w = at::randn({3, 4}).to(at::kHalf);
  root->set_item(io::pickle::Value::string("visual.proj"), io::pickle::Value::make_tensor(w));
  root->set_item(io::pickle::Value::string("ln_final.bias"), io::pickle::Value::make_tensor(at::randn({4})));
  const auto p = tmp("state_dict.pt");
  io::pickle::save_torch_file(p, root);
  auto file = io::open_weights(p);
  ASSERT_EQ(file->entries().size(), 2u);
  EXPECT_TRUE(at::equal(file->read("visual.proj", at::kFloat), w.to(at::kFloat)));
  EXPECT_EQ(file->find("ln_final.bias")->dtype, at::kFloat);
}
