// `vcpclip data check` through the binary: a clean synthetic set (exit 0, counts), a broken one
// (exit 2, the problem), --set overrides, and the error paths with their exact messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/run_binary.h"
#include "support/test_util.h"

namespace fs = std::filesystem;
using vcpclip::testing::run_vcpclip;

namespace {

fs::path work_dir() {
  static const fs::path d = vcpclip::testing::fresh_temp_dir("vcpclip_cli_data");
  return d;
}

/// A synthetic MVTec-layout set and a config whose eval.data points at it.
fs::path config() {
  static const fs::path cfg = [] {
    const auto d = work_dir();
    const auto r = run_vcpclip("synth --layout mvtec --out " + (d / "set").string() +
                               " --classes 2 --images 4 --train-images 0 --size 32");
    EXPECT_EQ(r.status, 0) << r.out;
    const auto p = d / "check.yaml";
    std::ofstream(p) << "eval:\n  data:\n    layout: mvtec\n    root: " << (d / "set").string() << "\n";
    return p;
  }();
  return cfg;
}

}  // namespace

TEST(CliDataCheck, CleanSetExitsZeroAndCountsEveryClass) {
  const auto r = run_vcpclip("data check -c " + config().string() + " --section eval --no-progress");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("total          4          4          4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("OK: no problems found"), std::string::npos) << r.out;
}

TEST(CliDataCheck, BrokenSetExitsTwoAndNamesTheProblem) {
  const auto cfg = config();  // also writes the clean set
  const auto set = work_dir() / "broken";
  fs::remove_all(set);
  fs::copy(work_dir() / "set", set, fs::copy_options::recursive);
  std::string cls;  // the first class folder (names depend on the generator)
  for (const auto& e : fs::directory_iterator(set))
    if (e.is_directory() && (cls.empty() || e.path().filename().string() < cls)) cls = e.path().filename().string();
  ASSERT_FALSE(cls.empty());
  fs::remove_all(set / cls / "ground_truth");
  const auto r = run_vcpclip("data check -c " + config().string() +
                             " --section eval --quiet --set eval.data.root=" + set.string());
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("mask"), std::string::npos) << r.out;
}

TEST(CliDataCheck, MissingSectionIsAClearError) {
  const auto r = run_vcpclip("data check -c " + config().string() + " --section train");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("data check --section train needs a `train.data` section in " + config().string()),
            std::string::npos)
      << r.out;
}

TEST(CliDataCheck, UnknownKeyAnywhereInTheConfigIsAnError) {
  const auto r = run_vcpclip("data check -c " + config().string() + " --section eval --set runtime.thread=2");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("unknown config key 'runtime.thread'"), std::string::npos) << r.out;
}

TEST(CliDataCheck, SectionMustBeTrainOrEval) {
  const auto r = run_vcpclip("data check -c " + config().string() + " --section model");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("--section"), std::string::npos) << r.out;
}
