// One AnomalyCLIP training step against the restated official train.py
// (scripts/golden/make_golden_anomaly_clip.py, checked against the official code when made): tiny
// tower, fixture checkpoint, batch of 3 with masks and labels, lambda 4, Adam lr 1e-3 betas
// (0.5, 0.999) over ctx_pos, ctx_neg and compound_prompts_text. Checks the loss terms, the
// gradients, every trained tensor after the step (1e-6 where the float64 gradient clears float32
// noise, the rule of test_train_step_parity.cpp), that the buffers and the unused projections did
// not move, and the gradient magnitudes through Adam at lr = eps = 1000.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adam.h>

#include <cmath>
#include <cstdio>

#include "model/anomaly_clip_fixture.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/train/trainer.h"

using namespace vcpclip;
namespace fx = anomaly_clip_fixture;

namespace {

struct Step {
  model::MethodLoss loss;
  std::vector<std::pair<std::string, at::Tensor>> grads;  // trained tensors in golden order
};

/// forward_train + the method's loss + backward + one Adam step on the fixture batch (the labels
/// come from the masks: image 0 normal, 1 and 2 anomalous, as golden.json's).
Step run_step(model::AnomalyClipImpl& m, double lr, double eps) {
  const auto& g = fx::manifest();
  m.train();
  auto groups = m.parameter_groups();
  EXPECT_EQ(groups.size(), 1u);
  auto trainable = groups.at(0).params;
  torch::optim::Adam opt(
      trainable,
      torch::optim::AdamOptions(lr).betas({g.at("betas")[0].get<double>(), g.at("betas")[1].get<double>()}).eps(eps));
  auto out = m.forward_train(fx::images(), {});
  Step s;
  s.loss = m.loss(out, fx::load("masks"));
  opt.zero_grad();
  s.loss.total.backward();
  const auto names = g.at("grad_tensors");
  for (size_t i = 0; i < trainable.size(); ++i)
    s.grads.emplace_back(names[i].at("name").get<std::string>(), trainable[i].grad().detach().clone());
  opt.step();
  return s;
}

/// The golden gradients (one flat .npy) split per tensor.
std::map<std::string, at::Tensor> golden_grads(const std::string& npy) {
  const auto all = fx::load(npy);
  std::map<std::string, at::Tensor> out;
  int64_t off = 0;
  for (const auto& e : fx::manifest().at("grad_tensors")) {
    const auto shape = e.at("shape").get<std::vector<int64_t>>();
    int64_t n = 1;
    for (auto d : shape) n *= d;
    out[e.at("name").get<std::string>()] = all.slice(0, off, off + n).reshape(shape);
    off += n;
  }
  EXPECT_EQ(off, all.numel());
  return out;
}

}  // namespace

