// Every verb with every method, through the real binary (README "Comparing methods"), for
// model.method april_gan and anomaly_clip on their tiny golden towers (tests/fixtures/<method>/):
//  - train, SIGKILLed after two steps and continued with --resume: the final head (the method's
//    official checkpoint layout) equals an uninterrupted run's within 1e-6, every step logged once;
//  - eval of that head zero-shot (calibration.json records the method) and with one reference per
//    class (few-shot: the zero-shot comparison is in metrics.json);
//  - calibrate --method quantile on the good train images (the method recorded), predict with
//    eval's calibration (a decision per image; the class given with --class);
//  - serve: one PNG answered with the same score as predict, the method in the model's metadata.
// VCP-CLIP's verbs have their own tests (test_train_faults.cpp, test_cli_*.cpp, test_serve*.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../train/trainer_fixture.h"
#include "process_util.h"
#include "serve_fixture.h"
#include "support/synth_set.h"
#include "support/test_util.h"

namespace fs = std::filesystem;
using namespace process_util;
using nlohmann::json;

namespace {

const std::string kFixtures = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/";

/// The `model:` section of a method's tiny golden tower (its golden.json's settings).
std::string model_section(const std::string& method) {
  std::string m = "model:\n  method: " + method + "\n  vocab: " + trainer_fixture::vocab() + "\n  image_size: 64\n";
  if (method == "april_gan")
    return m + "  backbone: " + kFixtures + "april_gan/tiny_clip.json\n  weights: " + kFixtures +
           "april_gan/tiny_clip.pt\n  features_list: [2, 3, 4]\n";
  return m + "  backbone: " + kFixtures + "anomaly_clip/tiny_anomaly_clip.json\n  weights: " + kFixtures +
         "anomaly_clip/tiny_anomaly_clip.pt\n  activation: quick_gelu\n  features_list: [4]\n  depth: 3\n";
}

/// A run config for `method` training on `train_root` (VisA layout) and evaluating on `eval_root`.
fs::path write_config(const fs::path& dir, const std::string& method, const fs::path& train_root,
                      const fs::path& eval_root) {
  const auto cfg = dir / "run.yaml";
  std::ofstream(cfg) << "runtime: {device: cpu, threads: 1, seed: 333, log_level: info}\n"
                     << model_section(method) << "train:\n  epochs: 2\n  batch_size: 2\n"
                     << "  resume_every_steps: 3\n  resume_every_seconds: 0\n"
                     << "  data: {layout: visa, workers: 1, root: " << train_root.string() << "}\n"
                     << "eval:\n  batch_size: 4\n  data: {layout: mvtec, workers: 1, root: " << eval_root.string()
                     << "}\nserve:\n  port: 0\n";
  return cfg;
}

int run(const std::vector<std::string>& args, const fs::path& log) { return wait_for(spawn(args, log.string())); }

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

/// The first test image of the set (a PNG under <class>/test/).
fs::path first_test_image(const fs::path& root) {
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().extension() == ".png" && e.path().string().find("/test/") != std::string::npos) return e.path();
  return {};
}

class MethodVerbs : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(MethodVerbs, TrainResumeEvalFewShotCalibratePredictServe) {
  const std::string method = GetParam();
  trainer_fixture::TempDir tmp("verbs_" + method);
  const auto aux = trainer_fixture::make_dataset(tmp.path / "aux", 4);  // 8 images, batch 2: 4 steps an epoch
  const fs::path target = vcpclip::testing::make_synth_target_set("verbs_" + method, 2, 6, 3);
  const auto cfg = write_config(tmp.path, method, aux, target);
  const auto log = tmp.path / "run.log";
  auto train = [&](const fs::path& out, bool resume) {
    std::vector<std::string> a{"train", "-c", cfg.string(), "--no-progress", "--set", "train.out_dir=" + out.string()};
    if (resume) a.push_back("--resume");
    return a;
  };
  // train: uninterrupted, and SIGKILLed after 2 steps then resumed
  const fs::path ref = tmp.path / "ref", out = tmp.path / "killed";
  ASSERT_EQ(run(train(ref, false), log), 0) << vcpclip::testing::slurp(log.string());
  kill_when(train(out, false), log.string(), [&] { return steps_logged(out) >= 2; });
  ASSERT_EQ(run(train(out, true), log), 0) << vcpclip::testing::slurp(log.string());
  EXPECT_NE(vcpclip::testing::slurp(log.string()).find("resumed from"), std::string::npos);
  const auto head = (out / "last.pth").string();
  EXPECT_LE(trainer_fixture::max_diff(trainer_fixture::read_ckpt(head),
                                      trainer_fixture::read_ckpt((ref / "last.pth").string())),
            1e-6);
  EXPECT_EQ(steps_logged(out), 8);

