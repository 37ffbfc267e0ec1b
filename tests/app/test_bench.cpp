// `vcpclip bench`: the shared building blocks (FLOP count, model configs, synthetic maps, python
// discovery) and the --quick command end to end through the binary (tables + JSON).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/run_binary.h"
#include "vcpclip/app/bench/bench.h"
#include "vcpclip/build_info.h"

namespace fs = std::filesystem;
using namespace vcpclip;

TEST(Bench, VisionFlopCountMatchesTheFormula) {
  model::ClipVisionConfig v;
  v.layers = 12;
  v.width = 768;
  v.patch_size = 16;
  // ViT-B/16 at 224: G = 14, L = 197.
  const double g = 14, w = 768, l = 197;
  const double expect = (2 * g * g * w * 3 * 16 * 16 + 12 * (24 * l * w * w + 4 * l * l * w) + 2 * w) / 1e9;
  EXPECT_NEAR(app::vision_gflop_per_image(v, 224), expect, 1e-9);
  EXPECT_NEAR(app::vision_gflop_per_image(v, 224), 34.9, 0.5);  // the usual ~35 GFLOP (2 x 17.5 GMAC)
}

TEST(Bench, FindsModelConfigsAndSyntheticMapsAreDeterministic) {
  EXPECT_TRUE(fs::exists(app::model_config_path("ViT-L-14-336")));
  eval::ClassAccumulator a("a"), b("b");
  app::fill_synthetic_maps(a, 4, 64, 7);
  app::fill_synthetic_maps(b, 4, 64, 7);
  ASSERT_EQ(a.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(0, std::memcmp(a.map(i), b.map(i), sizeof(float) * 64 * 64));
    EXPECT_EQ(a.label(i), b.label(i));
  }
  EXPECT_GT(app::peak_rss_mb(), 1.0);
}

TEST(Bench, PythonDiscoveryHonoursTheEnvironmentAndExplainsFailures) {
  const char* old = std::getenv("VCPCLIP_PYTHON");
  const std::string saved = old ? old : "";
  std::string why;
  // The environment comes first: /bin/true "imports" anything.
  setenv("VCPCLIP_PYTHON", "/bin/true", 1);
  auto py = app::find_python_with_torch(&why, {"/nonexistent/fallback"});
  ASSERT_TRUE(py.has_value()) << why;
  EXPECT_EQ(*py, "/bin/true");
  // None qualifies: each candidate is named with why it failed, and how to choose one.
  setenv("VCPCLIP_PYTHON", "/nonexistent/python3", 1);
  why.clear();
  py = app::find_python_with_torch(&why, {"/bin/false"});
  EXPECT_FALSE(py.has_value()) << *py;
  EXPECT_EQ(why,
            "no python3 with torch, numpy and scikit-learn (/nonexistent/python3: not found; /bin/false: cannot import "
            "torch/numpy/sklearn; set $VCPCLIP_PYTHON)");
  // A missing $VCPCLIP_PYTHON falls back to the default candidates: scripts/setup.sh installs
  // Debian's python3 with torch, numpy and scikit-learn.
  why.clear();
  py = app::find_python_with_torch(&why);
  ASSERT_TRUE(py.has_value()) << why;
  EXPECT_EQ(*py, "/usr/bin/python3");
  if (old)
    setenv("VCPCLIP_PYTHON", saved.c_str(), 1);
  else
    unsetenv("VCPCLIP_PYTHON");
}

TEST(Bench, QuickCommandPrintsEverySectionAndWritesJson) {
  const auto json = fs::temp_directory_path() / ("vcpclip_bench_" + std::to_string(::getpid()) + ".json");
  const std::string cmd = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip bench --quick --no-progress --threads 2 --json " +
                          json.string() + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) out.append(buf.data(), n);
  const int rc = pclose(pipe.release());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << out;
  for (const char* s : {"[vision]", "[predict]", "[metrics]", "[train]", "[data]", "preprocess_image 1024^2",
                        "workers=2", "tokenizer encode, cached", "peak RSS", "of sgemm"})
    EXPECT_NE(out.find(s), std::string::npos) << s << " missing in:\n" << out;
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  fs::remove(json);
  EXPECT_TRUE(j.at("machine").at("quick").get<bool>());
  EXPECT_EQ(j.at("machine").at("threads").get<int>(), 2);
  EXPECT_GT(j.at("vision").at("sgemm_gflops").get<double>(), 0.1);
  const auto& v = j.at("vision").at("cases").at(0);
  EXPECT_EQ(v.at("backbone"), "ViT-B-16");
  EXPECT_GT(v.at("images_per_second").get<double>(), 0);
  EXPECT_NEAR(v.at("gflops").get<double>(),
              v.at("gflop_per_image").get<double>() * v.at("images_per_second").get<double>(),
              1e-6 * v.at("gflops").get<double>());
  EXPECT_GT(j.at("predict").at("cases").at(0).at("images_per_second").get<double>(), 0);
  // --quick skips the Python predict run and the real-size rows.
  EXPECT_TRUE(j.at("predict").at("cases").at(0).at("reference_skipped").is_string());
  EXPECT_FALSE(j.contains("predict_real"));
  EXPECT_GT(j.at("metrics").at("seconds_exact").get<double>(), 0);
  // the Python metric column either ran or says why not
  EXPECT_TRUE(j.at("metrics").at("python_seconds").is_number() || j.at("metrics").at("python_skipped").is_string());
  EXPECT_GT(j.at("train").at("cases").at(0).at("seconds_per_step_median").get<double>(), 0);
  EXPECT_GT(j.at("peak_rss_mb").get<double>(), 10);
}

