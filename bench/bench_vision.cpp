// bench_vision: CLIP vision-tower throughput (random weights) beside this machine's sgemm rate.
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

#include "vcpclip/build_info.h"
#include "vcpclip/model/clip_config.h"
#include "vcpclip/model/clip_model.h"

namespace {

using Clock = std::chrono::steady_clock;

void sync(const c10::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Best-of-`reps` at::mm rate on n×n fp32 matrices, GFLOP/s.
double sgemm_gflops(const c10::Device& dev, int64_t n, int reps) {
  auto a = at::randn({n, n}, at::TensorOptions().device(dev));
  auto b = at::randn({n, n}, at::TensorOptions().device(dev));
  auto c = at::mm(a, b);  // warm-up
  sync(dev);
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    at::mm_out(c, a, b);
    sync(dev);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * n * n * n / best / 1e9;
}

double vision_gflop_per_image(const vcpclip::model::ClipVisionConfig& v, int64_t size) {
  const double g = static_cast<double>(size / v.patch_size), w = static_cast<double>(v.width);
  const double l = g * g + 1, p = static_cast<double>(v.patch_size);
  const double patch = 2.0 * g * g * w * 3 * p * p;
  const double block = 24.0 * l * w * w + 4.0 * l * l * w;
  return (patch + v.layers * block + 2.0 * w * 1) / 1e9;  // (+ the tiny global projection, negligible)
}

/// configs/models/<name>.json under the working directory, else under the source tree.
std::string config_path(const std::string& name) {
  const std::string rel = "configs/models/" + name + ".json";
  if (std::filesystem::exists(rel)) return rel;
  return std::string(VCPCLIP_SOURCE_DIR) + "/" + rel;
}

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
    if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
    else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
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
  const double peak = sgemm_gflops(dev, n, dev.is_cuda() ? 10 : 3);
  std::printf("sgemm (at::mm %lldx%lld fp32): %.1f GFLOP/s\n\n", (long long)n, (long long)n, peak);

  std::vector<Case> cases = {{"ViT-B-16", 224, 2}, {"ViT-L-14-336", 518, 1}};
  if (quick) cases = {{"ViT-B-16", 224, 1}};
  std::printf("%-14s %5s %5s %10s %10s %10s %8s\n", "backbone", "size", "batch", "images/s", "GFLOP/img", "GFLOP/s",
              "of sgemm");
  for (const auto& c : cases) {
    auto cfg = vcpclip::model::ClipConfig::from_json_file(config_path(c.config));
    vcpclip::model::ClipVision tower(cfg.vision, cfg.embed_dim, cfg.activation);
    tower->eval();
    tower->to(dev);
    auto images = at::randn({c.batch, 3, c.size, c.size}, at::TensorOptions().device(dev));
    tower->forward(images, {}, true);  // warm-up (also builds the resized positional embedding)
    sync(dev);
    double best = 1e30;
    for (int i = 0; i < iters; ++i) {
      auto t0 = Clock::now();
      auto out = tower->forward(images, {}, true);
      sync(dev);
      best = std::min(best, seconds_since(t0));
    }
    const double per_img = vision_gflop_per_image(cfg.vision, c.size);
    const double rate = per_img * c.batch / best;
    std::printf("%-14s %5lld %5lld %10.2f %10.1f %10.1f %7.0f%%\n", c.config, (long long)c.size, (long long)c.batch,
                c.batch / best, per_img, rate, 100.0 * rate / peak);
    std::fflush(stdout);
  }
  return 0;
}
