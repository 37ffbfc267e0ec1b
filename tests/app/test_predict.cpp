// `predict`: maps and scores of the golden PNGs against the reference pipeline (including the
// image preprocessing), branch outputs, bad-file handling, and the CLI end to end.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../model/vcp_fixture.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/predict.h"
#include "vcpclip/common/cpu_features.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/model/precision_probe.h"

using namespace vcpclip;
namespace fx = vcp_fixture;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("vcpclip_predict_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

app::PredictRequest request(const fs::path& out) {
  app::PredictRequest r;
  r.model = fx::options();
  r.checkpoint = fx::path("tiny_vcp.pth");
  for (const auto& im : fx::manifest().at("images")) r.inputs.push_back(fx::path(im.get<std::string>()));
  r.out_dir = out.string();
  r.predict.batch_size = 2;  // 3 images: a full and a partial batch
  r.runtime.threads = 1;
  return r;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(Predict, MapsAndScoresMatchReference) {
  auto out = fresh_dir("golden");
  auto req = request(out);
  req.save_branches = true;
  auto summary = app::run_predict(req);
  ASSERT_EQ(summary.images.size(), 3u);
  auto final_map = fx::load("final_map"), m_raw = fx::load("m_raw"), m_post = fx::load("m_post");
  auto score = fx::load("score");
  auto scores = read_json(out / "scores.json");
  ASSERT_EQ(scores.at("images").size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const std::string stem = "image_" + std::to_string(i);
    auto map = io::read_npy((out / (stem + "_map.npy")).string());
    EXPECT_LE(fx::max_abs_diff(map, final_map[i]), 1e-4) << "stage 'final map' drifted, " << stem;
    EXPECT_LE(fx::max_abs_diff(io::read_npy((out / (stem + "_raw.npy")).string()), m_raw[i]), 1e-4) << stem;
    EXPECT_LE(fx::max_abs_diff(io::read_npy((out / (stem + "_post.npy")).string()), m_post[i]), 1e-4) << stem;
    EXPECT_TRUE(fs::is_regular_file(out / (stem + ".png")));
    const auto& e = scores.at("images").at(i);
    EXPECT_EQ(e.at("stem").get<std::string>(), stem);
    EXPECT_NEAR(e.at("score").get<double>(), score[i].item<double>(), 1e-4) << "stage 'image score', " << stem;
  }
  EXPECT_TRUE(scores.at("skipped").empty());
  fs::remove_all(out);
}

TEST(Predict, BadImageFailsClearlyOrIsSkipped) {
  auto in = fresh_dir("bad_in");
  for (int i = 0; i < 3; ++i)
    fs::copy_file(fx::path("image_" + std::to_string(i) + ".png"), in / ("img" + std::to_string(i) + ".png"));
  { std::ofstream(in / "img1b.png") << "this is not an image"; }
  auto out = fresh_dir("bad_out");
  auto req = request(out);
  req.inputs = {in.string()};
  try {
    app::run_predict(req);
    FAIL() << "expected an error for the unreadable image";
  } catch (const vcpclip::Error& e) {
    EXPECT_NE(std::string(e.what()).find("img1b.png"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out / "scores.json")) << "no scores.json may pretend to be complete";

  req.skip_bad = true;
  auto summary = app::run_predict(req);
  EXPECT_EQ(summary.images.size(), 3u);
  ASSERT_EQ(summary.skipped.size(), 1u);
  auto scores = read_json(out / "scores.json");
  EXPECT_EQ(scores.at("images").size(), 3u);
  EXPECT_NE(scores.at("skipped").at(0).at("path").get<std::string>().find("img1b.png"), std::string::npos);
  fs::remove_all(in);
  fs::remove_all(out);
}

TEST(Predict, UniqueStemsAndCollect) {
  EXPECT_EQ(app::unique_stems({"x", "x", "y", "x", "d/x"}), (std::vector<std::string>{"x", "x_2", "y", "x_3", "d/x"}));
  try {
    app::collect_images({"/nonexistent/dir/img.png"});
    FAIL();
  } catch (const vcpclip::Error& e) {
    EXPECT_EQ(std::string(e.what()), "predict: input /nonexistent/dir/img.png does not exist");
  }
}

TEST(Predict, CliEndToEnd) {
  auto out = fresh_dir("cli");
  const std::string bin = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip";
  const std::string cmd = "cd " + std::string(VCPCLIP_SOURCE_DIR) + " && VCPCLIP_VOCAB=" + fx::vocab_path() + " " +
                          bin + " predict -c configs/predict_tiny.yaml -k tests/fixtures/vcp/tiny_vcp.pth -i " +
                          fx::path("image_1.png") + " --out " + out.string() + " --profile --set runtime.threads=1 > " +
                          (out / "log.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto scores = read_json(out / "scores.json");
  ASSERT_EQ(scores.at("images").size(), 1u);
  EXPECT_NEAR(scores.at("images").at(0).at("score").get<double>(), fx::load("score")[1].item<double>(), 1e-4);
  {
    std::ifstream log(out / "log.txt");
    const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("predict profile (cpu, fp32)"), std::string::npos) << text;
    EXPECT_NE(text.find("vision tower"), std::string::npos) << text;
  }
  // a missing checkpoint: non-zero exit, the file named
  const std::string bad = "cd " + std::string(VCPCLIP_SOURCE_DIR) + " && " + bin +
                          " predict -c configs/predict_tiny.yaml -k /nonexistent.pth -i " + fx::path("image_1.png") +
                          " -o " + (out / "x").string() + " > " + (out / "err.txt").string() + " 2>&1";
  EXPECT_NE(std::system(bad.c_str()), 0);
  std::ifstream err(out / "err.txt");
  std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("/nonexistent.pth"), std::string::npos) << text;
  fs::remove_all(out);
}

TEST(Predict, ProfileNamesEveryStage) {
  auto out = fresh_dir("profile");
  auto req = request(out);
  req.profile = true;
  auto summary = app::run_predict(req);
  std::vector<std::string> stages;
  for (const auto& s : summary.profile.at("stages")) stages.push_back(s.at("stage").get<std::string>());
  for (const char* want : {"load (weights, tokenizer, checkpoint)", "decode/preprocess (loader threads)",
                           "vision tower", "Pre-VCP", "text tower", "Post-VCP + maps", "post-processing", "writing"})
    EXPECT_NE(std::find(stages.begin(), stages.end(), want), stages.end()) << want;
  double sum = 0;
  for (const auto& s : summary.profile.at("stages")) {
    if (s.at("stage") == "decode/preprocess (loader threads)") {
      EXPECT_EQ(s.at("calls").get<int>(), 3);  // one per image
      continue;                                // overlapped with compute: not part of the wall-clock sum
    }
    if (s.at("stage") == "writing (writer thread)") continue;  // overlapped with compute too
    sum += s.at("seconds").get<double>();
  }
  EXPECT_LE(sum, summary.profile.at("total_seconds").get<double>() * 1.01 + 1e-3);
  fs::remove_all(out);
}

// bf16 really computes in bf16 (the maps differ from fp32: 8 mantissa bits give differences far
// above fp32 rounding) and stays within docs/design.md's 1e-2 of the fp32 maps.
TEST(Predict, Bf16ChangesTheMapsWithinTolerance) {
  auto out32 = fresh_dir("fp32"), out16 = fresh_dir("bf16");
  auto req = request(out32);
  app::run_predict(req);
  req = request(out16);
  req.runtime.precision = Precision::kBf16;
  app::run_predict(req);
  double worst = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string f = "image_" + std::to_string(i) + "_map.npy";
    worst = std::max(worst, fx::max_abs_diff(io::read_npy((out32 / f).string()), io::read_npy((out16 / f).string())));
  }
  std::printf("predict bf16 vs fp32, golden fixture: max |final map diff| %.3g\n", worst);
  EXPECT_LE(worst, 1e-2);
  EXPECT_GE(worst, 1e-4) << "bf16 maps (nearly) equal the fp32 ones: was bf16 used at all?";
  EXPECT_EQ(read_json(out16 / "scores.json").at("precision"), "bf16");
  fs::remove_all(out32);
  fs::remove_all(out16);
}

// runtime.precision auto, as a process: scores.json names the precision used and both probe rates,
// the choice is the one the pure decision makes from those rates, and the maps are exactly those of
// a run with that precision set explicitly.
TEST(Predict, PrecisionAutoRecordsTheProbeAndMatchesTheChosenPrecision) {
  auto out = fresh_dir("auto"), fixed = fresh_dir("auto_fixed");
  const std::string bin = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip";
  auto cli = [&](const fs::path& o, const std::string& precision) {
    return "cd " + std::string(VCPCLIP_SOURCE_DIR) + " && VCPCLIP_VOCAB=" + fx::vocab_path() + " " + bin +
           " predict --no-progress -c configs/predict_tiny.yaml -k tests/fixtures/vcp/tiny_vcp.pth -i " +
           fx::path("image_0.png") + " -i " + fx::path("image_1.png") + " --out " + o.string() +
           " --set runtime.threads=1 --set runtime.precision=" + precision + " > " + (o / "log.txt").string() + " 2>&1";
  };
  ASSERT_EQ(std::system(cli(out, "auto").c_str()), 0) << cli(out, "auto");
  const auto scores = read_json(out / "scores.json");
  const auto& probe = scores.at("precision_probe");
  model::ProbeRates rates;
  rates.fp32_gflops = probe.at("fp32_gflops").get<double>();
  rates.bf16_gflops = probe.at("bf16_gflops").get<double>();
  rates.bf16_instructions = probe.at("bf16_instructions").get<bool>();  // CPU: AVX512-BF16 or AMX-BF16
  EXPECT_EQ(rates.bf16_instructions, cpu_bf16().any());
  EXPECT_GT(rates.fp32_gflops, 0);
  EXPECT_GT(rates.bf16_gflops, 0);
  EXPECT_EQ(probe.at("min_bf16_speedup").get<double>(), 1.3);
  EXPECT_EQ(probe.at("shapes").size(), 4u);  // the tiny backbone's vision block: W→3W, W→W, W→4W, 4W→W
  EXPECT_GE(probe.at("rows").get<int64_t>(), 1);
  const std::string used = scores.at("precision").get<std::string>();
  EXPECT_EQ(used, to_string(model::choose_precision(rates)));
  std::ifstream log(out / "log.txt");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("precision auto -> " + used + ": GEMM probe fp32 "), std::string::npos) << text;
  ASSERT_EQ(std::system(cli(fixed, used).c_str()), 0);
  EXPECT_FALSE(read_json(fixed / "scores.json").contains("precision_probe"));
  for (const char* f : {"image_0_map.npy", "image_1_map.npy"})
    EXPECT_TRUE(at::equal(io::read_npy((out / f).string()), io::read_npy((fixed / f).string()))) << f;
  fs::remove_all(out);
  fs::remove_all(fixed);
}

