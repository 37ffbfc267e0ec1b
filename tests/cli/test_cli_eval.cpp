// `vcpclip eval` end to end through the binary: a synthetic target set, the tiny fixture model,
// metrics files and table, --save-maps / --set, and the error paths (unknown key, missing
// section, corrupt image) with their exact messages and exit status.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../model/vcp_fixture.h"
#include "support/run_binary.h"
#include "support/test_util.h"
#include "vcpclip/build_info.h"

namespace fs = std::filesystem;
namespace fx = vcp_fixture;
using vcpclip::testing::run_vcpclip;

namespace {

fs::path work_dir() {
  static const fs::path d = vcpclip::testing::fresh_temp_dir("vcpclip_cli_eval_" + std::to_string(::getpid()));
  return d;
}

/// The synthetic target set and a config for the tiny fixture model (written once).
fs::path config() {
  static const fs::path cfg = [] {
    const auto d = work_dir();
    auto r = run_vcpclip("synth --layout mvtec --role target --out " + (d / "target").string() +
                         " --classes 2 --images 4 --train-images 0 --size 64");
    EXPECT_EQ(r.status, 0) << r.out;
    const auto p = d / "eval.yaml";
    std::ofstream(p) << "runtime:\n  threads: 1\n"
                     << "model:\n  backbone: " << fx::path("tiny_vcp_clip.json")
                     << "\n  weights: " << fx::path("tiny_vcp_clip.pt") << "\n  vocab: " << fx::vocab_path()
                     << "\n  image_size: 64\n  features_list: [2, 3, 4]\n"
                     << "eval:\n  batch_size: 3\n  out_dir: " << (d / "default_out").string()
                     << "\n  data:\n    layout: mvtec\n    root: " << (d / "target").string() << "\n    workers: 1\n";
    return p;
  }();
  return cfg;
}

}  // namespace

TEST(CliEval, WritesMetricsAndPrintsTheTable) {
  const auto out = work_dir() / "out";
  auto r = run_vcpclip("eval --no-progress --config " + config().string() + " --checkpoint " +
                       fx::path("tiny_vcp.pth") + " --out " + out.string() + " --save-maps --set eval.aupro=reference");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("mean"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("8 images"), std::string::npos) << r.out;
  std::ifstream in(out / "metrics.json");
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("aupro_mode").get<std::string>(), "reference");
  EXPECT_EQ(j.at("classes").size(), 2u);
  EXPECT_TRUE(fs::is_regular_file(out / "maps" / "scores.json"));
  // `score` on the saved maps gives the same table.
  auto s = run_vcpclip("score --maps " + (out / "maps").string() + " --config " + config().string() +
                       " --set eval.aupro=reference --out " + (work_dir() / "scored").string());
  ASSERT_EQ(s.status, 0) << s.out;
  std::ifstream in2(work_dir() / "scored" / "metrics.json");
  auto j2 = nlohmann::json::parse(in2);
  for (size_t c = 0; c < 2; ++c)
    for (const char* k : {"pixel_auroc", "pixel_aupro", "pixel_ap", "image_auroc"}) {
      const auto &a = j["classes"][c][k], &b = j2["classes"][c][k];
      ASSERT_EQ(a.is_null(), b.is_null()) << k;
      if (!a.is_null()) {
        EXPECT_NEAR(a.get<double>(), b.get<double>(), 1e-6) << k;
      }
    }
}

TEST(CliEval, WithoutCheckpointWarnsAndUsesConfigOutDir) {
  auto r = run_vcpclip("eval --no-progress --config " + config().string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("no checkpoint given: evaluating an UNTRAINED VCP head"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::is_regular_file(work_dir() / "default_out" / "metrics.md"));
}

TEST(CliEval, ConfigErrorsAreExact) {
  auto r = run_vcpclip("eval --config " + config().string() + " --set eval.data.wrkers=2");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("vcpclip eval: error: unknown config key 'eval.data.wrkers' in " + config().string()),
            std::string::npos)
      << r.out;
  const auto nodata = work_dir() / "nodata.yaml";
  std::ofstream(nodata) << "model:\n  backbone: " << fx::path("tiny_vcp_clip.json") << "\n";
  r = run_vcpclip("eval --config " + nodata.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("vcpclip eval: error: eval needs an `eval.data` section in " + nodata.string()),
            std::string::npos)
      << r.out;
}

TEST(CliEval, CorruptImageNamesTheFile) {
  const auto root = work_dir() / "corrupt";
  fs::remove_all(root);
  config();
  fs::copy(work_dir() / "target", root, fs::copy_options::recursive);
  fs::path bad;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().extension() == ".png" && e.path().parent_path().filename() == "good" &&
        e.path().parent_path().parent_path().filename() == "test") {
      bad = e.path();
      break;
    }
  ASSERT_FALSE(bad.empty());
  { std::ofstream(bad, std::ios::trunc) << "garbage"; }
  auto r = run_vcpclip("eval --no-progress --config " + config().string() + " --set eval.data.root=" + root.string() +
                       " --out " + (work_dir() / "corrupt_out").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("vcpclip eval: error: cannot decode image file (not an image or corrupt): " + bad.string()),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(work_dir() / "corrupt_out" / "metrics.json"));
  for (const std::string flag : {" --set eval.data.skip_bad=true", " --skip-bad"}) {
    r = run_vcpclip("eval --no-progress --config " + config().string() + " --set eval.data.root=" + root.string() +
                    flag + " --out " + (work_dir() / "corrupt_out").string());
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("7 images"), std::string::npos) << r.out;
    // The skipped image makes the result partial: the mean row and a last line say so.
    EXPECT_NE(r.out.find("| mean over 7 of 8 images |"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("PARTIAL RESULT: 1 of 8 images skipped (unreadable)"), std::string::npos) << r.out;
  }
}

TEST(CliEval, ClassWithoutImagesNeedsAllowPartial) {
  const auto root = work_dir() / "with_empty";
  fs::remove_all(root);
  config();
  fs::copy(work_dir() / "target", root, fs::copy_options::recursive);
  fs::create_directories(root / "zzz_empty" / "test" / "good");
  const std::string base = "eval --no-progress --config " + config().string() +
                           " --set eval.data.root=" + root.string() + " --out " + (work_dir() / "empty_out").string();
  auto r = run_vcpclip(base);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("vcpclip eval: error: eval: class 'zzz_empty' has no test images in MVTec AD layout at " +
                       root.string()),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(work_dir() / "empty_out" / "metrics.json"));
  r = run_vcpclip(base + " --allow-partial");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("| mean over 2 of 3 classes |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PARTIAL RESULT: 1 of 3 classes could not be scored (class 'zzz_empty': no test images)"),
            std::string::npos)
      << r.out;
  std::ifstream in(work_dir() / "empty_out" / "metrics.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_FALSE(j.at("complete").get<bool>());
  EXPECT_EQ(j.at("mean").at("label"), "mean over 2 of 3 classes");
}
