// CLIP backbone structure: OpenAI parameter names, config reading, the residual block against an
// independent multi-head attention (LibTorch's F::multi_head_attention_forward), activations.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/functional/activation.h>

#include <set>

#include "support/test_util.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/model/clip_model.h"

using vcpclip::testing::error_of;

using namespace vcpclip;
using vcpclip::model::ClipConfig;

namespace {

ClipConfig tiny() { return ClipConfig::from_json_file(std::string(VCPCLIP_SOURCE_DIR) + "/configs/models/tiny.json"); }

/// The block computed independently: sequence-first MHA from LibTorch's functional API.
torch::Tensor reference_block(model::ResidualBlockImpl& b, const torch::Tensor& x, const torch::Tensor& mask,
                              int64_t heads, bool quick) {
  namespace F = torch::nn::functional;
  const int64_t w = x.size(-1);
  auto ln = [&](const torch::Tensor& t, const torch::nn::LayerNorm& l) {
    return F::layer_norm(t, F::LayerNormFuncOptions({w}).weight(l->weight).bias(l->bias).eps(1e-5));
  };
  auto h = ln(x, b.ln_1).transpose(0, 1);  // [L, N, W]
  auto opts = F::MultiheadAttentionForwardFuncOptions(w, heads, b.attn->in_proj_weight, b.attn->in_proj_bias, {}, {},
                                                      false, 0.0, b.attn->out_proj->weight, b.attn->out_proj->bias)
                  .training(false)
                  .need_weights(false);
  if (mask.defined()) opts.attn_mask(mask);
  auto a = std::get<0>(F::multi_head_attention_forward(h, h, h, opts)).transpose(0, 1);
  auto y = x + a;
  auto f = F::linear(ln(y, b.ln_2), b.mlp->c_fc->weight, b.mlp->c_fc->bias);
  f = quick ? f * torch::sigmoid(1.702 * f) : F::gelu(f);
  return y + F::linear(f, b.mlp->c_proj->weight, b.mlp->c_proj->bias);
}

void randomize(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  for (auto& p : m.parameters()) p.normal_(0, 0.3);
}

}  // namespace

