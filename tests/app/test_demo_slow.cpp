// The README's main job, as shipped: `vcpclip demo` with the built-in config through the binary,
// from a directory outside the source tree. Checks the outputs and what the demo promises on the
// held-out target classes (issue 11): mean pixel AUROC >= 85, every class above its untrained
// value, mean image AUROC >= 80 and AUPRO >= 60, and the files to open printed.
// (Slow: the full demo, about 2 minutes on 2 cores.)
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "vcpclip/build_info.h"

namespace fs = std::filesystem;

TEST(DemoSlow, BuiltInDemoTrainsAndBeatsTheUntrainedHead) {
  const auto dir = fs::temp_directory_path() / ("vcpclip_demo_slow_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string cmd =
      "cd " + dir.string() + " && " + std::string(VCPCLIP_BINARY_DIR) + "/vcpclip demo --no-progress --out run 2>&1";
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) out.append(buf.data(), n);
  const int rc = pclose(pipe.release());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << out;
  const auto run = dir / "run";
  for (const char* p :
       {"data/aux", "data/target", "model/demo.json", "model/demo_backbone.safetensors", "train/last.pth",
        "eval/metrics.json", "eval/metrics.md", "eval/imgs/index.json", "eval_untrained/metrics.json", "summary.json"})
    EXPECT_TRUE(fs::exists(run / p)) << p;
  std::ifstream in(run / "summary.json");
  const auto j = nlohmann::json::parse(in);
  const double trained = j.at("trained").at("pixel_auroc").get<double>();
  const double untrained = j.at("untrained").at("pixel_auroc").get<double>();
  std::printf("demo: %.0f s, pixel AUROC untrained %.4f -> trained %.4f\n", seconds, untrained, trained);
  EXPECT_GE(trained, 0.85) << out;
  EXPECT_GE(j.at("trained").at("image_auroc").get<double>(), 0.80) << out;
  EXPECT_GE(j.at("trained").at("pixel_aupro").get<double>(), 0.60) << out;
  std::ifstream tin(run / "eval/metrics.json"), uin(run / "eval_untrained/metrics.json");
  const auto t = nlohmann::json::parse(tin), u = nlohmann::json::parse(uin);
  ASSERT_EQ(t.at("classes").size(), 4u);
  for (size_t c = 0; c < 4; ++c) {
    const auto& tc = t["classes"][c];
    EXPECT_GE(tc.at("pixel_auroc").get<double>(), 0.75) << tc;
    EXPECT_GT(tc.at("pixel_auroc").get<double>(), u["classes"][c].at("pixel_auroc").get<double>()) << tc;
  }
  EXPECT_NE(out.find("Untrained head (baseline)"), std::string::npos);
  EXPECT_NE(out.find("Trained head"), std::string::npos);
  EXPECT_NE(out.find("Open run/report.html"), std::string::npos) << out;  // the one file to open
  fs::remove_all(dir);
}
