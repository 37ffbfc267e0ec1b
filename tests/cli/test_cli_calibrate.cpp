// `vcpclip calibrate` and the calibration flags through the binary: the table and file, eval
// --calibration-out, predict --calibration (decisions in scores.json, masks), and the refusals
// with their exit status and exact message.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../model/vcp_fixture.h"
#include "support/run_binary.h"
#include "support/test_util.h"
#include "vcpclip/build_info.h"

namespace fs = std::filesystem;
namespace fx = vcp_fixture;

namespace {

vcpclip::testing::CommandResult run(const std::string& args) { return vcpclip::testing::run_vcpclip(args); }

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

const fs::path& work() {
  static const fs::path d = [] {
    const auto p = vcpclip::testing::fresh_temp_dir("vcpclip_cli_calibrate");
    auto r = run("synth --layout mvtec --role target --out " + (p / "target").string() +
                 " --classes 1 --images 6 --train-images 3 --size 64");
    EXPECT_EQ(r.status, 0) << r.out;
    std::ofstream(p / "c.yaml") << "runtime:\n  threads: 1\n"
                                << "model:\n  backbone: " << fx::path("tiny_vcp_clip.json")
                                << "\n  weights: " << fx::path("tiny_vcp_clip.pt") << "\n  vocab: " << fx::vocab_path()
                                << "\n  image_size: 64\n  features_list: [2, 3, 4]\n"
                                << "eval:\n  batch_size: 4\n  data:\n    layout: mvtec\n    root: "
                                << (p / "target").string() << "\n    workers: 1\n";
    return p;
  }();
  return d;
}

std::string cfg() { return (work() / "c.yaml").string(); }

}  // namespace

TEST(CliCalibrate, CalibrateThenPredictWithDecisions) {
  const auto out = work() / "cal";
  auto r = run("calibrate --no-progress -c " + cfg() + " -k " + fx::path("tiny_vcp.pth") + " -o " + out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("image thr"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("f1 calibration of 1 classes -> " + (out / "calibration.json").string()), std::string::npos)
      << r.out;
  const auto cal = read_json(out / "calibration.json");
  EXPECT_EQ(cal.at("method").get<std::string>(), "f1");
  EXPECT_EQ(cal.at("config").at("path").get<std::string>(), cfg());
  EXPECT_TRUE(fs::is_regular_file(out / "metrics.json")) << "the f1 method keeps eval's metrics of the set";

  const auto pred = work() / "pred";
  r = run("predict -c " + cfg() + " -k " + fx::path("tiny_vcp.pth") + " -i " + (work() / "target").string() + "/" +
          cal.at("classes")[0].at("name").get<std::string>() + "/test/good -o " + pred.string() + " --calibration " +
          (out / "calibration.json").string());
  ASSERT_EQ(r.status, 0) << r.out;
  const auto scores = read_json(pred / "scores.json");
  ASSERT_FALSE(scores.at("images").empty());
  for (const auto& e : scores.at("images")) {
    EXPECT_TRUE(e.at("decision") == "ok" || e.at("decision") == "ng") << e;
    EXPECT_TRUE(fs::is_regular_file(pred / e.at("mask").get<std::string>()));
  }

  // Another config: refused, exit status 1, the reason on stderr.
  r = run("predict -c " + cfg() + " -k " + fx::path("tiny_vcp.pth") + " -i " + fx::path("image_0.png") + " -o " +
          (work() / "refused").string() + " --calibration " + (out / "calibration.json").string() +
          " --set postprocess.sigma=4");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("vcpclip predict: error: calibration " + (out / "calibration.json").string() +
                       " was made for another config: postprocess.sigma: 8.0 in the calibration, 4.0 in this run; "
                       "calibrate again with this config (vcpclip calibrate)"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(work() / "refused" / "scores.json"));
}

TEST(CliCalibrate, EvalCalibrationOutAndQuantileMethod) {
  auto r = run("eval --no-progress -c " + cfg() + " -k " + fx::path("tiny_vcp.pth") + " -o " +
               (work() / "eval").string() + " --calibration-out " + (work() / "eval_cal.json").string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(read_json(work() / "eval_cal.json").at("method").get<std::string>(), "f1");
  r = run("eval --no-progress -c " + cfg() + " --calibration-out " + (work() / "x.json").string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--calibration-out requires --checkpoint"), std::string::npos) << r.out;

  r = run("calibrate --no-progress -c " + cfg() + " -k " + fx::path("tiny_vcp.pth") + " -o " + (work() / "q").string() +
          " --method quantile --image-quantile 0.9 --set eval.data.split=train");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto q = read_json(work() / "q" / "calibration.json");
  EXPECT_EQ(q.at("method").get<std::string>(), "quantile");
  EXPECT_EQ(q.at("image_quantile").get<double>(), 0.9);
  EXPECT_EQ(q.at("pixel_quantile").get<double>(), 0.999);
  EXPECT_EQ(q.at("classes")[0].at("images").get<int>(), 3);
  r = run("calibrate -c " + cfg() + " -k " + fx::path("tiny_vcp.pth") + " --method guess");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--method"), std::string::npos) << r.out;
}
