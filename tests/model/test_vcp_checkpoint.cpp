// VcpHead ↔ reference checkpoint: exact names, strict loading (errors name key and file),
// round trip; model options validation; training semantics (dropout, gradients, frozen CLIP).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <filesystem>

#include "vcp_fixture.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/io/config_node.h"
#include "vcpclip/model/vcp_clip.h"

using namespace vcpclip;
namespace fx = vcp_fixture;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const vcpclip::Error& e) {
    return e.what();
  }
  return "<no error>";
}

model::VcpHeadConfig tiny_head_config() {
  model::VcpHeadConfig c;
  c.vision_width = 64;
  c.text_width = 8;
  c.embed_dim = 8;
  c.num_feature_layers = 3;
  c.prompt_len = 2;
  c.deep_prompt_len = 1;
  c.deep_layers = 2;
  c.post_heads = 8;
  return c;
}

std::string ckpt_path() { return fx::path("tiny_vcp.pth"); }

}  // namespace

TEST(VcpCheckpoint, HeadNamesAreTheReferenceNamesInFileOrder) {
  model::VcpHead head(tiny_head_config(), 1);
  auto ref = io::read_reference_checkpoint(ckpt_path());
  auto mine = head->to_checkpoint();
  ASSERT_EQ(mine.modules.size(), ref.modules.size());
  for (std::size_t m = 0; m < ref.modules.size(); ++m) {
    EXPECT_EQ(mine.modules[m].first, ref.modules[m].first);
    ASSERT_EQ(mine.modules[m].second.size(), ref.modules[m].second.size()) << ref.modules[m].first;
    for (std::size_t i = 0; i < ref.modules[m].second.size(); ++i) {
      EXPECT_EQ(mine.modules[m].second[i].first, ref.modules[m].second[i].first);
      EXPECT_EQ(mine.modules[m].second[i].second.sizes(), ref.modules[m].second[i].second.sizes());
    }
  }
  ASSERT_EQ(mine.parameters.size(), ref.parameters.size());
  for (std::size_t i = 0; i < ref.parameters.size(); ++i) {
    EXPECT_EQ(mine.parameters[i].first, ref.parameters[i].first);
    EXPECT_EQ(mine.parameters[i].second.sizes(), ref.parameters[i].second.sizes());
  }
  // and named_parameters() is the flattened set
  std::set<std::string> names;
  for (const auto& kv : head->named_parameters()) names.insert(kv.key());
  std::set<std::string> flat;
  for (const auto& kv : ref.flatten()) flat.insert(kv.first);
  EXPECT_EQ(names, flat);
}

TEST(VcpCheckpoint, LoadThenExportRoundTripsExactly) {
  model::VcpHead head(tiny_head_config(), 1);
  auto ref = io::read_reference_checkpoint(ckpt_path());
  head->load_checkpoint(ref, ckpt_path());
  auto tmp = std::filesystem::temp_directory_path() / "vcp_roundtrip_test.pth";
  io::write_reference_checkpoint(tmp.string(), head->to_checkpoint());
  model::VcpHead other(tiny_head_config(), 2);
  other->load_checkpoint(io::read_reference_checkpoint(tmp.string()), tmp.string());
  auto a = ref.flatten();
  for (const auto& kv : other->named_parameters()) EXPECT_TRUE(at::equal(kv.value(), a.at(kv.key()))) << kv.key();
  std::filesystem::remove(tmp);
}

TEST(VcpCheckpoint, StrictLoadingNamesKeyAndFile) {
  auto ref = io::read_reference_checkpoint(ckpt_path());
  {  // missing
    auto c = ref;
    c.parameters.erase(c.parameters.begin() + 2);  // deep_prompt_embeddings
    model::VcpHead head(tiny_head_config(), 1);
    auto e = error_of([&] { head->load_checkpoint(c, "x/missing.pth"); });
    EXPECT_EQ(e.rfind("the tensors of checkpoint 'x/missing.pth' do not fit the VCP-CLIP head (prompt_len 2, ", 0), 0u)
        << e;
    EXPECT_NE(e.find("missing tensor 'deep_prompt_embeddings' (expected shape [2, 1, 8])"), std::string::npos) << e;
  }
  {  // unexpected
    auto c = ref;
    c.modules[2].second.emplace_back("extra_proj.weight", at::zeros({2}));
    model::VcpHead head(tiny_head_config(), 1);
    auto e = error_of([&] { head->load_checkpoint(c, "y.pth"); });
    EXPECT_NE(e.find("unexpected tensor 'Zero_try.extra_proj.weight'"), std::string::npos) << e;
  }
  {  // mis-shaped: a model with prompt_len 3 against the r = 2 file
    auto cfg = tiny_head_config();
    cfg.prompt_len = 3;
    model::VcpHead head(cfg, 1);
    auto e = error_of([&] { head->load_checkpoint(ref, ckpt_path()); });
    EXPECT_NE(e.find(ckpt_path()), std::string::npos) << e;
    EXPECT_NE(e.find("tensor 'New_Lan_Embed.prompt_query' has shape [1, 2, 8], expected [1, 3, 8]"), std::string::npos)
        << e;
  }
  {  // shallow model (D = 0) has no deep_prompt_embeddings
    auto cfg = tiny_head_config();
    cfg.deep_layers = 0;
    model::VcpHead head(cfg, 1);
    auto e = error_of([&] { head->load_checkpoint(ref, "z.pth"); });
    EXPECT_NE(e.find("unexpected tensor 'deep_prompt_embeddings'"), std::string::npos) << e;
  }
}