// `bench --only gpu` on a machine (or build) without CUDA: a non-zero exit and a message that says
// it needs CUDA and where the command is documented, before any section runs.
TEST(Bench, GpuSectionNeedsCudaAndSaysSo) {
  const auto r = vcpclip::testing::run_vcpclip("bench --only gpu --no-progress --no-python");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("bench --only gpu measures issue 31's GPU targets and needs CUDA, but the device is cpu: "),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("docs/benchmarks.md \"Next GPU machine\""), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("[vision]"), std::string::npos) << "no section may run first: " << r.out;
}

// `bench --only methods` at the tiny size: one row per method, each with the C++ side's time per
// image (t(N) - t(1)) / (N - 1) and its process's peak RSS; the Python column says why it is empty.
TEST(Bench, MethodsSectionHasARowPerMethodAtTheTinySize) {
  const auto json = fs::temp_directory_path() / ("vcpclip_bench_methods_" + std::to_string(::getpid()) + ".json");
  const auto r = vcpclip::testing::run_vcpclip(
      "bench --only methods --method-sizes tiny --repeats 1 --no-python --no-progress --threads 1 --json " +
      json.string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("[methods]"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("[vision]"), std::string::npos) << "only the methods section runs: " << r.out;
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  fs::remove(json);
  const auto& rows = j.at("methods").at("rows");
  ASSERT_EQ(rows.size(), 3u) << j.dump(2);
  std::vector<std::string> methods;
  for (const auto& row : rows) {
    methods.push_back(row.at("method"));
    EXPECT_EQ(row.at("size"), "tiny");
    EXPECT_EQ(row.at("image_size"), 64);
    EXPECT_EQ(row.at("repeats"), 1);
    const auto& t = row.at("vcpclip_seconds_per_image");
    EXPECT_GT(t.at("median").get<double>(), 0) << row.dump(2);
    EXPECT_GT(t.at("min").get<double>(), 0) << row.dump(2);
    EXPECT_GT(row.at("load_seconds").at("vcpclip").at("median").get<double>(), 0) << row.dump(2);
    // the child process holds at least LibTorch and the tiny model
    EXPECT_GT(row.at("peak_rss_mb").at("vcpclip").get<double>(), 10) << row.dump(2);
    EXPECT_TRUE(row.at("reference_seconds_per_image").is_null()) << row.dump(2);
    EXPECT_EQ(row.at("reference_skipped"), "--no-python") << row.dump(2);
  }
  EXPECT_EQ(methods, (std::vector<std::string>{"vcp_clip", "april_gan", "anomaly_clip"}));
}

// The methods section's child process checks its spec like a run config: every key is read, and
// fewer than 2 images cannot give (t(N) - t(1)) / (N - 1).
TEST(Bench, MethodChildRefusesABadSpec) {
  const auto dir = fs::temp_directory_path() / ("vcpclip_bench_child_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto spec = dir / "spec.json";
  const std::string backbone = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/vcp/tiny_vcp_clip.json";
  std::ofstream(spec) << R"({"model": {"method": "april_gan", "backbone": ")" << backbone
                      << R"(", "image_size": 64, "features_list": [2, 3, 4]}, "images": 1})";
  auto r = vcpclip::testing::run_vcpclip("bench --no-progress --method-child " + spec.string());
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("bench --method-child: 'images' must be >= 2 (t(N) - t(1)), found 1 in " + spec.string()),
            std::string::npos)
      << r.out;
  std::ofstream(spec) << R"({"model": {"method": "april_gan", "backbone": ")" << backbone
                      << R"(", "image_size": 64}, "images": 3, "batch": 2})";
  r = vcpclip::testing::run_vcpclip("bench --no-progress --method-child " + spec.string());
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("unknown config key 'batch' in " + spec.string() +
                       "; known keys: checkpoint, class_name, images, model"),
            std::string::npos)
      << r.out;
  fs::remove_all(dir);
}
