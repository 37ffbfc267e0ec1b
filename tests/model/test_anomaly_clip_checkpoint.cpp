// AnomalyCLIP checkpoints in the official layout ({'prompt_learner': state_dict}): the fixture made
// by the official prompt learner loads, in its order and dtypes (int32 token ids); what vcpclip
// writes round-trips and equals it in Python's torch.load; strict loading names the key; another
// method's checkpoint names the method its keys look like; the unused projections are kept.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "anomaly_clip_fixture.h"
#include "io/expected_tensors.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/io/config_node.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/model_options.h"

using namespace vcpclip;
namespace fx = anomaly_clip_fixture;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("vcpclip_anomaly_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

std::string load_error(const std::string& path) {
  auto m = fx::fresh_model();
  try {
    model::load_method_checkpoint(*m, path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

/// The fixture checkpoint with `edit` applied to its prompt_learner tensors, written to `name`.
std::string edited(const std::string& name, const std::function<void(io::NamedTensors&)>& edit) {
  auto ck = io::read_reference_checkpoint(fx::path("tiny_anomaly_clip.pth"), /*keep_integer=*/true);
  edit(ck.modules.at(0).second);
  const auto out = scratch(name).string();
  io::write_reference_checkpoint(out, ck);
  return out;
}

}  // namespace

TEST(AnomalyClipCheckpoint, OfficialLayoutLoadsInItsOrder) {
  auto m = fx::model();
  const auto want = fx::manifest().at("checkpoint_keys").get<std::vector<std::string>>();
  auto ck = m->to_checkpoint();
  ASSERT_EQ(ck.modules.size(), 1u);
  EXPECT_EQ(ck.modules[0].first, "prompt_learner");
  EXPECT_TRUE(ck.parameters.empty());
  std::vector<std::string> names;
  for (const auto& [n, t] : ck.modules[0].second) names.push_back(n);
  EXPECT_EQ(names, want);  // ctx, buffers, compound_prompts_text.*, compound_prompt_projections.*
  auto file = io::read_reference_checkpoint(fx::path("tiny_anomaly_clip.pth"), true).flatten();
  for (const auto& [n, t] : ck.modules[0].second) {
    EXPECT_EQ(t.scalar_type(), file.at("prompt_learner." + n).scalar_type()) << n;
    EXPECT_TRUE(at::equal(t, file.at("prompt_learner." + n))) << n;
  }
  EXPECT_EQ(file.at("prompt_learner.compound_prompt_projections.0.weight").sizes(), (at::IntArrayRef{896, 8}));
  // The official layout at ViT-L with depth 9 has 32 entries.
  EXPECT_EQ(2 + 4 + 2 + 8 + 16, 32);
  EXPECT_EQ(want.size(), 2u + 4 + 2 + 2 * (fx::manifest().at("depth").get<int64_t>() - 1) +
                             (fx::manifest().at("depth").get<int64_t>() - 1));
}

TEST(AnomalyClipCheckpoint, WrittenFileRoundTrips) {
  auto m = fx::model();
  const auto out = scratch("round_trip.pth").string();
  model::save_method_checkpoint(*m, out);
  auto other = fx::fresh_model(false, 5);
  model::load_method_checkpoint(*other, out);
  auto a = m->prompt_learner->state_tensors(), b = other->prompt_learner->state_tensors();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
  fs::remove_all(fs::path(out).parent_path());
}

TEST(AnomalyClipCheckpoint, TorchLoadSeesTheOfficialLayout) {
  const std::string py = vcpclip::testing::find_python("torch");
  if (py.empty()) GTEST_SKIP() << "no python3 that can import torch (set VCPCLIP_PYTHON)";
  auto m = fx::model();
  const auto out = scratch("from_cpp.pth").string();
  model::save_method_checkpoint(*m, out);
  const std::string script = std::string(VCPCLIP_SOURCE_DIR) + "/scripts/tools/check_state_dict_in_python.py";
  const std::string cmd = py + " " + script + " " + out + " " + fx::path("tiny_anomaly_clip.pth");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  // The checker really checks: after a change of one value it fails.
  {
    at::NoGradGuard ng;
    m->prompt_learner->ctx_pos.add_(1e-3);
  }
  model::save_method_checkpoint(*m, out);
  EXPECT_NE(std::system((cmd + " 2>/dev/null").c_str()), 0);
  fs::remove_all(fs::path(out).parent_path());
}

TEST(AnomalyClipCheckpoint, StrictLoadingNamesTheKey) {
  auto missing = edited("missing.pth", [](io::NamedTensors& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](const auto& kv) { return kv.first == "compound_prompts_text.1"; }),
            t.end());
  });
  EXPECT_NE(load_error(missing).find("missing tensor 'compound_prompts_text.1' (expected shape [4, 8])"),
            std::string::npos)
      << load_error(missing);
  auto shape = edited("shape.pth", [](io::NamedTensors& t) { t[0].second = at::zeros({1, 1, 16, 8}); });
  EXPECT_NE(load_error(shape).find("tensor 'ctx_pos' has shape [1, 1, 16, 8], expected [1, 1, 12, 8]"),
            std::string::npos)
      << load_error(shape);
  auto extra = edited("extra.pth", [](io::NamedTensors& t) { t.emplace_back("ctx_mid", at::zeros({3})); });
  EXPECT_NE(load_error(extra).find("unexpected tensor 'ctx_mid' of shape [3]"), std::string::npos) << load_error(extra);
  auto kind = edited("kind.pth", [](io::NamedTensors& t) {
    for (auto& [n, x] : t)
      if (n == "tokenized_prompts_neg") x = x.to(at::kFloat);
  });
  EXPECT_NE(load_error(kind).find("tensor 'tokenized_prompts_neg' is Float, expected integer (Int)"), std::string::npos)
      << load_error(kind);
  EXPECT_NE(load_error(kind).find("'prompt_learner' tensors of checkpoint '" + kind + "'"), std::string::npos);
}

