// Focal and dice losses: values on hand-made inputs against the formulas written out here with
// plain loops, and gradients against central finite differences (double precision).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>

#include "vcpclip/common/error.h"
#include "vcpclip/train/losses.h"

using namespace vcpclip::train;

namespace {

// -(1-pt)^2 log pt with pt = w0 p0 + w1 p1 + 1e-5, one-hot clamped to [1e-5, 1-1e-5].
double focal_by_hand(const at::Tensor& probs, const at::Tensor& gt) {
  auto p = probs.to(at::kDouble).contiguous();
  auto g = gt.to(at::kDouble).contiguous();
  const int64_t b = p.size(0), h = p.size(2), w = p.size(3);
  auto pa = p.accessor<double, 4>();
  auto ga = g.accessor<double, 3>();
  double sum = 0;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const int cls = static_cast<int>(ga[i][y][x]);
        const double w0 = cls == 0 ? 1 - 1e-5 : 1e-5;
        const double w1 = cls == 1 ? 1 - 1e-5 : 1e-5;
        const double pt = w0 * pa[i][0][y][x] + w1 * pa[i][1][y][x] + 1e-5;
        sum += -(1 - pt) * (1 - pt) * std::log(pt);
      }
  return sum / static_cast<double>(b * h * w);
}

double dice_by_hand(const at::Tensor& probs1, const at::Tensor& gt) {
  auto p = probs1.to(at::kDouble).reshape({probs1.size(0), -1}).contiguous();
  auto g = gt.to(at::kDouble).reshape({gt.size(0), -1}).contiguous();
  auto pa = p.accessor<double, 2>();
  auto ga = g.accessor<double, 2>();
  double mean_dice = 0;
  for (int64_t i = 0; i < p.size(0); ++i) {
    double inter = 0, sp = 0, sg = 0;
    for (int64_t j = 0; j < p.size(1); ++j) {
      inter += pa[i][j] * ga[i][j];
      sp += pa[i][j];
      sg += ga[i][j];
    }
    mean_dice += (2 * inter + 1) / (sp + sg + 1);
  }
  return 1 - mean_dice / static_cast<double>(p.size(0));
}

at::Tensor random_probs(int64_t b, int64_t s, at::ScalarType t, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto logits = at::randn({b, 2, s, s}, gen, at::TensorOptions().dtype(t)) * 2.0;
  return at::softmax(logits, 1);
}

at::Tensor random_mask(int64_t b, int64_t s, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return (at::rand({b, s, s}, gen, at::TensorOptions().dtype(at::kFloat)) > 0.6).to(at::kFloat);
}

}  // namespace

TEST(Losses, FocalHandMadeValues) {
  // One pixel per class case, probabilities chosen by hand.
  auto probs = at::tensor({0.9, 0.2, 0.1, 0.8}, at::kFloat).reshape({1, 2, 1, 2});  // p0 = (.9,.2), p1 = (.1,.8)
  auto gt = at::tensor({0.0, 1.0}, at::kFloat).reshape({1, 1, 2});
  // pixel 0: class 0, pt = (1-1e-5)*.9 + 1e-5*.1 + 1e-5; pixel 1: class 1, pt = 1e-5*.2 + (1-1e-5)*.8 + 1e-5
  const double pt0 = (1 - 1e-5) * 0.9 + 1e-5 * 0.1 + 1e-5, pt1 = 1e-5 * 0.2 + (1 - 1e-5) * 0.8 + 1e-5;
  const double expect = 0.5 * (-(1 - pt0) * (1 - pt0) * std::log(pt0) - (1 - pt1) * (1 - pt1) * std::log(pt1));
  EXPECT_NEAR(focal_loss(probs, gt).item<double>(), expect, 1e-7);

  auto p = random_probs(3, 7, at::kFloat, 1);
  auto g = random_mask(3, 7, 2);
  EXPECT_NEAR(focal_loss(p, g).item<double>(), focal_by_hand(p, g), 1e-6);
}

