// The shared verbs with model.method april_gan on its golden fixture (tests/fixtures/april_gan/):
// eval takes the class names from the dataset's folders and uses the method's post-processing
// (no gaussian, the class-token score), records the method in calibration.json; the Inferencer
// needs a class (--class or the calibration's), and a calibration of another method is refused
// naming both methods.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "../model/vcp_fixture.h"
#include "support/synth_set.h"
#include "support/test_util.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/evaluate.h"
#include "vcpclip/vcpclip.h"

using namespace vcpclip;
using vcpclip::testing::error_of;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/april_gan/";

std::string config_text(const std::string& method = "april_gan") {
  std::ostringstream s;
  s << "runtime:\n  threads: 1\nmodel:\n  method: " << method << "\n  backbone: " << kDir << "tiny_clip.json"
    << "\n  weights: " << kDir << "tiny_clip.pt\n  vocab: " << vcp_fixture::vocab_path()
    << "\n  image_size: 64\n  features_list: [2, 3, 4]\n";
  return s.str();
}

const fs::path& target_set() {
  static const fs::path d = vcpclip::testing::make_synth_target_set("april_gan_verbs", 2, 6, 0);
  return d;
}

/// eval of the fixture head on the synthetic target set, with --calibration-out (once per process).
const fs::path& eval_dir() {
  static const fs::path out = [] {
    const auto cfg = app::parse_run_config(config_text(), "april_gan.yaml", {});
    app::EvalRequest r;
    r.runtime = cfg.runtime;
    r.model = *cfg.model;
    r.postprocess = cfg.postprocess;
    r.config_text = cfg.text;
    r.checkpoint = kDir + "tiny_april_gan.pth";
    data::DataOptions d;
    d.layout = "mvtec", d.root = target_set().string(), d.workers = 1;
    r.eval.data = d;
    const auto dir = vcpclip::testing::fresh_temp_dir("april_gan_eval");
    r.out_dir = (dir / "eval").string();
    r.progress = false;
    r.calibration_out = (dir / "calibration.json").string();
    app::run_eval(r);
    return dir;
  }();
  return out;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

cv::Mat first_test_image() {
  for (const auto& e : fs::recursive_directory_iterator(target_set()))
    if (e.path().extension() == ".png" && e.path().string().find("/test/") != std::string::npos &&
        e.path().string().find("ground_truth") == std::string::npos)
      return cv::imread(e.path().string(), cv::IMREAD_COLOR);
  return {};
}

}  // namespace

TEST(AprilGanVerbs, MethodDefaultsAreAppliedAndOverridable) {
  const auto cfg = app::parse_run_config(config_text(), "a.yaml", {});
  EXPECT_EQ(cfg.model->method, "april_gan");
  EXPECT_DOUBLE_EQ(cfg.postprocess.sigma, 0.0);
  EXPECT_TRUE(cfg.postprocess.method_score);
  EXPECT_EQ(cfg.train.options.batch_size, 8);
  EXPECT_DOUBLE_EQ(cfg.train.options.lr, 1e-3);
  EXPECT_NE(cfg.text.find("method: april_gan"), std::string::npos) << cfg.text;
  const auto over = app::parse_run_config(config_text(), "a.yaml", {"postprocess.image_score=topk"});
  EXPECT_FALSE(over.postprocess.method_score);
  const auto vcp = app::parse_run_config(config_text("vcp_clip"), "v.yaml", {});
  EXPECT_DOUBLE_EQ(vcp.postprocess.sigma, 8.0);
  EXPECT_FALSE(vcp.postprocess.method_score);
  EXPECT_EQ(vcp.train.options.batch_size, 32);
}

TEST(AprilGanVerbs, EvalUsesTheClassFoldersAndRecordsTheMethod) {
  const auto dir = eval_dir();
  const auto metrics = read_json(dir / "eval" / "metrics.json");
  EXPECT_NE(metrics.dump().find("pixel_auroc"), std::string::npos);
  std::ifstream in(dir / "eval" / "config.yaml");
  const std::string cfg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(cfg.find("method: april_gan"), std::string::npos) << cfg;
  const auto cal = read_json(dir / "calibration.json");
  EXPECT_EQ(cal.at("config").at("settings").at("model").at("method"), "april_gan");
  EXPECT_EQ(cal.at("config").at("settings").at("postprocess").at("image_score"), "method");
  EXPECT_FALSE(cal.at("config").at("settings").at("model").contains("prompt_len"));
}

TEST(AprilGanVerbs, InferencerNeedsAClassAndUsesTheCalibrations) {
  InferencerOptions o;
  o.config_text = config_text();
  o.checkpoint = kDir + "tiny_april_gan.pth";
  const std::string e = error_of([&] { Inferencer inf(o); });
  EXPECT_NE(e.find("Inferencer: APRIL-GAN (model.method april_gan) names the product in its prompts: give its "
                   "class with --class NAME"),
            std::string::npos)
      << e;
  const cv::Mat img = first_test_image();
  ASSERT_FALSE(img.empty());
  o.class_name = fs::directory_iterator(target_set())->path().filename().string();
  const Inferencer by_class(o);
  const auto p = by_class.predict(img);
  EXPECT_GT(p.score, 0.0);
  EXPECT_LT(p.score, 1.0);  // the class-token probability, not a sum of map values
  o.calibration = (eval_dir() / "calibration.json").string();
  o.class_name = "";
  const std::string classes = error_of([&] { Inferencer inf(o); });  // two classes: --class needed
  EXPECT_FALSE(classes.empty());
  o.class_name = fs::directory_iterator(target_set())->path().filename().string();
  const Inferencer calibrated(o);
  const auto q = calibrated.predict(img);
  EXPECT_TRUE(q.decision.has_value());
  EXPECT_DOUBLE_EQ(q.score, p.score);
}

TEST(AprilGanVerbs, ACalibrationOfAnotherMethodIsRefusedNamingBoth) {
  InferencerOptions o;
  o.config_text = config_text("vcp_clip");
  o.checkpoint = kDir + "tiny_april_gan.pth";  // the same file: the method is what differs
  o.calibration = (eval_dir() / "calibration.json").string();
  o.class_name = fs::directory_iterator(target_set())->path().filename().string();
  const std::string e = error_of([&] { Inferencer inf(o); });
  EXPECT_NE(e.find("was made with method april_gan, but this run's model.method is vcp_clip; calibrate again with "
                   "this method"),
            std::string::npos)
      << e;
}
