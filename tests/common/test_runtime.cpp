// Runtime options: threads per process under torchrun's LOCAL_WORLD_SIZE, loader workers, the
// precision names and what a CPU can run.
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "support/test_util.h"
#include "vcpclip/common/runtime.h"

using vcpclip::testing::error_of;
using namespace vcpclip;

namespace {

/// Sets LOCAL_WORLD_SIZE for the scope.
struct LocalWorld {
  explicit LocalWorld(const char* v) { v ? setenv("LOCAL_WORLD_SIZE", v, 1) : unsetenv("LOCAL_WORLD_SIZE"); }
  ~LocalWorld() { unsetenv("LOCAL_WORLD_SIZE"); }
};

int cores() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

}  // namespace

TEST(Runtime, ThreadsAreCoresPerLocalProcess) {
  {
    LocalWorld w(nullptr);
    EXPECT_EQ(local_world_size(), 1);
    EXPECT_EQ(threads_per_process(0), cores());
    EXPECT_EQ(threads_per_process(3), 3);  // explicit wins
    EXPECT_EQ(loader_workers(4), 4);       // a single process keeps what it asked for
  }
  {
    LocalWorld w("2");
    EXPECT_EQ(local_world_size(), 2);
    EXPECT_EQ(threads_per_process(0), std::max(1, cores() / 2));
    EXPECT_EQ(loader_workers(64), std::max(1, cores() / 2));
    EXPECT_EQ(loader_workers(1), 1);
    EXPECT_EQ(setup_threads(0), std::max(1, cores() / 2));
  }
  {
    LocalWorld w(std::to_string(4 * cores()).c_str());  // more processes than cores: still one thread
    EXPECT_EQ(threads_per_process(0), 1);
  }
  LocalWorld w("x");
  EXPECT_EQ(error_of([] { local_world_size(); }),
            "LOCAL_WORLD_SIZE='x' is not a number (torchrun sets it to the processes per machine)");
  EXPECT_EQ(error_of([] { threads_per_process(-1); }),
            "runtime.threads must be >= 0 (0 = cores / local world size), found -1");
}

TEST(Runtime, PrecisionNamesAndDevices) {
  for (auto p : {Precision::kFp32, Precision::kBf16, Precision::kFp16, Precision::kAutocast, Precision::kAuto})
    EXPECT_EQ(parse_precision(to_string(p), "k"), p);
  EXPECT_EQ(error_of([] { parse_precision("half", "config key 'runtime.precision' in c.yaml"); }),
            "config key 'runtime.precision' in c.yaml: expected fp32, bf16, fp16, autocast or auto, found 'half'");
  EXPECT_EQ(error_of([] { block_dtype(Precision::kAuto); }),
            "runtime.precision auto must be resolved (model/precision_probe.h) before the model is set to a precision");
  EXPECT_EQ(block_dtype(Precision::kBf16), c10::kBFloat16);
  EXPECT_EQ(block_dtype(Precision::kFp16), c10::kHalf);
  EXPECT_EQ(block_dtype(Precision::kAutocast), c10::kFloat);  // autocast keeps fp32 weights
  const c10::Device cpu(c10::kCPU);
  EXPECT_NO_THROW(check_precision(Precision::kBf16, cpu));
  EXPECT_EQ(error_of([&] { check_precision(Precision::kFp16, cpu); }),
            "runtime.precision fp16 needs a CUDA device: LibTorch's CPU kernels have no fp16 matrix multiply "
            "(\"addmm_impl_cpu_\" not implemented for 'Half'); use bf16 on the CPU");
  EXPECT_EQ(error_of([&] { check_precision(Precision::kAutocast, cpu); }),
            "runtime.precision autocast is CUDA autocast (fp16 over fp32 weights, the reference's GPU setting) and "
            "needs a CUDA device; use bf16 or fp32 on the CPU");
}

TEST(Runtime, AutoPrecisionRefusedOutsidePredict) {
  for (auto p : {Precision::kFp32, Precision::kBf16}) EXPECT_NO_THROW(refuse_auto_precision(p, "eval"));
  EXPECT_EQ(error_of([] { refuse_auto_precision(Precision::kAuto, "calibrate"); }),
            "calibrate: runtime.precision auto is for predict and the Inferencer; calibrate needs an explicit "
            "precision (fp32, the default, or bf16/fp16/autocast) so that its results mean what the config says");
}
