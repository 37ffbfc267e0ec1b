// Runs that describe themselves (README "Your own product in five minutes"): the resolved config
// that train/eval/calibrate/demo write as config.yaml, `-k` without `-c`, and predict on folder trees.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../model/vcp_fixture.h"
#include "support/run_binary.h"
#include "support/test_util.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/predict.h"
#include "vcpclip/io/npy.h"

using namespace vcpclip;
using vcpclip::testing::error_of;
using vcpclip::testing::fresh_temp_dir;
using vcpclip::testing::run_command;
using vcpclip::testing::slurp;
namespace fx = vcp_fixture;
namespace fs = std::filesystem;

namespace {

const std::string kSource = VCPCLIP_SOURCE_DIR;

/// A config in its own folder that names the backbone relative to that folder, sets few keys.
fs::path write_minimal_config(const fs::path& dir) {
  fs::create_directories(dir / "models");
  fs::create_directories(dir / "data");  // found beside the config, not in the working directory
  fs::copy_file(kSource + "/configs/models/tiny.json", dir / "models/tiny.json", fs::copy_options::overwrite_existing);
  std::ofstream(dir / "run.yaml") << "model:\n  backbone: models/tiny.json\n  image_size: 32\n"
                                     "postprocess: {sigma: 2.5}\n"
                                     "eval:\n  out_dir: out/eval\n  data: {layout: folder, root: data}\n";
  return dir / "run.yaml";
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(RunConfigFile, ResolvedConfigHasEveryKeyDefaultsAndAbsolutePaths) {
  const auto dir = fresh_temp_dir("resolved");
  const auto cfg = app::load_run_config(write_minimal_config(dir).string(), {"train.lr=0.001"});
  const YAML::Node& e = cfg.effective;
  // given keys, as used; the backbone resolved against the config's folder and made absolute
  EXPECT_EQ(e["model"]["backbone"].as<std::string>(), (dir / "models/tiny.json").string());
  EXPECT_EQ(e["model"]["image_size"].as<int>(), 32);
  EXPECT_EQ(e["postprocess"]["sigma"].as<double>(), 2.5);
  EXPECT_EQ(e["train"]["lr"].as<double>(), 0.001) << "overrides are part of the resolved config";
  EXPECT_TRUE(fs::path(e["eval"]["out_dir"].as<std::string>()).is_absolute());
  EXPECT_TRUE(fs::path(e["eval"]["data"]["root"].as<std::string>()).is_absolute());
  // defaults of sections the file never mentions
  EXPECT_EQ(e["postprocess"]["topk"].as<int64_t>(), cfg.postprocess.topk);
  EXPECT_EQ(e["predict"]["batch_size"].as<int64_t>(), cfg.predict.batch_size);
  EXPECT_EQ(e["runtime"]["precision"].as<std::string>(), "fp32");
  EXPECT_EQ(e["train"]["epochs"].as<int64_t>(), cfg.train.options.epochs);
  EXPECT_EQ(e["model"]["features_list"].size(), cfg.model->features_list.size());
  EXPECT_EQ(e["model"]["templates_normal"].size(), cfg.model->templates_normal.size());
  EXPECT_EQ(e["eval"]["aupro"].as<std::string>(), "exact");
  EXPECT_FALSE(e["train"]["data"]) << "an absent optional section stays absent";
}

TEST(RunConfigFile, ReadsBackToTheSameRunFromAnyFolder) {
  const auto dir = fresh_temp_dir("roundtrip");
  const auto cfg = app::load_run_config(write_minimal_config(dir).string(), {"postprocess.alpha=0.35"});
  const auto written = app::write_run_config(cfg.text, (dir / "run1").string());
  EXPECT_EQ(written, (dir / "run1/config.yaml").string());
  const auto text = slurp(written);
  EXPECT_EQ(text.rfind("# The resolved run config", 0), 0u) << text.substr(0, 200);
  // read back from another working directory: the same resolved config, the same typed values
  const auto cwd = fs::current_path();
  fs::current_path(fs::temp_directory_path());
  const auto again = app::load_run_config(written);
  fs::current_path(cwd);
  EXPECT_EQ(again.text, cfg.text);
  EXPECT_EQ(again.model->backbone, (dir / "models/tiny.json").string());
  EXPECT_EQ(again.model->input_size, 32);
  EXPECT_DOUBLE_EQ(again.postprocess.alpha, 0.35);
  EXPECT_DOUBLE_EQ(again.postprocess.sigma, 2.5);
  EXPECT_DOUBLE_EQ(again.train.options.lr, cfg.train.options.lr);
  EXPECT_EQ(again.eval.data->root, (dir / "data").string());
}

TEST(RunConfigFile, NumbersKeepTheirValueAndStayReadable) {
  EXPECT_EQ(io::effective_value(0.1).Scalar(), "0.1");
  EXPECT_EQ(io::effective_value(4e-5).Scalar(), "4e-05");
  EXPECT_EQ(io::effective_value(8.0).Scalar(), "8.0");
  EXPECT_EQ(io::effective_value(1.0 / 3.0).Scalar(), "0.3333333333333333");
  for (double v : {1.0 / 3.0, 5e-3, 1e-8, 0.999, 123456.789, -2.5e300})
    EXPECT_EQ(std::stod(io::effective_value(v).Scalar()), v) << io::effective_value(v).Scalar();
  EXPECT_EQ(io::effective_value(true).Scalar(), "true");
  EXPECT_EQ(io::yaml_quoted("a: b # c"), "\"a: b # c\"");
}

TEST(RunConfigFile, CheckpointFindsTheConfigBesideItAndDashCWins) {
  const auto dir = fresh_temp_dir("beside");
  const auto ckpt = (dir / "last.pth").string();
  EXPECT_EQ(error_of([&] { app::find_run_config("", ckpt, "predict"); }),
            "predict: no run config: pass -c CONFIG (there is no config.yaml beside the checkpoint " + ckpt +
                "; the runs of vcpclip train and vcpclip demo write one)");
  EXPECT_EQ(error_of([&] { app::find_run_config("", "", "eval"); }),
            "eval: no run config: pass -c CONFIG (a run config such as configs/eval_mvtec.yaml)");
  std::ofstream(dir / "config.yaml") << "runtime: {threads: 1}\n";
  EXPECT_EQ(app::find_run_config("", ckpt, "predict"), (dir / "config.yaml").string());
  EXPECT_EQ(app::find_run_config("other.yaml", ckpt, "predict"), "other.yaml");
}

TEST(Predict, FolderTreesAreSearchedRecursivelyAndMirrored) {
  const auto in = fresh_temp_dir("tree_in");
  for (const char* sub : {"good", "crack", "crack/deep", ".hidden"}) fs::create_directories(in / sub);
  fs::copy_file(fx::path("image_0.png"), in / "good/000.png");
  fs::copy_file(fx::path("image_1.png"), in / "crack/000.png");
  fs::copy_file(fx::path("image_2.png"), in / "crack/deep/000.png");
  fs::copy_file(fx::path("image_2.png"), in / ".hidden/000.png");  // not an input
  std::ofstream(in / "crack/notes.txt") << "not an image";
  const auto found = app::collect_images({in.string(), fx::path("image_1.png")});
  ASSERT_EQ(found.size(), 4u);
  EXPECT_EQ(found[0], (app::InputImage{(in / "crack/000.png").string(), "crack/000"}));
  EXPECT_EQ(found[1], (app::InputImage{(in / "crack/deep/000.png").string(), "crack/deep/000"}));
  EXPECT_EQ(found[2], (app::InputImage{(in / "good/000.png").string(), "good/000"}));
  EXPECT_EQ(found[3], (app::InputImage{fx::path("image_1.png"), "image_1"}));

  const auto out = fresh_temp_dir("tree_out");
  app::PredictRequest req;
  req.model = fx::options();
  req.checkpoint = fx::path("tiny_vcp.pth");
  req.inputs = {in.string()};
  req.out_dir = out.string();
  req.runtime.threads = 1;
  const auto summary = app::run_predict(req);
  ASSERT_EQ(summary.images.size(), 3u);
  const auto scores = read_json(out / "scores.json");
  const auto golden = fx::load("final_map");
  const std::vector<std::pair<std::string, int>> expected = {{"crack/000", 1}, {"crack/deep/000", 2}, {"good/000", 0}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& [stem, golden_index] = expected[i];
    EXPECT_EQ(scores["images"][i]["stem"], stem);
    EXPECT_EQ(scores["images"][i]["path"], (in / (stem + ".png")).string());
    const auto map = io::read_npy((out / (stem + "_map.npy")).string());
    EXPECT_LE(fx::max_abs_diff(map, golden[golden_index]), 1e-4) << stem;
    EXPECT_TRUE(fs::is_regular_file(out / (stem + ".png"))) << stem;
  }
  EXPECT_FALSE(fs::exists(out / "000_map.npy")) << "no flat outputs, no _2 suffixes";
  EXPECT_FALSE(fs::exists(out / ".hidden"));
}

TEST(Predict, CheckpointAloneFindsItsRunConfigFromAnyFolder) {
  // A run folder as train writes it: the checkpoint and the resolved config beside it.
  const auto run = fresh_temp_dir("ckpt_run");
  fs::copy_file(fx::path("tiny_vcp.pth"), run / "last.pth");
  const auto cwd = fs::current_path();
  fs::current_path(kSource);
  app::write_run_config(app::load_run_config("configs/predict_tiny.yaml", {"runtime.threads=1"}).text, run.string());
  fs::current_path(cwd);
  const auto out = fresh_temp_dir("ckpt_out");
  const std::string bin = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip";
  const auto r = run_command("cd " + fs::temp_directory_path().string() + " && VCPCLIP_VOCAB=" + fx::vocab_path() +
                             " " + bin + " predict --no-progress -k " + (run / "last.pth").string() + " -i " +
                             fx::path("image_1.png") + " -o " + out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("predict: using the run config " + (run / "config.yaml").string() + " (beside the checkpoint)"),
            std::string::npos)
      << r.out;
  const auto scores = read_json(out / "scores.json");
  EXPECT_NEAR(scores["images"][0]["score"].get<double>(), fx::load("score")[1].item<double>(), 1e-4);

  fs::remove(run / "config.yaml");
  const auto bad = run_command(bin + " predict -k " + (run / "last.pth").string() + " -i " + fx::path("image_1.png") +
                               " -o " + out.string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("predict: no run config: pass -c CONFIG (there is no config.yaml beside the checkpoint " +
                         (run / "last.pth").string()),
            std::string::npos)
      << bad.out;
}