TEST(AnomalyClipTrainStep, OneAdamStepMatchesOfficial) {
  const auto& g = fx::manifest();
  auto m = fx::model();
  auto before = m->to_checkpoint().flatten();
  const auto s = run_step(*m, g.at("lr").get<double>(), 1e-8);
  const auto& want = g.at("loss_f32");
  const double total = want.at("total").get<double>(), lambda = g.at("lambda").get<double>();
  EXPECT_NEAR(s.loss.total.item<double>(), total, 1e-5 * total);
  EXPECT_NEAR(s.loss.post.item<double>(), want.at("image").get<double>(), 1e-5 * total);         // reported: image CE
  EXPECT_NEAR(s.loss.raw.item<double>(), lambda * want.at("maps").get<double>(), 1e-5 * total);  // lambda · maps

  const auto g32 = golden_grads("grads_f32"), g64 = golden_grads("grads_f64");
  double worst_grad = 0;
  for (const auto& [name, grad] : s.grads) {
    const double d = fx::max_abs_diff(grad, g32.at(name));
    EXPECT_TRUE(at::allclose(grad, g32.at(name).to(at::kFloat), 1e-4, 3e-5)) << name << ": max diff " << d;
    worst_grad = std::max(worst_grad, d);
  }
  std::printf("max |gradient diff|: %.3g\n", worst_grad);

  // After the step: Adam's first update is about lr·sign(g); where the float64 gradient does not
  // clear the float32 noise (|g64| < max(1e-5, 4·max|g32 − g64| of the tensor)) the sign is noise.
  auto expected = io::read_reference_checkpoint(fx::path(g.at("after_step").get<std::string>()), true).flatten();
  auto ours = m->to_checkpoint().flatten();
  ASSERT_EQ(ours.size(), expected.size());
  double worst = 0;
  int64_t noise_elements = 0, total_elements = 0;
  for (const auto& [name, grad] : s.grads) {
    const auto key = "prompt_learner." + name;
    const double noise = fx::max_abs_diff(g32.at(name), g64.at(name));
    const auto signal = g64.at(name).abs() >= std::max(1e-5, 4 * noise);
    const auto diff = (ours.at(key).to(at::kDouble) - expected.at(key).to(at::kDouble)).abs();
    const double d = at::where(signal, diff, at::zeros_like(diff)).max().item<double>();
    EXPECT_LE(d, 1e-6) << name;
    EXPECT_LE(diff.max().item<double>(), 2 * g.at("lr").get<double>() + 1e-7) << name;
    noise_elements += (~signal).sum().item<int64_t>();
    total_elements += signal.numel();
    worst = std::max(worst, d);
    EXPECT_FALSE(at::equal(ours.at(key), before.at(key))) << name << " did not move";
  }
  EXPECT_LE(noise_elements, total_elements / 50);
  std::printf("max |after-step diff| where the gradient is signal: %.3g (%lld of %lld elements are noise)\n", worst,
              static_cast<long long>(noise_elements), static_cast<long long>(total_elements));
  // Buffers and the unused projections: untouched (the official step leaves them as they were).
  for (const auto& name : g.at("unchanged_after_step")) {
    const auto key = "prompt_learner." + name.get<std::string>();
    EXPECT_TRUE(at::equal(ours.at(key), before.at(key))) << key;
    EXPECT_TRUE(at::equal(ours.at(key), expected.at(key))) << key;
  }
  // The frozen CLIP has no gradient buffers.
  for (const auto& p : m->clip->parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(AnomalyClipTrainStep, LambdaWeighsTheMapTermsOnly) {
  const auto& g = fx::manifest();
  auto m = fx::model(false, /*lambda=*/1.0);  // the pre-April-2025 weight
  const auto s = run_step(*m, g.at("lr").get<double>(), 1e-8);
  const auto& want = g.at("loss_f32");
  const double expect = want.at("image").get<double>() + want.at("maps").get<double>();
  EXPECT_NEAR(s.loss.total.item<double>(), expect, 1e-5 * expect);
}

// The step with lr = eps = 1000: Adam's first update is then g·1000/(|g| + 1000) ≈ g, so the moved
// tensors carry the gradients' magnitudes. Compared with the float64 gradients per tensor within
// 4 × the float32 step's own distance from them plus one rounding of the stored values (that
// tolerance must stay below 0.05 % of the tensor's largest gradient); deep-prompt elements may in
// addition differ by one fp16 step of their gradient (see below).
TEST(AnomalyClipTrainStep, UpdateAtLrEqualsEpsFollowsFloat64GradientMagnitudes) {
  const auto& g = fx::manifest();
  auto m = fx::model();
  auto before = m->to_checkpoint().flatten();
  const auto s = run_step(*m, 1000.0, 1000.0);
  auto after = m->to_checkpoint().flatten();
  const auto g32 = golden_grads("grads_f32"), g64 = golden_grads("grads_f64");
  for (const auto& [name, grad] : s.grads) {
    const auto key = "prompt_learner." + name;
    const auto& r = g64.at(name);
    const auto expect = r * 1000.0 / (r.abs() + 1000.0);
    const auto moved = before.at(key).to(at::kDouble) - after.at(key).to(at::kDouble);
    const double noise = fx::max_abs_diff(g32.at(name), r);
    const double tol = 4 * noise + after.at(key).abs().max().item<double>() * std::ldexp(1.0, -24);
    const double scale = r.abs().max().item<double>();
    // The deep prompts' gradients are rounded to fp16 (per prompt, then summed over the two): a
    // float32 difference far below the noise can still flip one rounding, one fp16 step
    // (2^-11 relative) per prompt. Those elements may differ by that much more.
    auto allowed = at::full_like(r, tol);
    if (name.rfind("compound_prompts_text.", 0) == 0) allowed = allowed + r.abs() * std::ldexp(1.0, -10);
    const auto excess = (moved - expect).abs() - allowed;
    const double err = (moved - expect).abs().max().item<double>();
    EXPECT_LT(tol, 5e-4 * scale) << name << ": the tolerance would hide a 0.1 % gradient error";
    EXPECT_LE(excess.max().item<double>(), 0.0) << name << ": max |update − g64·1000/(|g64| + 1000)| " << err;
    std::printf("%-26s max|g64| %.3g  err %.3g  tol %.3g  (%lld elements past tol: fp16 steps)\n", name.c_str(), scale,
                err, tol, static_cast<long long>(((moved - expect).abs() > tol).sum().item<int64_t>()));
  }
}

// The shared trainer's step (train::make_optimizer from the method's groups + train::train_step,
// as `vcpclip train` runs it) gives the same step: loss, reported terms, tensors after the step.
TEST(AnomalyClipTrainStep, SharedTrainerStepEqualsTheOfficialStep) {
  const auto& g = fx::manifest();
  auto m = fx::model();
  m->train();
  train::TrainOptions to;
  to.lr = g.at("lr").get<double>();
  to.betas = {g.at("betas")[0].get<double>(), g.at("betas")[1].get<double>()};
  auto opt = train::make_optimizer(*m, to);
  ASSERT_EQ(opt->param_groups().size(), 1u);
  EXPECT_EQ(opt->param_groups()[0].params().size(), 2u + static_cast<size_t>(g.at("depth").get<int64_t>() - 1));
  const auto r = train::train_step(*m, *opt, fx::images(), fx::load("masks"), 1);
  const auto& want = g.at("loss_f32");
  const double total = want.at("total").get<double>();
  EXPECT_NEAR(r.loss, total, 1e-5 * total);
  EXPECT_NEAR(r.loss_raw, g.at("lambda").get<double>() * want.at("maps").get<double>(), 1e-5 * total);
  EXPECT_NEAR(r.loss_post, want.at("image").get<double>(), 1e-5 * total);
  auto expected = io::read_reference_checkpoint(fx::path(g.at("after_step").get<std::string>()), true).flatten();
  const auto g32 = golden_grads("grads_f32"), g64 = golden_grads("grads_f64");
  for (const auto& [key, t] : m->to_checkpoint().flatten()) {
    const auto name = key.substr(std::string("prompt_learner.").size());
    if (!g64.count(name)) {
      EXPECT_TRUE(at::equal(t, expected.at(key))) << key;  // buffers and the unused projections
      continue;
    }
    const double noise = fx::max_abs_diff(g32.at(name), g64.at(name));
    const auto signal = g64.at(name).abs() >= std::max(1e-5, 4 * noise);
    const auto diff = (t.to(at::kDouble) - expected.at(key).to(at::kDouble)).abs();
    EXPECT_LE(at::where(signal, diff, at::zeros_like(diff)).max().item<double>(), 1e-6) << key;
  }
}
