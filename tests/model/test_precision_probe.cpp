// runtime.precision auto (model/precision_probe.h): the pure decision from injected rates (bf16 only
// at ≥ 1.3× fp32's rate), the probe's shapes and measurements on this machine, the choice applied
// to the golden fixture's model, and the log line. No wall-clock thresholds: the probe's own rates
// decide, and the tests check that the decision follows them.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>

#include "model/vcp_fixture.h"
#include "support/test_util.h"
#include "vcpclip/common/cpu_features.h"
#include "vcpclip/model/precision_probe.h"
#include "vcpclip/model/vcp_clip.h"

using vcpclip::testing::error_of;
using namespace vcpclip;
namespace fx = vcp_fixture;

namespace {

model::ProbeRates rates(double fp32, double bf16) {
  model::ProbeRates r;
  r.fp32_gflops = fp32, r.bf16_gflops = bf16;
  return r;
}

}  // namespace

TEST(PrecisionProbe, Bf16OnlyWhenAtLeast1Point3TimesFaster) {
  EXPECT_EQ(model::choose_precision(rates(100, 130)), Precision::kBf16);  // exactly 1.3x
  EXPECT_EQ(model::choose_precision(rates(100, 129.9)), Precision::kFp32);
  EXPECT_EQ(model::choose_precision(rates(405, 1100)), Precision::kBf16);  // an AVX512-BF16 CPU
  EXPECT_EQ(model::choose_precision(rates(120, 4)), Precision::kFp32);     // bf16 emulated without the instructions
  EXPECT_EQ(model::choose_precision(rates(100, 100)), Precision::kFp32);
  // Unusable measurements keep fp32.
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(model::choose_precision(rates(0, 50)), Precision::kFp32);
  EXPECT_EQ(model::choose_precision(rates(nan, 50)), Precision::kFp32);
  EXPECT_EQ(model::choose_precision(rates(100, inf)), Precision::kFp32);
  EXPECT_EQ(model::choose_precision(rates(100, 0)), Precision::kFp32);
}

TEST(PrecisionProbe, ShapesAreTheVisionBlocksLinears) {
  model::ClipVisionConfig v;
  v.width = 768;
  const auto s = model::vision_block_shapes(v);
  ASSERT_EQ(s.size(), 4u);
  const std::vector<std::pair<int64_t, int64_t>> want = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(std::make_pair(s[i].k, s[i].n), want[i]) << i;
}

TEST(PrecisionProbe, MeasuresBothPrecisionsOnThisMachine) {
  const std::vector<model::GemmShape> shapes = {{64, 192}, {64, 64}, {64, 256}, {256, 64}};
  const auto r = model::run_gemm_probe(shapes, 17, c10::Device(c10::kCPU));
  EXPECT_TRUE(std::isfinite(r.fp32_gflops) && r.fp32_gflops > 0) << r.fp32_gflops;
  EXPECT_TRUE(std::isfinite(r.bf16_gflops) && r.bf16_gflops > 0) << r.bf16_gflops;
  EXPECT_GE(r.rows, 1);
  EXPECT_LE(r.rows, 17);  // capped at max_rows
  EXPECT_GE(r.columns, 16);
  EXPECT_LE(r.columns, 256);  // capped at the largest N
  EXPECT_EQ(r.shapes.size(), 4u);
  EXPECT_GT(r.seconds, 0);
  std::printf("GEMM probe (tiny shapes): fp32 %.2f GFLOP/s, bf16 %.2f GFLOP/s at M = %lld, %.1f ms -> %s\n",
              r.fp32_gflops, r.bf16_gflops, static_cast<long long>(r.rows), 1e3 * r.seconds,
              to_string(model::choose_precision(r)));
  EXPECT_EQ(error_of([&] { model::run_gemm_probe(shapes, 0, c10::Device(c10::kCPU)); }),
            "GEMM probe: expected shapes and at least one row, found 4 shape(s) and 0 row(s)");
}