TEST(VcpCheckpoint, InitIsSeededAndReferenceLike) {
  model::VcpHead a(tiny_head_config(), 7), b(tiny_head_config(), 7), c(tiny_head_config(), 8);
  EXPECT_TRUE(at::equal(a->prompt_embeddings, b->prompt_embeddings));
  EXPECT_FALSE(at::equal(a->prompt_embeddings, c->prompt_embeddings));
  EXPECT_LE(a->deep_prompt_embeddings.abs().max().item<double>(), 1.0);
  EXPECT_LE(a->New_Lan_Embed->prompt_query.abs().max().item<double>(), 2.0);
  EXPECT_NEAR(a->New_Lan_Embed->prompt_temp.item<double>(), std::log(1 / 0.07), 1e-6);
  EXPECT_NEAR(a->Zero_try->prompt_temp_l1.item<double>(), std::log(1 / 0.07), 1e-6);
  EXPECT_TRUE(at::equal(a->prompt_norm->weight, at::ones({8})));
  auto groups = a->parameter_groups();
  EXPECT_EQ(groups.second.size(), 2u);
  EXPECT_EQ(groups.first.size() + 2, a->parameters().size());
}

TEST(VcpOptions, ParseAndValidate) {
  auto node = io::ConfigNode::from_string(
      "model:\n  backbone: b.json\n  features_list: [2, 3]\n  prompt_len: 3\n  use_global: false\n", "<t>");
  auto sec = node.section("model");
  auto o = model::parse_model_options(sec);
  EXPECT_EQ(o.features_list, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(o.prompt_len, 3);
  EXPECT_FALSE(o.use_global);
  EXPECT_EQ(o.input_size, 518);
  EXPECT_EQ(o.deep_prompt_layers, -1);

  auto parse = [](const std::string& body) {
    auto n = io::ConfigNode::from_string("model:\n  backbone: b.json\n" + body, "<t>");
    auto s = n.section("model");
    return error_of([&] { model::parse_model_options(s); });
  };
  EXPECT_NE(parse("  prompt_len: 0\n").find("expected ≥ 1, found 0"), std::string::npos);
  EXPECT_NE(parse("  templates_normal: [\"a photo of a good thing\"]\n")
                .find("must contain <|class|> exactly once, found 0 in \"a photo of a good thing\""),
            std::string::npos);
  EXPECT_NE(parse("  features_list: [6, 6]\n").find("strictly increasing"), std::string::npos);
  EXPECT_NE(parse("  activation: relu\n").find("expected gelu or quick_gelu, found 'relu'"), std::string::npos);
  EXPECT_NE(parse("  prompt_lenn: 2\n").find("prompt_lenn"), std::string::npos);

  auto clip = model::ClipConfig::from_json_file(fx::path("tiny_vcp_clip.json"));
  auto opts = fx::options();
  opts.features_list = {2, 5};
  EXPECT_NE(error_of([&] {
              model::validate_model_options(opts, clip, "cfg.yaml");
            }).find("cfg.yaml: features_list entry 5 is outside the vision tower"),
            std::string::npos);
  opts = fx::options();
  opts.input_size = 60;
  EXPECT_NE(
      error_of([&] { model::validate_model_options(opts, clip, "cfg.yaml"); }).find("multiple of the patch size 8"),
      std::string::npos);
  opts = fx::options();
  opts.deep_prompt_layers = 1;
  EXPECT_NE(error_of([&] {
              model::validate_model_options(opts, clip, "cfg.yaml");
            }).find("deep_prompt_layers must be -1, 0 or 2"),
            std::string::npos);
}

TEST(VcpTraining, DropoutGradientsAndFrozenBackbone) {
  auto m = model::build_vcp_clip(fx::options(), c10::Device(c10::kCPU));
  model::load_vcp_checkpoint(*m, ckpt_path());
  auto images = fx::load("images").slice(0, 0, 2);
  m->eval();
  {
    at::NoGradGuard ng;
    auto a = m->forward(images).text, b = m->forward(images).text;
    EXPECT_TRUE(at::equal(a, b)) << "eval mode must be deterministic (no prompt dropout)";
  }
  m->train();
  EXPECT_TRUE(m->head->is_training());
  EXPECT_FALSE(m->clip->is_training());
  auto out = m->forward(images);
  {
    at::NoGradGuard ng;
    EXPECT_FALSE(at::equal(out.text, m->forward(images).text)) << "prompt dropout must be active in training";
  }
  at::Tensor loss = at::zeros({});
  for (auto& p : out.raw) loss = loss + p.select(1, 1).mean();
  for (auto& p : out.post) loss = loss + p.select(1, 1).mean();
  loss.backward();
  for (const char* name :
       {"prompt_embeddings", "deep_prompt_embeddings", "prompt_proj.weight", "prompt_norm.bias",
        "New_Lan_Embed.prompt_query", "New_Lan_Embed.prompt_linear1.fc.weight", "New_Lan_Embed.prompt_temp",
        "Zero_try.q_proj_pre.weight", "Zero_try.prompt_temp_l1", "trainable_linearlayer.fc.0.weight"}) {
    auto g = m->head->named_parameters()[name].grad();
    ASSERT_TRUE(g.defined()) << name << " got no gradient";
    EXPECT_GT(g.abs().sum().item<double>(), 0.0) << name;
  }
  for (const auto& p : m->clip->parameters()) EXPECT_FALSE(p.requires_grad());
  EXPECT_FALSE(m->head->prompt_text_projection.grad().defined());  // trained in the reference, unused
}
