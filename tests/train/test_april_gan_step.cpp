// One APRIL-GAN training step against the official train.py (scripts/golden/make_golden_april_gan.py,
// tests/fixtures/april_gan/): Adam(lr 1e-3, betas (0.5, 0.999)) on focal + dice over the layers, from
// the fixture's head. The loss within 1e-5 relative, the gradients within 1e-4 relative + 3e-6
// absolute, the updated tensors within 1e-6 where the float64 gradient clears float32 noise (the
// rule of test_train_step_parity.cpp); the checkpoint vcpclip writes loads in Python as test.py
// loads it; the method's training defaults and optimiser group.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/expected_tensors.h"
#include "vcpclip/build_info.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/methods/april_gan.h"
#include "vcpclip/model/tokenizer.h"
#include "vcpclip/train/trainer.h"

using namespace vcpclip;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/april_gan/";

nlohmann::json gold() {
  std::ifstream in(kDir + "golden.json");
  if (!in) throw std::runtime_error("missing " + kDir + "golden.json (run scripts/golden/make_golden_april_gan.py)");
  return nlohmann::json::parse(in);
}

std::string vocab() {
  for (const std::string& p : {std::string(VCPCLIP_SOURCE_DIR) + "/assets/bpe_simple_vocab_16e6.txt.gz",
                               std::string(VCPCLIP_SOURCE_DIR) + "/../shared/assets/bpe_simple_vocab_16e6.txt.gz"})
    if (fs::is_regular_file(p)) return p;
  return model::find_vocab();
}

model::Method fixture_model(const nlohmann::json& g) {
  model::ModelOptions o;
  o.method = "april_gan";
  o.backbone = kDir + g.at("config").get<std::string>();
  o.weights = kDir + g.at("weights").get<std::string>();
  o.vocab = vocab();
  o.input_size = g.at("image_size").get<int64_t>();
  o.features_list = g.at("features_list").get<std::vector<int64_t>>();
  auto m = model::build_method(o, c10::Device(c10::kCPU));
  model::load_method_checkpoint(*m, kDir + g.at("checkpoint").get<std::string>());
  m->train();
  return m;
}

}  // namespace

TEST(AprilGanStep, OneStepMatchesTheOfficialTrainPy) {
  const auto g = gold();
  auto m = fixture_model(g);
  train::TrainOptions to;
  to.lr = g.at("lr").get<double>();
  to.betas = {g.at("betas")[0].get<double>(), g.at("betas")[1].get<double>()};
  auto opt = train::make_optimizer(*m, to);
  ASSERT_EQ(opt->param_groups().size(), 1u);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamOptions&>(opt->param_groups()[0].options()).lr(), 1e-3);
  const auto images = io::read_npy(kDir + "images.npy");
  const auto masks = io::read_npy(kDir + "masks.npy");
  const auto classes = g.at("classes").get<std::vector<std::string>>();
  const auto r = train::train_step(*m, *opt, images, masks, 1, nullptr, 0, classes);
  const double loss = g.at("loss").get<double>();
  EXPECT_NEAR(r.loss, loss, 1e-5 * loss);
  EXPECT_EQ(r.loss_post, 0.0);
  std::printf("loss: ours %.9g official %.9g\n", r.loss, loss);

  const auto ref_grads = io::read_reference_checkpoint(kDir + g.at("grads").get<std::string>()).flatten();
  std::map<std::string, at::Tensor> ours_grad;
  for (auto& [name, t] : m->trainable_parameters()) ours_grad[name] = t.grad();
  ASSERT_EQ(ours_grad.size(), ref_grads.size());
  for (const auto& [name, gr] : ref_grads) {
    ASSERT_TRUE(ours_grad.count(name) && ours_grad[name].defined()) << name;
    EXPECT_TRUE(at::allclose(ours_grad[name], gr, 1e-4, 3e-6)) << name;
  }
  const auto expected = io::read_reference_checkpoint(kDir + g.at("after_step").get<std::string>()).flatten();
  const auto after = m->to_checkpoint().flatten();
  double worst = 0;
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(after.count(name)) << name;
    const auto diff = (after.at(name).to(at::kDouble) - t.to(at::kDouble)).abs();
    const auto signal = ref_grads.at(name).abs() >= 1e-5;
    const double d = at::where(signal, diff, at::zeros_like(diff)).max().item<double>();
    EXPECT_LE(d, 1e-6) << name;
    EXPECT_LE(diff.max().item<double>(), 2 * to.lr + 1e-7) << name;
    worst = std::max(worst, d);
  }
  std::printf("max |after-step tensor diff| where the gradient is signal: %.3g\n", worst);
}

TEST(AprilGanStep, LossIsZeroPostAndDefaultsAreTheOfficialOnes) {
  const auto& info = model::method_info("april_gan");
  EXPECT_EQ(info.train.epochs, 15);
  EXPECT_EQ(info.train.batch_size, 8);
  EXPECT_DOUBLE_EQ(info.train.lr, 1e-3);
  EXPECT_DOUBLE_EQ(info.train.beta1, 0.5);
  EXPECT_DOUBLE_EQ(info.postprocess.sigma, 0.0);
  EXPECT_TRUE(info.postprocess.method_score);
  EXPECT_TRUE(info.needs_class_name);
}

TEST(AprilGanStep, TorchLoadsTheWrittenCheckpointAsTestPyDoes) {
  const std::string py = vcpclip::testing::find_python("torch");
  if (py.empty()) GTEST_SKIP() << "no python3 that can import torch (set VCPCLIP_PYTHON)";
  const auto g = gold();
  auto m = fixture_model(g);
  const fs::path out = fs::temp_directory_path() / ("april_gan_" + std::to_string(::getpid()) + ".pth");
  model::save_method_checkpoint(*m, out.string());
  const std::string script = std::string(VCPCLIP_SOURCE_DIR) + "/scripts/tools/check_april_gan_checkpoint.py";
  const std::string dims = " 64 16 3";
  const std::string ok =
      py + " " + script + " " + out.string() + " " + kDir + g.at("checkpoint").get<std::string>() + dims;
  EXPECT_EQ(std::system(ok.c_str()), 0) << ok;
  // The checker really checks: other values fail.
  const std::string bad =
      py + " " + script + " " + out.string() + " " + kDir + "after_step.pth" + dims + " 2>/dev/null";
  EXPECT_NE(std::system(bad.c_str()), 0);
  fs::remove(out);
}
