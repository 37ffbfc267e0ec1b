// runtime.precision auto: the start-up GEMM probe and the choice (model/precision_probe.h).
#include "vcpclip/model/precision_probe.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <limits>

#include "vcpclip/common/cpu_features.h"
#include "vcpclip/common/error.h"
#include "vcpclip/model/method.h"

namespace vcpclip::model {

namespace {

constexpr double kRoundTarget = 0.003;  ///< the round grows until it takes this long (s)
constexpr double kProbeBudget = 0.060;  ///< repetitions stop before the probe passes this (s)
constexpr int kMinRounds = 3;           ///< timed rounds of each precision at the final size, at least

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// The operands of one round in one dtype: per shape, the first `cols` of its N outputs (all of
/// them once cols ≥ N) and `rows` input rows. Constant values: timing does not depend on them, and
/// a fill is far cheaper than random numbers (ViT-L's block holds 12.6 M weights).
struct ProbeSet {
  std::vector<at::Tensor> weights, inputs;
  void resize(const std::vector<GemmShape>& shapes, int64_t rows, int64_t cols, c10::ScalarType dtype,
              const c10::Device& device) {
    const auto o = at::TensorOptions().dtype(dtype).device(device);
    weights.clear(), inputs.clear();
    for (const auto& sh : shapes) {
      weights.push_back(at::full({std::min(sh.n, cols), sh.k}, 0.01, o));
      inputs.push_back(at::full({rows, sh.k}, 0.5, o));
    }
  }
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Seconds for one round: every shape once. On the CPU the calling thread's CPU time (the probe
/// runs on one thread, so the whole product is computed there and a preempted round on a loaded
/// machine costs nothing extra); on CUDA wall-clock time, synchronised.
double round_seconds(const ProbeSet& s, const std::function<void()>& sync) {
  if (sync) sync();
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = thread_cpu_seconds();
  for (size_t i = 0; i < s.weights.size(); ++i) at::linear(s.inputs[i], s.weights[i]);
  if (sync) {
    sync();
    return since(t0);
  }
  return thread_cpu_seconds() - c0;
}

/// One intra-op thread for the lifetime of the object (then the previous count again).
struct OneThread {
  const int saved = at::get_num_threads();
  OneThread() { at::set_num_threads(1); }
  ~OneThread() { at::set_num_threads(saved); }
};

}  // namespace

Precision choose_precision(const ProbeRates& r) {
  const bool valid =
      std::isfinite(r.fp32_gflops) && std::isfinite(r.bf16_gflops) && r.fp32_gflops > 0 && r.bf16_gflops > 0;
  return valid && r.bf16_instructions && r.bf16_gflops >= kMinBf16Speedup * r.fp32_gflops ? Precision::kBf16
                                                                                          : Precision::kFp32;
}

std::vector<GemmShape> vision_block_shapes(const ClipVisionConfig& v) {
  const int64_t w = v.width;
  return {{w, 3 * w}, {w, w}, {w, 4 * w}, {4 * w, w}};
}

ProbeRates run_gemm_probe(const std::vector<GemmShape>& shapes, int64_t max_rows, const c10::Device& device) {
  VCP_CHECK(!shapes.empty() && max_rows >= 1, "GEMM probe: expected shapes and at least one row, found ", shapes.size(),
            " shape(s) and ", max_rows, " row(s)");
  const auto t0 = std::chrono::steady_clock::now();
  const auto sync = device_sync(device);
  c10::NoGradGuard no_grad;
  std::optional<OneThread> one_thread;  // CPU: both precisions on one thread (round_seconds)
  if (!device.is_cuda()) one_thread.emplace();
  int64_t max_n = 0;
  for (const auto& s : shapes) max_n = std::max(max_n, s.n);
  // The round grows ×4 from 1 row and 16 outputs per shape: first the outputs up to every shape's
  // N, then the rows up to max_rows, until either precision takes kRoundTarget for it. One round
  // therefore stays below ~4 · kRoundTarget however slow a precision is (bf16 emulated without the
  // instructions runs at ~1/40 of fp32's rate).
  int64_t m = 1, cols = std::min<int64_t>(16, max_n);
  ProbeSet f32, b16;
  f32.resize(shapes, m, cols, at::kFloat, device), b16.resize(shapes, m, cols, at::kBFloat16, device);
  round_seconds(f32, sync), round_seconds(b16, sync);  // warm-up: thread pools, oneDNN primitives
  double best32 = 0, best16 = 0;
  while (true) {
    best32 = round_seconds(f32, sync), best16 = round_seconds(b16, sync);
    if (std::max(best32, best16) >= kRoundTarget || (cols == max_n && m == max_rows)) break;
    if (cols < max_n)
      cols = std::min(max_n, 4 * cols);
    else
      m = std::min(max_rows, 4 * m);
    f32.resize(shapes, m, cols, at::kFloat, device), b16.resize(shapes, m, cols, at::kBFloat16, device);
  }
  // At least three rounds of each at the final size: one preempted round (a loaded machine, a
  // thread pool starting) must not decide.
  for (int round = 1; round < kMinRounds || since(t0) + best32 + best16 < kProbeBudget; ++round) {
    best32 = std::min(best32, round_seconds(f32, sync));
    best16 = std::min(best16, round_seconds(b16, sync));
  }
  double flops = 0;
  for (const auto& s : shapes) flops += 2.0 * static_cast<double>(m) * static_cast<double>(s.k * std::min(s.n, cols));
  const double tiny = std::numeric_limits<double>::min();
  ProbeRates r;
  r.shapes = shapes;
  r.rows = m;
  r.columns = std::min(cols, max_n);
  r.fp32_gflops = flops / std::max(best32, tiny) / 1e9;
  r.bf16_gflops = flops / std::max(best16, tiny) / 1e9;
  r.seconds = since(t0);
  if (!device.is_cuda()) {
    const CpuBf16 cpu = cpu_bf16();
    r.bf16_instructions = cpu.any();
    r.cpu_features = cpu.describe();
  }
  return r;
}

nlohmann::json PrecisionChoice::to_json() const {
  nlohmann::json j = {{"requested", to_string(requested)}, {"used", to_string(used)}};
  if (probe) {
    nlohmann::json shapes = nlohmann::json::array();
    for (const auto& s : probe->shapes) shapes.push_back({s.k, s.n});
    j["probe"] = {{"fp32_gflops", probe->fp32_gflops},
                  {"bf16_gflops", probe->bf16_gflops},
                  {"bf16_speedup", probe->bf16_gflops / probe->fp32_gflops},
                  {"min_bf16_speedup", kMinBf16Speedup},
                  {"rows", probe->rows},
                  {"columns", probe->columns},
                  {"shapes", shapes},
                  {"seconds", probe->seconds},
                  {"bf16_instructions", probe->bf16_instructions},
                  {"cpu_features", probe->cpu_features}};
  }
  return j;
}

std::string PrecisionChoice::describe() const {
  if (!probe) return std::string("precision ") + to_string(used);
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "precision auto -> %s: GEMM probe fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s (%.2fx; bf16 needs >= %.1fx%s), "
                "%zu vision-block shapes at M = %lld rows x C = %lld outputs, %.0f ms",
                to_string(used), probe->fp32_gflops, probe->bf16_gflops, probe->bf16_gflops / probe->fp32_gflops,
                kMinBf16Speedup, probe->cpu_features.empty() ? "" : " and AVX512-BF16 or AMX-BF16",
                probe->shapes.size(), static_cast<long long>(probe->rows), static_cast<long long>(probe->columns),
                1e3 * probe->seconds);
  std::string out = buf;
  if (!probe->cpu_features.empty()) out += "; CPU: " + probe->cpu_features;
  return out;
}

PrecisionChoice set_model_precision(MethodImpl& model, Precision requested) {
  PrecisionChoice c;
  c.requested = c.used = requested;
  if (requested == Precision::kAuto) {
    const auto& v = model.clip->config().vision;
    const int64_t grid = model.input_size() / v.patch_size;
    const auto device = model.device();
    c.probe = run_gemm_probe(vision_block_shapes(v), grid * grid + 1, device);
    c.used = choose_precision(*c.probe);
    spdlog::info("{}", c.describe());
  }
  model.set_precision(c.used);
  return c;
}

}  // namespace vcpclip::model
