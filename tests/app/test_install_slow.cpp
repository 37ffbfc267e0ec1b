// The CMake package: `cmake --install` into a temporary prefix, examples/inspect configured and
// built against that prefix alone (a copy outside the source tree, CMAKE_PREFIX_PATH = the
// prefix), then run on the fixture model with a calibration made by the INSTALLED binary; its
// decision and mask equal `predict --calibration`'s. The installed CMake files name neither the
// source nor the build tree.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "../model/vcp_fixture.h"
#include "support/run_binary.h"
#include "support/test_util.h"
#include "vcpclip/build_info.h"

namespace fs = std::filesystem;
namespace fx = vcp_fixture;
using vcpclip::testing::slurp;

using vcpclip::testing::run_command;

TEST(Install, ExampleBuildsAgainstTheInstalledPackageAndRuns) {
  const fs::path work = fs::temp_directory_path() / "vcpclip_install";
  fs::remove_all(work);
  const fs::path prefix = work / "prefix", src = work / "inspect", build = work / "inspect-build";
  auto r = run_command("cmake --install " + std::string(VCPCLIP_BINARY_DIR) + " --prefix " + prefix.string());
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* f : {"bin/vcpclip", "include/vcpclip/vcpclip.h", "include/vcpclip/eval/decision.h",
                        "lib/cmake/vcpclip/vcpclipConfig.cmake", "lib/cmake/vcpclip/vcpclipConfigVersion.cmake",
                        "lib/cmake/vcpclip/vcpclipTargets.cmake", "lib/libvcpclip_app.a",
                        "share/vcpclip/configs/models/ViT-L-14-336.json"})
    EXPECT_TRUE(fs::exists(prefix / f)) << f;
  for (const auto& e : fs::directory_iterator(prefix / "lib" / "cmake" / "vcpclip")) {
    const std::string text = slurp(e.path().string());
    EXPECT_EQ(text.find(VCPCLIP_SOURCE_DIR), std::string::npos) << e.path() << " names the source tree";
    EXPECT_EQ(text.find(VCPCLIP_BINARY_DIR), std::string::npos) << e.path() << " names the build tree";
  }

  // The consumer: a copy of examples/inspect, configured with the prefix only.
  fs::copy(std::string(VCPCLIP_SOURCE_DIR) + "/examples/inspect", src, fs::copy_options::recursive);
  r = run_command("cmake -S " + src.string() + " -B " + build.string() + " -DCMAKE_PREFIX_PATH=" + prefix.string());
  ASSERT_EQ(r.status, 0) << r.out;
  r = run_command("cmake --build " + build.string() + " -j2");
  ASSERT_EQ(r.status, 0) << r.out;

  // A calibration of the fixture model with the installed binary on a small synthetic set.
  const std::string bin = (prefix / "bin" / "vcpclip").string();
  r = run_command(bin + " synth --layout mvtec --role target --out " + (work / "synth").string() +
                  " --classes 1 --images 8 --train-images 0 --size 64");
  ASSERT_EQ(r.status, 0) << r.out;
  const fs::path installed_vocab = prefix / "share/vcpclip/assets/bpe_simple_vocab_16e6.txt.gz";
  const std::string vocab = fs::exists(installed_vocab) ? installed_vocab.string() : fx::vocab_path();
  const fs::path cfg = work / "tiny.yaml";
  std::ofstream(cfg) << "runtime:\n  threads: 1\nmodel:\n  backbone: " << fx::path("tiny_vcp_clip.json")
                     << "\n  weights: " << fx::path("tiny_vcp_clip.pt") << "\n  vocab: " << vocab
                     << "\n  image_size: 64\n  features_list: [2, 3, 4]\n"
                     << "eval:\n  data:\n    layout: mvtec\n    root: " << (work / "synth").string() << "\n";
  const std::string ckpt = fx::path("tiny_vcp.pth");
  r = run_command(bin + " calibrate --no-progress -c " + cfg.string() + " -k " + ckpt + " -o " +
                  (work / "cal").string());
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string cal = (work / "cal" / "calibration.json").string();

  // inspect on an image of another size than S; the same decision and mask as predict --calibration.
  const std::string image = fx::path("image_2.png");
  r = run_command((build / "inspect").string() + " " + cfg.string() + " " + ckpt + " " + cal + " " + image + " " +
                  (work / "inspect_mask.png").string());
  ASSERT_TRUE(r.status == 0 || r.status == 1) << r.out;
  const std::string decision = r.status == 1 ? "ng" : "ok";
  EXPECT_EQ(r.out.rfind(decision + " score ", 0), 0u) << r.out;
  r = run_command(bin + " predict -c " + cfg.string() + " -k " + ckpt + " -i " + image + " -o " +
                  (work / "pred").string() + " --calibration " + cal);
  ASSERT_EQ(r.status, 0) << r.out;
  std::ifstream in(work / "pred" / "scores.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("images").at(0).at("decision").get<std::string>(), decision);
  const cv::Mat a = cv::imread((work / "inspect_mask.png").string(), cv::IMREAD_UNCHANGED);
  const cv::Mat b = cv::imread((work / "pred" / "image_2_mask.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(a.size(), cv::Size(70, 90));
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(cv::countNonZero(a != b), 0);
  fs::remove_all(work);
}
