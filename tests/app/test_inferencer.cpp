// vcpclip::Inferencer (the public API): maps and scores equal the reference pipeline and
// `predict`, at the input's size; BGR/RGB/grey/16-bit inputs; decisions equal predict
// --calibration's; concurrent predict() calls equal serial ones; errors carry the CLI's messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <thread>

#include "../model/vcp_fixture.h"
#include "support/test_util.h"
#include "vcpclip/app/calibrate/calibrate.h"
#include "vcpclip/app/predict.h"
#include "vcpclip/app/synth.h"
#include "vcpclip/model/precision_probe.h"
#include "vcpclip/vcpclip.h"

using namespace vcpclip;
using vcpclip::testing::error_of;
namespace fx = vcp_fixture;
namespace fs = std::filesystem;

namespace {

/// The run config of the fixture model (what configs/predict_tiny.yaml says, with absolute paths).
std::string config_text(int threads = 1) {
  std::ostringstream s;
  s << "runtime:\n  threads: " << threads << "\nmodel:\n  backbone: " << fx::path("tiny_vcp_clip.json")
    << "\n  weights: " << fx::path("tiny_vcp_clip.pt") << "\n  vocab: " << fx::vocab_path()
    << "\n  image_size: 64\n  features_list: [2, 3, 4]\n";
  return s.str();
}

InferencerOptions options(const std::string& calibration = "", const std::string& cls = "") {
  InferencerOptions o;
  o.config_text = config_text();
  o.checkpoint = fx::path("tiny_vcp.pth");
  o.calibration = calibration;
  o.class_name = cls;
  return o;
}

double max_diff(const cv::Mat& a, const cv::Mat& b) { return cv::norm(a, b, cv::NORM_INF); }

/// A calibration of the fixture model (eval --calibration-out on a small synthetic set).
const std::string& calibration() {
  static const std::string path = [] {
    const auto dir = fs::temp_directory_path() / "vcpclip_inferencer_cal";
    fs::remove_all(dir);
    data::SynthOptions o;
    o.layout = "mvtec", o.out = (dir / "synth").string(), o.classes = 1, o.images = 8, o.train_images = 0;
    o.size = 64, o.set = "target";
    std::ostringstream sink;
    app::run_synth(o, sink);
    app::EvalRequest r;
    r.runtime.threads = 1;
    r.model = fx::options();
    r.checkpoint = fx::path("tiny_vcp.pth");
    data::DataOptions d;
    d.layout = "mvtec", d.root = o.out, d.workers = 1;
    r.eval.data = d;
    r.out_dir = (dir / "eval").string();
    r.progress = false;
    r.calibration_out = (dir / "calibration.json").string();
    app::run_eval(r);
    return r.calibration_out;
  }();
  return path;
}

}  // namespace

TEST(Inferencer, MapsAndScoresMatchTheReferenceAtTheInputSize) {
  const Inferencer inf(options());
  EXPECT_EQ(inf.image_size(), 64);
  EXPECT_FALSE(inf.calibrated());
  const auto final_map = fx::load("final_map"), score = fx::load("score");
  for (int i = 0; i < 3; ++i) {
    const cv::Mat bgr = cv::imread(fx::path("image_" + std::to_string(i) + ".png"), cv::IMREAD_COLOR);
    const Prediction p = inf.predict(bgr);
    EXPECT_FALSE(p.decision);
    ASSERT_EQ(p.map.size(), bgr.size()) << "the map comes back at the input's size";
    ASSERT_EQ(p.map.type(), CV_32FC1);
    EXPECT_NEAR(p.score, score[i].item<double>(), 1e-4) << "stage 'image score', image " << i;
    // The S×S reference map, resized like the Inferencer resizes (bilinear).
    at::Tensor ref = final_map[i].contiguous();
    cv::Mat grid(64, 64, CV_32FC1, ref.data_ptr<float>()), expected;
    cv::resize(grid, expected, bgr.size(), 0, 0, cv::INTER_LINEAR);
    EXPECT_LE(max_diff(p.map, expected), 1e-4) << "stage 'final map', image " << i;
  }
}

