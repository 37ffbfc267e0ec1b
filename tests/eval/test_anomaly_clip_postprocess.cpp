// AnomalyCLIP's post-processing (official test.py): the summed map through scipy's
// gaussian_filter(sigma=4) per image, the method's own image score. The golden maps and the final
// maps come from scripts/golden/make_golden_anomaly_clip.py (scipy on float32).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "vcpclip/build_info.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/npy.h"

using namespace vcpclip;

namespace {

const std::string kDir = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/anomaly_clip/";

at::Tensor load(const std::string& name) { return io::read_npy(kDir + name + ".npy"); }

}  // namespace

TEST(AnomalyClipPostprocess, GaussianSigma4MatchesScipyAndTheScoreIsTheMethods) {
  std::ifstream in(kDir + "golden.json");
  ASSERT_TRUE(in) << kDir + "golden.json";
  const auto gold = nlohmann::json::parse(in);
  eval::PostprocessOptions pp;
  pp.sigma = gold.at("sigma").get<double>();
  pp.method_score = true;
  for (const std::string tag : {"", "_multi"}) {
    const auto raw = load("map_sum" + tag), score = load("score");
    const auto out = eval::postprocess_maps(raw, at::Tensor(), pp, score);
    const double d = (out.pixel.to(at::kDouble) - load("final_map" + tag).to(at::kDouble)).abs().max().item<double>();
    std::printf("final map%s: max |diff| vs scipy = %.3g\n", tag.c_str(), d);
    EXPECT_LE(d, 1e-5) << tag;
    EXPECT_TRUE(at::equal(out.score, score)) << "the method's score is taken as it is";
    // the gaussian really ran: the filtered map is not the summed one
    EXPECT_GT((out.pixel - raw).abs().max().item<double>(), 1e-3);
  }
}