TEST(Predict, RequestFromRunConfigAndFlags) {
  auto cfg = app::parse_run_config(
      "model:\n  backbone: b.json\n  image_size: 32\nruntime:\n  precision: bf16\n"
      "predict:\n  batch_size: 3\n",
      "p.yaml");
  app::PredictFlags flags;
  flags.checkpoint = "k.pth";
  flags.inputs = {"a.png"};
  flags.out_dir = "out";
  flags.profile = true;
  auto req = app::make_predict_request(cfg, flags);
  EXPECT_EQ(req.model.input_size, 32);
  EXPECT_EQ(req.runtime.precision, Precision::kBf16);
  EXPECT_EQ(req.predict.batch_size, 3);
  EXPECT_EQ(req.checkpoint, "k.pth");
  EXPECT_EQ(req.out_dir, "out");
  EXPECT_TRUE(req.profile);
  auto no_model = app::parse_run_config("predict:\n  batch_size: 3\n", "q.yaml");
  try {
    app::make_predict_request(no_model, flags);
    FAIL();
  } catch (const vcpclip::Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("predict needs a `model` section in q.yaml", 0), 0u) << e.what();
  }
}

namespace {
std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

// The pipelined loop (a writer thread, app/batch_pipeline.h) writes exactly what the serial loop
// writes, in the same order, also when the writer is slower than the model (injected delay):
// every .npy byte for byte, scores.json identical; batch 1 makes every image its own batch.
TEST(Predict, PipelinedOutputsEqualTheSerialLoopsUnderASlowWriter) {
  auto serial_out = fresh_dir("serial"), piped_out = fresh_dir("piped");
  auto req = request(serial_out);
  req.save_branches = true;
  req.predict.batch_size = 1;
  req.serial = true;
  app::run_predict(req);
  req.out_dir = piped_out.string();
  req.serial = false;
  ASSERT_EQ(setenv("VCPCLIP_TEST_WRITER_DELAY_MS", "40", 1), 0);
  app::PredictSummary summary;
  try {
    summary = app::run_predict(req);
  } catch (...) {
    unsetenv("VCPCLIP_TEST_WRITER_DELAY_MS");
    throw;
  }
  unsetenv("VCPCLIP_TEST_WRITER_DELAY_MS");
  ASSERT_EQ(summary.images.size(), 3u);
  EXPECT_FALSE(summary.gpu_busy_share.has_value());
  const auto serial_scores = read_json(serial_out / "scores.json"), piped_scores = read_json(piped_out / "scores.json");
  EXPECT_EQ(serial_scores, piped_scores);
  for (size_t i = 0; i < req.inputs.size(); ++i)
    EXPECT_EQ(summary.images[i].path, req.inputs[i]) << "images in input order";
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(serial_out)) {
    if (e.path().extension() != ".npy" && e.path().extension() != ".png") continue;
    const auto rel = e.path().lexically_relative(serial_out);
    ASSERT_TRUE(fs::exists(piped_out / rel)) << rel;
    EXPECT_EQ(file_bytes(e.path()), file_bytes(piped_out / rel)) << rel;
    ++files;
  }
  EXPECT_EQ(files, 3 * 4);  // map, raw, post, heatmap per image
  fs::remove_all(serial_out);
  fs::remove_all(piped_out);
}
