// bench_vision: CLIP vision-tower throughput (random weights) beside this machine's sgemm rate
// (the [vision] section of `vcpclip bench`; the measuring code lives in app/bench/bench.h).
//
//   bench_vision [--device cpu|cuda] [--iters N] [--threads N (0 = all cores)] [--quick]
//
// For each case (ViT-B-16 @ 224, batch 2; ViT-L-14-336 @ 518, batch 1) prints images/s, the
// tower's achieved GFLOP/s (matmul FLOPs counted analytically: patch embedding 2·G²·W·3p²,
// per block 24·L·W² for the projections and MLP + 4·L²·W for attention, L = G²+1) and the
// ratio to the at::mm GFLOP/s measured in the same run on square fp32 matrices.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "vcpclip/app/bench/bench.h"

namespace {

struct Case {
  const char* config;
  int64_t size, batch;
};

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cpu";
  int iters = 3;
  bool quick = false;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--device") && i + 1 < argc)
      device = argv[++i];
    else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc)
      iters = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_vision [--device cpu|cuda] [--iters N] [--threads N] [--quick]\n");
      return 2;
    }
  }
  const c10::Device dev(device);
  if (dev.is_cuda() && !torch::cuda::is_available()) {
    std::fprintf(stderr, "bench_vision: CUDA requested but not available\n");
    return 2;
  }
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  c10::GradMode::set_enabled(false);
  std::printf("device %s, %d intra-op threads\n", dev.str().c_str(), at::get_num_threads());

  const int64_t n = dev.is_cuda() ? 8192 : 2048;
  const double peak = vcpclip::app::sgemm_gflops(dev, n, dev.is_cuda() ? 10 : 3);
  std::printf("sgemm (at::mm %lldx%lld fp32): %.1f GFLOP/s\n\n", (long long)n, (long long)n, peak);

  std::vector<Case> cases = {{"ViT-B-16", 224, 2}, {"ViT-L-14-336", 518, 1}};
  if (quick) cases = {{"ViT-B-16", 224, 1}};
  std::printf("%-14s %5s %5s %10s %10s %10s %8s\n", "backbone", "size", "batch", "images/s", "GFLOP/img", "GFLOP/s",
              "of sgemm");
  for (const auto& c : cases) {
    const auto r = vcpclip::app::bench_vision_case(dev, c.config, c.size, c.batch, iters, peak);
    std::printf("%-14s %5lld %5lld %10.2f %10.1f %10.1f %7.0f%%\n", c.config, (long long)c.size, (long long)c.batch,
                r.images_per_second, r.gflop_per_image, r.gflops, 100.0 * r.fraction_of_sgemm);
    std::fflush(stdout);
  }
  return 0;
}
