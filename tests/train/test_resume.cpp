// resume.pt round trip: continuing a toy Adam run in-process equals saving, restoring into a
// fresh model/optimizer (with the RNG stream) and continuing; errors name the file.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/functional/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>

#include <filesystem>
#include <fstream>

#include "support/file_size_limit.h"
#include "support/test_util.h"
#include "vcpclip/common/error.h"
#include "vcpclip/train/resume.h"

using namespace vcpclip::train;
namespace fs = std::filesystem;

namespace {

struct Toy {
  torch::nn::Linear lin{nullptr};
  at::Tensor temp;
  std::unique_ptr<torch::optim::Adam> opt;
  Toy() {
    torch::manual_seed(3);
    lin = torch::nn::Linear(4, 3);
    temp = at::full({}, 2.6593).set_requires_grad(true);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(lin->parameters(), std::make_unique<torch::optim::AdamOptions>(1e-2));
    groups.emplace_back(std::vector<at::Tensor>{temp}, std::make_unique<torch::optim::AdamOptions>(1e-1));
    opt = std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(1e-2).betas({0.5, 0.999}));
  }
  NamedParams params() { return {{"lin.weight", lin->weight}, {"lin.bias", lin->bias}, {"temp", temp}}; }
  void step(int i) {
    auto x = at::arange(8, at::kFloat).reshape({2, 4}) / (i + 1.0);
    // dropout draws from the global torch RNG: the restored RNG state must reproduce it
    auto h = torch::nn::functional::dropout(lin->forward(x),
                                            torch::nn::functional::DropoutFuncOptions().p(0.3).training(true));
    auto loss = (h * temp.exp()).pow(2).mean();
    opt->zero_grad();
    loss.backward();
    opt->step();
  }
  at::Tensor flat() {
    return at::cat({lin->weight.detach().reshape({-1}), lin->bias.detach().reshape({-1}), temp.detach().reshape({-1})});
  }
};

fs::path tmpdir() {
  auto d = fs::temp_directory_path() / ("vcpclip_resume_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(Resume, ContinuingEqualsRestoring) {
  const auto dir = tmpdir();
  const std::string path = (dir / "resume.pt").string();
  Toy a;
  a.step(0);
  a.step(1);
  TrainCounters c;
  c.epoch = 1;
  c.batch_in_epoch = 2;
  c.step = 2;
  c.seed = 333;
  c.world_size = 1;
  c.global_batch = 2;
  c.sums = {1.5, 0.75, 0.25, 2, 4, 3.25};  // the epoch's running sums travel with the state
  save_resume_state(path, c, a.params(), *a.opt);
  a.step(2);
  a.step(3);
  const auto expect = a.flat();

  torch::manual_seed(999);  // a different RNG state: load must restore the saved one
  Toy b;
  b.step(7);  // and diverged parameters / optimizer moments
  auto got = load_resume_state(path, b.params(), *b.opt);
  EXPECT_EQ(got.epoch, 1);
  EXPECT_EQ(got.batch_in_epoch, 2);
  EXPECT_EQ(got.step, 2);
  EXPECT_EQ(got.seed, 333u);
  EXPECT_EQ(got.global_batch, 2);
  EXPECT_EQ(got.sums.loss, 1.5);
  EXPECT_EQ(got.sums.loss_raw, 0.75);
  EXPECT_EQ(got.sums.loss_post, 0.25);
  EXPECT_EQ(got.sums.batches, 2);
  EXPECT_EQ(got.sums.images, 4);
  EXPECT_EQ(got.sums.seconds, 3.25);
  EXPECT_EQ(peek_resume_state(path).step, 2);
  b.step(2);
  b.step(3);
  EXPECT_TRUE(at::allclose(b.flat(), expect, 0, 1e-7)) << b.flat() << expect;
  for (auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename(), "resume.pt");  // no temp left
  fs::remove_all(dir);
}

TEST(Resume, ErrorsNameTheFile) {
  const auto dir = tmpdir();
  Toy a;
  try {
    load_resume_state((dir / "none.pt").string(), a.params(), *a.opt);
    FAIL();
  } catch (const vcpclip::Error& e) {
    EXPECT_NE(std::string(e.what()).find("resume state not found: " + (dir / "none.pt").string()), std::string::npos);
  }
  const auto bad = (dir / "bad.pt").string();
  std::ofstream(bad) << "not a zip";
  try {
    peek_resume_state(bad);
    FAIL();
  } catch (const vcpclip::Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("cannot read resume state " + bad, 0), 0u) << e.what();
  }
  // A state of another model (fewer tensors) is refused.
  const auto path = (dir / "resume.pt").string();
  save_resume_state(path, {}, a.params(), *a.opt);
  Toy b;
  NamedParams fewer = b.params();
  fewer.pop_back();
  try {
    load_resume_state(path, fewer, *b.opt);
    FAIL();
  } catch (const vcpclip::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "resume state " + path + " holds 3 trainable tensors but the model has 2 (different model options?)");
  }
  fs::remove_all(dir);
}

TEST(Resume, FullDiskKeepsThePreviousStateAndNoTemporary) {
  const auto dir = tmpdir();
  const std::string path = (dir / "resume.pt").string();
  Toy a;
  TrainCounters c;
  c.step = 4;
  save_resume_state(path, c, a.params(), *a.opt);
  const std::string before = vcpclip::testing::slurp(path);
  a.step(0);  // Adam moments now exist: the new state is larger than the old one
  c.step = 5;
  std::string error;
  {
    vcpclip::testing::FileSizeLimit limit(before.size());
    error = vcpclip::testing::error_of([&] { save_resume_state(path, c, a.params(), *a.opt); });
  }
  EXPECT_EQ(error.rfind("cannot write " + path + " (temporary file " + path + ".tmp.", 0), 0u) << error;
  EXPECT_NE(error.find("): File too large"), std::string::npos) << error;
  EXPECT_EQ(vcpclip::testing::slurp(path), before);
  Toy b;
  EXPECT_EQ(load_resume_state(path, b.params(), *b.opt).step, 4);  // still loadable
  for (auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename(), "resume.pt");
  fs::remove_all(dir);
}