TEST(PrecisionProbe, AutoSetsTheModelToTheProbesChoice) {
  auto m = model::build_vcp_clip(fx::options(), c10::Device(c10::kCPU));
  m->eval();
  const auto c = model::set_model_precision(*m, Precision::kAuto);
  ASSERT_TRUE(c.probe.has_value());
  EXPECT_EQ(c.requested, Precision::kAuto);
  EXPECT_EQ(c.used, model::choose_precision(*c.probe));
  EXPECT_EQ(m->precision(), c.used);
  // The tiny backbone's block shapes; M capped at the tokens of one image: (64 / patch)² + 1.
  const auto& v = m->clip->config().vision;
  EXPECT_EQ(c.probe->shapes.size(), 4u);
  EXPECT_EQ(c.probe->shapes[0].k, v.width);
  EXPECT_EQ(c.probe->shapes[0].n, 3 * v.width);
  const int64_t grid = m->input_size() / v.patch_size;
  EXPECT_LE(c.probe->rows, grid * grid + 1);
  EXPECT_LE(c.probe->columns, 4 * v.width);
  const auto j = c.to_json();
  EXPECT_EQ(j.at("requested"), "auto");
  EXPECT_EQ(j.at("used"), to_string(c.used));
  EXPECT_EQ(j.at("probe").at("fp32_gflops").get<double>(), c.probe->fp32_gflops);
  EXPECT_EQ(j.at("probe").at("bf16_gflops").get<double>(), c.probe->bf16_gflops);
  // An explicit precision is used as it is, without a probe.
  const auto b = model::set_model_precision(*m, Precision::kBf16);
  EXPECT_FALSE(b.probe.has_value());
  EXPECT_EQ(b.used, Precision::kBf16);
  EXPECT_EQ(m->precision(), Precision::kBf16);
  EXPECT_FALSE(b.to_json().contains("probe"));
  EXPECT_EQ(b.describe(), "precision bf16");
}

TEST(PrecisionProbe, LogLineNamesTheChoiceAndBothRates) {
  model::PrecisionChoice c;
  c.requested = Precision::kAuto;
  c.used = Precision::kFp32;
  c.probe = rates(120.5, 4.1);
  c.probe->rows = 16;
  c.probe->columns = 3072;
  c.probe->shapes = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
  c.probe->seconds = 0.035;
  EXPECT_EQ(c.describe(),
            "precision auto -> fp32: GEMM probe fp32 120.5 GFLOP/s, bf16 4.1 GFLOP/s (0.03x; bf16 needs >= 1.3x), "
            "4 vision-block shapes at M = 16 rows x C = 3072 outputs, 35 ms");
  EXPECT_NEAR(c.to_json().at("probe").at("bf16_speedup").get<double>(), 4.1 / 120.5, 1e-12);
}

// auto takes bf16 only where the device has bf16 matrix instructions: a CPU without AVX512-BF16
// and AMX-BF16 keeps fp32 whatever the rates say (its bf16 is emulated).
TEST(PrecisionProbe, Bf16NeedsTheInstructionsOnTheCpu) {
  auto r = rates(100, 1000);
  r.bf16_instructions = false;
  r.cpu_features = "AVX512-BF16 no, AMX-BF16 no";
  EXPECT_EQ(model::choose_precision(r), Precision::kFp32);
  r.bf16_instructions = true;
  EXPECT_EQ(model::choose_precision(r), Precision::kBf16);
  model::PrecisionChoice c;
  c.requested = Precision::kAuto, c.used = Precision::kFp32;
  r.bf16_instructions = false;
  r.rows = 16, r.columns = 3072, r.seconds = 0.035;
  r.shapes = {{64, 192}, {64, 64}};
  c.probe = r;
  EXPECT_EQ(c.to_json().at("probe").at("bf16_instructions"), false);
  EXPECT_NE(c.describe().find("; CPU: AVX512-BF16 no, AMX-BF16 no"), std::string::npos) << c.describe();
}

// The detected instructions agree with the kernel's view of the CPU (/proc/cpuinfo flags), and the
// probe on the CPU records them.
TEST(PrecisionProbe, CpuBf16DetectionMatchesProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  if (!in) GTEST_SKIP() << "no /proc/cpuinfo";
  std::string line, flags;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      flags = " " + line.substr(line.find(':') + 1) + " ";
      break;
    }
  if (flags.empty()) GTEST_SKIP() << "no flags line in /proc/cpuinfo (not x86)";
  const auto cpu = cpu_bf16();
  EXPECT_EQ(cpu.avx512_bf16, flags.find(" avx512_bf16 ") != std::string::npos) << flags;
  EXPECT_EQ(cpu.amx_bf16, flags.find(" amx_bf16 ") != std::string::npos) << flags;
  const auto probe = model::run_gemm_probe({{64, 64}}, 8, c10::Device(c10::kCPU));
  EXPECT_EQ(probe.bf16_instructions, cpu.any());
  EXPECT_EQ(probe.cpu_features, cpu.describe());
  std::printf("this CPU: %s\n", cpu.describe().c_str());
}