TEST(ClipModel, ParameterNamesAreOpenAIs) {
  auto cfg = tiny();
  model::ClipModel m(cfg);
  std::set<std::string> names;
  for (const auto& p : m->named_parameters()) names.insert(p.key());
  std::set<std::string> expected = {"visual.conv1.weight",
                                    "visual.class_embedding",
                                    "visual.positional_embedding",
                                    "visual.ln_pre.weight",
                                    "visual.ln_pre.bias",
                                    "visual.ln_post.weight",
                                    "visual.ln_post.bias",
                                    "visual.proj",
                                    "token_embedding.weight",
                                    "positional_embedding",
                                    "ln_final.weight",
                                    "ln_final.bias",
                                    "text_projection",
                                    "logit_scale"};
  auto block = [&](const std::string& prefix) {
    for (const char* s : {"ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
                          "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",
                          "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"})
      expected.insert(prefix + s);
  };
  for (int i = 0; i < cfg.vision.layers; ++i) block("visual.transformer.resblocks." + std::to_string(i) + ".");
  for (int i = 0; i < cfg.text.layers; ++i) block("transformer.resblocks." + std::to_string(i) + ".");
  EXPECT_EQ(names, expected);
  EXPECT_TRUE(m->named_buffers().is_empty());
  EXPECT_EQ(m->token_embedding->weight.size(0), cfg.text.vocab_size + 1);
  EXPECT_EQ(m->token_embedding->weight[cfg.text.vocab_size].abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(m->visual->positional_embedding.size(0), cfg.native_grid() * cfg.native_grid() + 1);
}

TEST(ClipModel, ShippedConfigsParse) {
  const std::string dir = std::string(VCPCLIP_SOURCE_DIR) + "/configs/models/";
  auto b16 = ClipConfig::from_json_file(dir + "ViT-B-16.json");
  EXPECT_EQ(b16.name, "ViT-B-16");
  EXPECT_EQ(b16.embed_dim, 512);
  EXPECT_EQ(b16.vision.patch_size, 16);
  EXPECT_EQ(b16.text.heads, 8);
  auto l14 = ClipConfig::from_json_file(dir + "ViT-L-14.json");
  EXPECT_EQ(l14.vision.image_size, 224);
  auto l336 = ClipConfig::from_json_file(dir + "ViT-L-14-336.json");
  EXPECT_EQ(l336.vision.image_size, 336);
  EXPECT_EQ(l336.vision.width, 1024);
  EXPECT_EQ(l336.vision_heads(), 16);
  EXPECT_EQ(l336.activation, model::Activation::kGelu);
  auto t = tiny();
  EXPECT_EQ(t.text.width, t.embed_dim);  // Pre-VCP needs text width == embed_dim
  EXPECT_GE(t.vision.layers, 4);
  // to_json_text round-trips.
  auto again = ClipConfig::from_json_text(l336.to_json_text(), "<round trip>", "x");
  EXPECT_EQ(again.to_json_text(), l336.to_json_text());
}

TEST(ClipModel, ConfigErrorsNameKeyAndOrigin) {
  const std::string base = R"({"embed_dim":32,"vision_cfg":{"image_size":32,"layers":2,"width":64,"patch_size":8},)"
                           R"("text_cfg":{"context_length":77,"vocab_size":49408,"width":32,"heads":2,"layers":1})";
  EXPECT_NO_THROW(ClipConfig::from_json_text(base + "}", "m.json", "m"));
  EXPECT_EQ(ClipConfig::from_json_text(base + R"(,"activation":"quick_gelu"})", "m.json", "m").activation,
            model::Activation::kQuickGelu);
  EXPECT_EQ(error_of([&] { ClipConfig::from_json_text(base + R"(,"activation":"relu"})", "m.json", "m"); }),
            "CLIP config m.json, key activation: expected gelu or quick_gelu, found 'relu'");
  EXPECT_NE(
      error_of([&] { ClipConfig::from_json_text(base + R"(,"embed_dimm":3})", "m.json", "m"); }).find("embed_dimm"),
      std::string::npos);
  auto bad_patch = R"({"embed_dim":32,"vision_cfg":{"image_size":30,"layers":2,"width":64,"patch_size":8},)"
                   R"("text_cfg":{"width":32,"heads":2,"layers":1}})";
  EXPECT_EQ(error_of([&] { ClipConfig::from_json_text(bad_patch, "m.json", "m"); }),
            "CLIP config m.json: vision_cfg.image_size 30 is not a multiple of vision_cfg.patch_size 8");
  EXPECT_EQ(error_of([&] { ClipConfig::from_json_file("/nonexistent/x.json"); }),
            "cannot open CLIP model config '/nonexistent/x.json': no such file");
}

TEST(ClipModel, ResidualBlockMatchesLibTorchMultiheadAttention) {
  torch::manual_seed(3);
  torch::NoGradGuard ng;
  for (bool quick : {false, true}) {
    model::ResidualBlock b(64, 4, quick ? model::Activation::kQuickGelu : model::Activation::kGelu);
    randomize(*b);
    auto x = torch::randn({2, 7, 64});
    auto mask = torch::full({7, 7}, -std::numeric_limits<float>::infinity()).triu(1);
    for (const auto& m : {torch::Tensor(), mask}) {
      auto got = b->forward(x, m);
      auto ref = reference_block(*b, x, m, 4, quick);
      EXPECT_LT((got - ref).abs().max().item<double>() / ref.abs().max().item<double>(), 1e-5)
          << (quick ? "quick_gelu" : "gelu") << (m.defined() ? " masked" : "");
    }
    // The causal mask makes the first token independent of the others.
    auto y = x.clone();
    y.select(1, 6).add_(1.0);
    EXPECT_TRUE(torch::allclose(b->forward(x, mask).select(1, 0), b->forward(y, mask).select(1, 0)));
  }
}

TEST(ClipModel, QuickGeluAndGeluDiffer) {
  auto x = torch::linspace(-3, 3, 61);
  auto g = model::apply_activation(x, model::Activation::kGelu);
  auto q = model::apply_activation(x, model::Activation::kQuickGelu);
  EXPECT_TRUE(torch::allclose(g, 0.5 * x * (1 + torch::erf(x / std::sqrt(2.0))), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(q, x * torch::sigmoid(1.702 * x), 1e-6, 1e-6));
  EXPECT_GT((g - q).abs().max().item<float>(), 1e-2f);

  // Same weights, different activation → different model outputs.
  auto cfg = tiny();
  torch::manual_seed(5);
  model::ClipModel a(cfg);
  cfg.activation = model::Activation::kQuickGelu;
  model::ClipModel b(cfg);
  {
    torch::NoGradGuard ng;
    auto pa = a->named_parameters();
    for (auto& p : b->named_parameters()) p.value().copy_(pa[p.key()]);
  }
  torch::NoGradGuard ng;
  auto img = torch::randn({1, 3, 32, 32});
  auto fa = a->visual->forward(img, {4}).global;
  auto fb = b->visual->forward(img, {4}).global;
  EXPECT_GT((fa - fb).abs().max().item<float>(), 1e-4f);
  EXPECT_EQ(error_of([] { model::parse_activation("swish", "--activation"); }),
            "--activation: expected gelu or quick_gelu, found 'swish'");
  EXPECT_EQ(model::parse_activation(model::to_string(model::Activation::kQuickGelu), "x"),
            model::Activation::kQuickGelu);
}

TEST(ClipModel, VisionInputChecksAndTextHelpers) {
  auto cfg = tiny();
  model::ClipModel m(cfg);
  torch::NoGradGuard ng;
  EXPECT_EQ(error_of([&] {
              m->visual->forward(torch::zeros({1, 3, 30, 30}), {1});
            }),
            "vision tower expects square images with a side that is a multiple of 8, found 30x30");
  EXPECT_EQ(error_of([&] {
              m->visual->forward(torch::zeros({1, 3, 32, 32}), {0});
            }),
            "feature layer 0 is out of range: the vision tower has blocks 1..4");
  auto out = m->visual->forward(torch::randn({2, 3, 40, 40}), {2, 4});
  EXPECT_EQ(out.patch_features[0].sizes(), (std::vector<int64_t>{2, 26, 64}));
  EXPECT_EQ(out.global.sizes(), (std::vector<int64_t>{2, cfg.embed_dim}));

  // run_text_transformer's hook sees every block in order and can replace rows.
  auto ids = torch::zeros({2, cfg.text.context_length}, torch::kLong);
  ids.index_put_({torch::indexing::Slice(), 0}, 49406);
  ids.index_put_({torch::indexing::Slice(), 3}, 49407);
  auto x = m->embed_tokens(ids) + m->text_positional_embedding();
  std::vector<int64_t> seen;
  auto y = m->run_text_transformer(x, [&](int64_t i, torch::Tensor t) {
    seen.push_back(i);
    return t;
  });
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2}));
  auto plain = m->run_text_transformer(x);
  EXPECT_TRUE(torch::equal(y, plain));
  auto feats = m->encode_text(ids);
  auto manual = torch::matmul(m->ln_final_forward(plain).select(1, 3), m->text_projection_weight());
  // Truncation at the EOT is exact in arithmetic; the GEMMs over 4 and over 77 rows may take different
  // BLAS kernels (OpenBLAS has small-matrix kernels), so compare at the towers' tolerance (design §11).
  EXPECT_LE((feats - manual).abs().max().item<double>(), 1e-5 * (1.0 + manual.abs().max().item<double>()));
  // A <|class|> id (49408 = vocab_size) is not mistaken for the EOT.
  auto with_class = ids.clone();
  with_class.index_put_({torch::indexing::Slice(), 2}, 49408);
  auto x2 = m->embed_tokens(with_class) + m->text_positional_embedding();
  auto manual2 =
      torch::matmul(m->ln_final_forward(m->run_text_transformer(x2)).select(1, 3), m->text_projection_weight());
  EXPECT_LE((m->encode_text(with_class) - manual2).abs().max().item<double>(),
            1e-5 * (1.0 + manual2.abs().max().item<double>()));
  EXPECT_GT(model::count_parameters(*m), 0);
}

TEST(ClipModel, AttentionPathsAgreeAndGradientsFlow) {
  // Without autograd the CPU runs long sequences (L >= 256) in (head, row-chunk) tasks; with
  // autograd it uses the batched differentiable form. Both must give the same block output.
  torch::manual_seed(9);
  model::ResidualBlock b(64, 4, model::Activation::kGelu);
  randomize(*b);
  for (auto& p : b->parameters()) p.set_requires_grad(false);
  auto mask = torch::full({300, 300}, -std::numeric_limits<float>::infinity()).triu(1);
  for (const auto& m : {torch::Tensor(), mask}) {
    auto x = torch::randn({2, 300, 64});
    torch::Tensor fast;
    {
      torch::NoGradGuard ng;
      fast = b->forward(x, m);
    }
    auto xg = x.clone().set_requires_grad(true);
    auto slow = b->forward(xg, m);
    EXPECT_LT((fast - slow).abs().max().item<double>() / slow.abs().max().item<double>(), 1e-6);
    slow.sum().backward();
    ASSERT_TRUE(xg.grad().defined());
    EXPECT_GT(xg.grad().abs().sum().item<double>(), 0.0);
  }
}