  // eval zero-shot with a calibration, then with one reference per class
  const fs::path eval0 = tmp.path / "eval0", eval1 = tmp.path / "eval1", cal = tmp.path / "calibration.json";
  ASSERT_EQ(run({"eval", "-c", cfg.string(), "-k", head, "-o", eval0.string(), "--calibration-out", cal.string(),
                 "--no-progress"},
                log),
            0)
      << vcpclip::testing::slurp(log.string());
  EXPECT_EQ(read_json(eval0 / "metrics.json").at("classes").size(), 2u);
  EXPECT_EQ(read_json(cal).at("config").at("settings").at("model").at("method"), method);
  ASSERT_EQ(
      run({"eval", "-c", cfg.string(), "-k", head, "-o", eval1.string(), "--set", "few_shot.k=1", "--no-progress"},
          log),
      0)
      << vcpclip::testing::slurp(log.string());
  const auto few = read_json(eval1 / "metrics.json");
  EXPECT_TRUE(few.contains("references_vs_zero_shot")) << few.dump().substr(0, 400);
  EXPECT_EQ(few.at("classes").size(), 2u);

  // calibrate on good images, then predict one image with it
  const std::string cls = fs::path(first_test_image(target)).parent_path().parent_path().parent_path().filename();
  const fs::path qcal = tmp.path / "quantile", pred = tmp.path / "pred";
  ASSERT_EQ(run({"calibrate", "-c", cfg.string(), "-k", head, "--method", "quantile", "-o", qcal.string(), "--set",
                 "eval.data.split=train", "--no-progress"},
                log),
            0)
      << vcpclip::testing::slurp(log.string());
  EXPECT_EQ(read_json(qcal / "calibration.json").at("config").at("settings").at("model").at("method"), method);
  const fs::path image = first_test_image(target / cls);
  ASSERT_EQ(run({"predict", "-c", cfg.string(), "-k", head, "--calibration", cal.string(), "--class", cls, "-i",
                 image.string(), "-o", pred.string(), "--no-progress"},
                log),
            0)
      << vcpclip::testing::slurp(log.string());
  const auto scores = read_json(pred / "scores.json");
  const json& first = scores.is_array() ? scores.at(0) : scores.at("images").at(0);
  EXPECT_TRUE(first.contains("decision")) << first.dump();
  const double predicted = first.at("score").get<double>();

  // serve: the same image, the same score; the method in the metadata
  serve_fixture::ServerProcess server(cfg.string(), {"--class", cls}, "", 0, head);
  ASSERT_TRUE(server.port() > 0 && server.wait_ready()) << server.log();
  httplib::Client c("127.0.0.1", server.port());
  auto r = c.Post("/v1/predict", serve_fixture::file_bytes(image.string()), "image/png");
  ASSERT_TRUE(r) << server.log();
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_NEAR(json::parse(r->body).at("score").get<double>(), predicted, 1e-4 * std::max(1.0, std::abs(predicted)));
  auto meta = c.Get("/v2/models/vcpclip");
  ASSERT_TRUE(meta);
  EXPECT_NE(meta->body.find(method), std::string::npos) << meta->body;
}

INSTANTIATE_TEST_SUITE_P(Methods, MethodVerbs, ::testing::Values("april_gan", "anomaly_clip"),
                         [](const auto& info) { return info.param; });