TEST(Losses, DiceHandMadeValues) {
  auto p1 = at::tensor({0.5, 0.5, 1.0, 0.0}, at::kFloat).reshape({2, 1, 2});
  auto gt = at::tensor({1.0, 0.0, 0.0, 0.0}, at::kFloat).reshape({2, 1, 2});
  // image 0: (2*.5+1)/(1+1+1) = 2/3; image 1: (0+1)/(1+0+1) = 1/2  -> 1 - (2/3+1/2)/2
  EXPECT_NEAR(dice_loss(p1, gt).item<double>(), 1.0 - (2.0 / 3.0 + 0.5) / 2.0, 1e-7);

  auto p = random_probs(4, 9, at::kFloat, 3).select(1, 1);
  auto g = random_mask(4, 9, 4);
  EXPECT_NEAR(dice_loss(p, g).item<double>(), dice_by_hand(p, g), 1e-6);
}

TEST(Losses, VcpLossSumsBothBranchesAndLayers) {
  std::vector<at::Tensor> raw, post;
  for (int l = 0; l < 3; ++l) {
    raw.push_back(random_probs(2, 5, at::kFloat, 10 + l));
    post.push_back(random_probs(2, 5, at::kFloat, 20 + l));
  }
  auto gt = random_mask(2, 5, 7);
  double r = 0, q = 0;
  for (int l = 0; l < 3; ++l) {
    r += focal_by_hand(raw[l], gt) + dice_by_hand(raw[l].select(1, 1), gt);
    q += focal_by_hand(post[l], gt) + dice_by_hand(post[l].select(1, 1), gt);
  }
  auto terms = vcp_loss(raw, post, gt);
  EXPECT_NEAR(terms.raw.item<double>(), r, 1e-5);
  EXPECT_NEAR(terms.post.item<double>(), q, 1e-5);
  EXPECT_NEAR(terms.total.item<double>(), r + q, 1e-5);
}

TEST(Losses, GradientsMatchFiniteDifferences) {
  // Gradient w.r.t. the logits that produce the probabilities (as in training), in double.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  auto logits = at::randn({2, 2, 4, 4}, gen, at::TensorOptions().dtype(at::kDouble)).set_requires_grad(true);
  auto gt = random_mask(2, 4, 6).to(at::kDouble);
  auto f = [&](const at::Tensor& z) {
    auto p = at::softmax(z, 1);
    return focal_loss(p, gt) + dice_loss(p.select(1, 1), gt);
  };
  auto loss = f(logits);
  auto grad = torch::autograd::grad({loss}, {logits})[0];
  auto z = logits.detach().clone();
  const double eps = 1e-6;
  auto flat = z.view({-1});
  auto gflat = grad.reshape({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double orig = flat[i].item<double>();
    flat[i] = orig + eps;
    const double up = f(z).item<double>();
    flat[i] = orig - eps;
    const double down = f(z).item<double>();
    flat[i] = orig;
    EXPECT_NEAR(gflat[i].item<double>(), (up - down) / (2 * eps), 1e-7) << "element " << i;
  }
}

TEST(Losses, RejectsBadShapesAndNonBinaryMasks) {
  auto p = random_probs(2, 4, at::kFloat, 1);
  try {
    focal_loss(p, at::full({2, 4, 4}, 2.0));
    FAIL() << "expected an error";
  } catch (const vcpclip::Error& e) {
    EXPECT_STREQ(e.what(), "focal_loss: target values must be 0 or 1 (binarised masks)");
  }
  EXPECT_THROW(focal_loss(p, at::zeros({2, 5, 5})), vcpclip::Error);
  EXPECT_THROW(vcp_loss({p}, {p, p}, at::zeros({2, 4, 4})), vcpclip::Error);
  EXPECT_THROW(vcp_loss({}, {}, at::zeros({2, 4, 4})), vcpclip::Error);
  // Post-VCP ablated: no post layers, post term 0.
  auto g = random_mask(2, 4, 9);
  auto only_raw = vcp_loss({p}, {}, g);
  EXPECT_EQ(only_raw.post.item<double>(), 0.0);
  EXPECT_NEAR(only_raw.total.item<double>(), focal_by_hand(p, g) + dice_by_hand(p.select(1, 1), g), 1e-6);
  EXPECT_THROW(vcp_loss({p}, {p}, at::zeros({2, 3, 3})), vcpclip::Error);
}