TEST(Inferencer, ChannelOrdersGreyAnd16BitGiveTheSameResult) {
  const Inferencer inf(options());
  const cv::Mat bgr = cv::imread(fx::path("image_2.png"), cv::IMREAD_COLOR);
  const Prediction a = inf.predict(bgr);
  cv::Mat rgb, bgra, wide, grey;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
  bgr.convertTo(wide, CV_16U, 257.0);
  EXPECT_EQ(max_diff(inf.predict(rgb, ColorOrder::kRGB).map, a.map), 0.0);
  EXPECT_EQ(max_diff(inf.predict(bgra).map, a.map), 0.0);
  EXPECT_EQ(max_diff(inf.predict(wide).map, a.map), 0.0);
  EXPECT_EQ(inf.predict(rgb, ColorOrder::kRGB).score, a.score);
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  cv::Mat grey3;
  cv::cvtColor(grey, grey3, cv::COLOR_GRAY2BGR);
  EXPECT_EQ(max_diff(inf.predict(grey).map, inf.predict(grey3).map), 0.0);
  EXPECT_EQ(error_of([&] { inf.predict(cv::Mat()); }), "Inferencer::predict: the image is empty");
  EXPECT_EQ(error_of([&] { inf.predict(cv::Mat(8, 8, CV_32FC3)); }),
            "Inferencer::predict: expected an 8-bit or 16-bit image, found OpenCV depth 5");
  EXPECT_EQ(error_of([&] { inf.predict(cv::Mat(8, 8, CV_8UC2)); }),
            "unsupported channel count 2 in the image passed to Inferencer::predict");
}

TEST(Inferencer, DecisionsEqualPredictWithCalibration) {
  const Inferencer inf(options(calibration()));
  EXPECT_TRUE(inf.calibrated());
  const auto out = fs::temp_directory_path() / "vcpclip_inferencer_predict";
  fs::remove_all(out);
  app::PredictRequest req;
  req.runtime.threads = 1;
  req.model = fx::options();
  req.checkpoint = fx::path("tiny_vcp.pth");
  for (int i = 0; i < 3; ++i) req.inputs.push_back(fx::path("image_" + std::to_string(i) + ".png"));
  req.out_dir = out.string();
  req.calibration = calibration();
  req.predict.batch_size = 1;  // the Inferencer runs one image at a time: same BLAS paths, same floats
  const auto summary = app::run_predict(req);
  ASSERT_EQ(summary.images.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const auto& r = summary.images[i];
    const Prediction p = inf.predict(cv::imread(r.path, cv::IMREAD_COLOR));
    ASSERT_TRUE(p.decision && r.decision);
    EXPECT_EQ(p.decision->anomalous, r.decision->anomalous) << r.path;
    EXPECT_NEAR(p.decision->normalized_score, r.decision->normalized_score, 1e-6) << r.path;
    EXPECT_EQ(p.decision->mask.size(), p.map.size());
    const cv::Mat mask = cv::imread((out / (r.stem + "_mask.png")).string(), cv::IMREAD_UNCHANGED);
    EXPECT_EQ(cv::countNonZero(mask != p.decision->mask), 0) << r.path;
    EXPECT_EQ(p.decision->regions.size(), r.decision->regions.size()) << r.path;
  }
}