TEST(AnomalyClipCheckpoint, AnotherMethodsCheckpointNamesTheMethod) {
  const auto vcp = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/vcp/tiny_vcp.pth";
  const auto e = load_error(vcp);
  EXPECT_NE(e.find("is a vcp_clip checkpoint (its keys have the layout of method vcp_clip), but model.method is "
                   "anomaly_clip: set model.method: vcp_clip or give a anomaly_clip checkpoint"),
            std::string::npos)
      << e;
  io::ReferenceCheckpoint other;
  other.parameters.emplace_back("weights", at::zeros({2}));
  const auto path = scratch("other.pth").string();
  io::write_reference_checkpoint(path, other);
  EXPECT_NE(load_error(path).find("is not an AnomalyCLIP checkpoint: expected one entry 'prompt_learner' (a "
                                  "state_dict), found 'weights'"),
            std::string::npos)
      << load_error(path);
  // ... and an AnomalyCLIP checkpoint is recognised as one (named for the other methods).
  EXPECT_EQ(model::recognise_checkpoint(io::read_reference_checkpoint(fx::path("tiny_anomaly_clip.pth"), true)),
            "anomaly_clip");
  fs::remove_all(fs::path(path).parent_path());
}

TEST(AnomalyClipCheckpoint, ProjectionsAreKeptButNotTrainable) {
  auto m = fx::model();
  for (const auto& p : m->prompt_learner->compound_prompt_projections->parameters()) EXPECT_FALSE(p.requires_grad());
  const auto trainable = m->prompt_learner->trainable_parameters();
  EXPECT_EQ(trainable.size(), 2u + static_cast<size_t>(fx::manifest().at("depth").get<int64_t>() - 1));
  for (const auto& p : trainable) EXPECT_TRUE(p.requires_grad());
  // A fresh learner copies one Linear into every projection (the official _get_clones).
  auto fresh = fx::fresh_model();
  auto& projs = *fresh->prompt_learner->compound_prompt_projections;
  ASSERT_EQ(projs.size(), 2u);
  auto p0 = projs[0]->named_parameters(), p1 = projs[1]->named_parameters();
  EXPECT_TRUE(at::equal(p0["weight"], p1["weight"]));
  EXPECT_TRUE(at::equal(p0["bias"], p1["bias"]));
}

TEST(AnomalyClipOptions, KeysParseAndOtherMethodsKeysAreRefused) {
  auto parse = [](const std::string& body) {
    auto n = io::ConfigNode::from_string("model:\n  backbone: b.json\n  method: anomaly_clip\n" + body, "<t>");
    auto s = n.section("model");
    return model::parse_model_options(s);
  };
  auto error = [&](const std::string& body) {
    try {
      parse(body);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto o = parse("  n_ctx: 10\n  t_n_ctx: 3\n  depth: 5\n  dpam_layer: 18\n  lambda: 1\n");
  EXPECT_EQ(o.method, "anomaly_clip");
  EXPECT_EQ(o.activation, model::Activation::kQuickGelu);  // the method's default
  const auto a = model::anomaly_clip_options(o);
  EXPECT_EQ(a.n_ctx, 10);
  EXPECT_EQ(a.t_n_ctx, 3);
  EXPECT_EQ(a.depth, 5);
  EXPECT_EQ(a.dpam_layer, 18);
  EXPECT_DOUBLE_EQ(a.lambda, 1.0);
  EXPECT_EQ(parse("  activation: gelu\n").activation, model::Activation::kGelu);  // an explicit choice stays
  const auto d = model::anomaly_clip_options(parse(""));
  EXPECT_EQ(d.n_ctx, 12);
  EXPECT_EQ(d.depth, 9);
  EXPECT_DOUBLE_EQ(d.lambda, 4.0);
  EXPECT_NE(error("  prompt_len: 2\n")
                .find("is a key of method vcp_clip, but 'model.method' in <t> is anomaly_clip (its own keys: n_ctx, "
                      "t_n_ctx, depth, dpam_layer, lambda)"),
            std::string::npos)
      << error("  prompt_len: 2\n");
  EXPECT_NE(error("  t_n_ctx: 13\n").find("expected 1..n_ctx (12), found 13"), std::string::npos)
      << error("  t_n_ctx: 13\n");
  EXPECT_NE(error("  dpam_layer: 1\n").find("expected 0 (the default rule) or >= 2, found 1"), std::string::npos);
  EXPECT_NE(error("  lambda: -1\n").find("expected a finite number >= 0"), std::string::npos);
  EXPECT_FALSE(error("  n_ctxx: 1\n").empty());  // unknown keys stay errors
  // the method's defaults for post-processing and training
  const auto& info = model::method_info("anomaly_clip");
  EXPECT_DOUBLE_EQ(info.postprocess.sigma, 4.0);
  EXPECT_TRUE(info.postprocess.method_score);
  EXPECT_EQ(info.train.epochs, 15);
  EXPECT_EQ(info.train.batch_size, 8);
  EXPECT_DOUBLE_EQ(info.train.lr, 1e-3);
  EXPECT_FALSE(info.needs_class_name);
}
