// Post-processing against scipy.ndimage.gaussian_filter (fixtures from
// scripts/golden/make_golden_metrics.py) and hand-checked blend / top-k / min-max.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/eval/accumulator.h"
#include "vcpclip/eval/postprocess.h"

using namespace vcpclip::eval;

namespace {
const std::string kDir = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/metrics/";

at::Tensor read_f32(const std::string& path, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  std::vector<float> v(n);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(float)));
  EXPECT_EQ(f.gcount(), std::streamsize(n * sizeof(float))) << path;
  return at::from_blob(v.data(), shape, at::kFloat).clone();
}
}  // namespace

TEST(Postprocess, KernelHas65TapsForSigma8AndSumsToOne) {
  const auto k = gaussian_kernel1d(8.0);
  ASSERT_EQ(k.size(), 65u);
  double s = 0;
  for (double v : k) s += v;
  EXPECT_NEAR(s, 1.0, 1e-15);
  EXPECT_DOUBLE_EQ(k[0], k[64]);
  EXPECT_EQ(gaussian_kernel1d(1.5).size(), 13u);  // radius int(6.5) = 6
}

TEST(Postprocess, GaussianFilterMatchesScipy) {
  std::ifstream f(kDir + "expected.json");
  const auto exp = nlohmann::json::parse(f);
  ASSERT_EQ(exp["gaussian"].size(), 3u);
  for (const auto& [name, g] : exp["gaussian"].items()) {
    const auto shape = g["shape"].get<std::vector<int64_t>>();
    at::Tensor x = read_f32(kDir + name + ".in.f32", shape);
    at::Tensor want = read_f32(kDir + name + ".out.f32", shape);
    at::Tensor got = gaussian_filter(x, g["sigma"].get<double>());
    ASSERT_EQ(got.sizes(), want.sizes()) << name;
    EXPECT_LT((got - want).abs().max().item<float>(), 1e-5f) << name;
    // a single [H,W] plane gives the same as its slice of the batch
    at::Tensor one = gaussian_filter(x[0], g["sigma"].get<double>());
    EXPECT_TRUE(at::equal(one, got[0])) << name;
  }
}

TEST(Postprocess, BlendTopkAndMinmax) {
  at::Tensor raw = at::arange(12, at::kFloat).view({1, 3, 4}) / 12;
  at::Tensor post = at::ones({1, 3, 4});
  at::Tensor b = blend_maps(raw, post, 0.2);
  EXPECT_FLOAT_EQ(b[0][0][1].item<float>(), 0.2f * (1.0f / 12) + 0.8f);
  // top-3 of 0/12..11/12 = (9+10+11)/12/3 = 10/12
  EXPECT_NEAR(topk_mean(raw, 3)[0].item<float>(), 10.0 / 12, 1e-7);
  EXPECT_NEAR(topk_mean(raw, 1000)[0].item<float>(), 5.5 / 12, 1e-7);  // k clamped to H*W
  EXPECT_NEAR(image_score(raw, post, 3)[0].item<float>(), 10.0 / 12 + 1, 1e-6);
  at::Tensor n = minmax_normalize(at::tensor({2.f, 4.f, 3.f}));
  EXPECT_TRUE(at::equal(n, at::tensor({0.f, 1.f, 0.5f})));
  EXPECT_TRUE(at::equal(minmax_normalize(at::full({4}, 3.f)), at::zeros({4})));
  float raw_buf[3] = {2.f, 4.f, 3.f};
  minmax_normalize(raw_buf, 3);
  EXPECT_EQ(raw_buf[2], 0.5f);
}

TEST(Postprocess, BadShapesAreErrors) {
  EXPECT_THROW(gaussian_filter(at::zeros({2, 2, 2, 2}), 8), vcpclip::Error);
  try {
    blend_maps(at::zeros({2, 3}), at::zeros({3, 2}), 0.2);
    FAIL();
  } catch (const vcpclip::Error& e) {
    EXPECT_STREQ(e.what(), "blend: M_raw [2, 3] and M_post [3, 2] differ in size");
  }
}