TEST(Inferencer, ConcurrentCallsEqualSerialOnes) {
  const Inferencer inf(options(calibration()));
  std::vector<cv::Mat> images;
  for (int i = 0; i < 3; ++i) images.push_back(cv::imread(fx::path("image_" + std::to_string(i) + ".png")));
  std::vector<Prediction> serial;
  for (const auto& im : images) serial.push_back(inf.predict(im));
  std::vector<std::vector<Prediction>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 2; ++rep)
        for (const auto& im : images) got[t].push_back(inf.predict(im));
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t)
    for (size_t k = 0; k < got[t].size(); ++k) {
      const auto& a = got[t][k];
      const auto& b = serial[k % 3];
      EXPECT_EQ(a.score, b.score);
      EXPECT_EQ(max_diff(a.map, b.map), 0.0);
      EXPECT_EQ(a.decision->anomalous, b.decision->anomalous);
      EXPECT_EQ(cv::countNonZero(a.decision->mask != b.decision->mask), 0);
    }
}

TEST(Inferencer, ErrorsCarryTheCliMessages) {
  auto o = options();
  o.checkpoint = "";
  EXPECT_EQ(error_of([&] { Inferencer x(o); }), "predict: no checkpoint given (--checkpoint)");
  o = options();
  o.config_text = "runtime:\n  threads: 1\n";
  EXPECT_EQ(
      error_of([&] { Inferencer x(o); }).rfind("predict needs a `model` section in InferencerOptions::config_text", 0),
      0u);
  o = options();
  o.overrides = {"model.imagesize=3"};
  EXPECT_NE(error_of([&] { Inferencer x(o); }).find("unknown config key 'model.imagesize'"), std::string::npos);
  o = options();
  o.config_text = "";
  EXPECT_EQ(error_of([&] { Inferencer x(o); }),
            "Inferencer: no run config given (InferencerOptions::config or config_text)");
  // A calibration for another config: the same message as predict --calibration.
  o = options(calibration());
  o.overrides = {"postprocess.topk=100"};
  app::PredictRequest req;
  req.model = fx::options();
  req.postprocess.topk = 100;
  req.checkpoint = fx::path("tiny_vcp.pth");
  req.inputs = {fx::path("image_0.png")};
  req.out_dir = (fs::temp_directory_path() / "vcpclip_inferencer_refused").string();
  req.calibration = calibration();
  const std::string cli = error_of([&] { app::run_predict(req); });
  EXPECT_NE(cli.find("postprocess.topk: 2000 in the calibration, 100 in this run"), std::string::npos) << cli;
  EXPECT_EQ(error_of([&] { Inferencer x(o); }), cli);
  // A missing checkpoint: the loader's message, naming the file.
  o = options();
  o.checkpoint = "/nonexistent/k.pth";
  EXPECT_NE(error_of([&] { Inferencer x(o); }).find("/nonexistent/k.pth"), std::string::npos);
}

// runtime.precision auto: the Inferencer runs the start-up GEMM probe, uses the precision the pure
// decision takes from its rates, and gives the same maps as an Inferencer set to that precision.
TEST(Inferencer, PrecisionAutoUsesTheProbesChoice) {
  auto o = options();
  o.overrides = {"runtime.precision=auto"};
  const Inferencer inf(o);
  const auto report = nlohmann::json::parse(inf.precision_report());
  EXPECT_EQ(report.at("requested"), "auto");
  model::ProbeRates r;
  r.fp32_gflops = report.at("probe").at("fp32_gflops").get<double>();
  r.bf16_gflops = report.at("probe").at("bf16_gflops").get<double>();
  EXPECT_EQ(inf.precision(), to_string(model::choose_precision(r)));
  EXPECT_EQ(report.at("used"), inf.precision());
  auto fixed_opts = options();
  fixed_opts.overrides = {"runtime.precision=" + inf.precision()};
  const Inferencer fixed(fixed_opts);
  EXPECT_EQ(fixed.precision(), inf.precision());
  EXPECT_FALSE(nlohmann::json::parse(fixed.precision_report()).contains("probe"));
  const cv::Mat image = cv::imread(fx::path("image_1.png"));
  EXPECT_EQ(max_diff(inf.predict(image).map, fixed.predict(image).map), 0.0);
}
