// `vcpclip bench --only gpu --device cuda` (issue 31; docs/benchmarks.md "Next GPU machine"): the
// GPU targets at ViT-L-14-336 @ 518 with random weights, in one run, each part time-boxed by
// --gpu-budget:
//   attention  the kernel compiled in (model::attention_kernel) and, with LibTorch >= 2, the
//              kernel SDPA picks for fp32, fp16 and bf16 at ViT-L's shape
//   peak       a large fp16 GEMM's TFLOP/s and the dense fp16 peak given by --gpu-peak-tflops
//   tower      vision tower images/s at batch 32 in fp32, TF32, fp16, bf16 and autocast, and at
//              batch 8 in autocast: TFLOP/s (analytic matmul FLOPs) and the share of the peak
//   train      train::train_step at batch 32, fp32 and autocast (peak memory: bench_cuda_check)
//   predict    run_predict at batch 8 in autocast over 512 random 518² PNGs (load excluded) vs
//   + serve    the tower's batch-8 autocast rate; `vcpclip serve` with 8 clients vs that predict
//   protocol   the synthetic VisA-sized and MVTec-sized sets (app/bench/protocol_sets.h), then
//              `vcpclip train` on the first (batch 32, autocast, at least one epoch, as many as
//              the budget allows: time per epoch, loader waits) and `vcpclip eval` on the second
//              (wall time, images/s, waits for decoded images)
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "sections.h"
#include "vcpclip/app/bench/protocol_sets.h"
#include "vcpclip/app/config/run_util.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/common/runtime.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/train/trainer.h"

namespace fs = std::filesystem;

namespace vcpclip::app::bench_detail {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kBackbone = "ViT-L-14-336";
constexpr int64_t kSize = 518;

/// Seconds left of the section's budget (a large number without one).
struct Budget {
  Clock::time_point start = Clock::now();
  double seconds = 0;
  double left() const { return seconds > 0 ? seconds - seconds_since(start) : 1e9; }
  /// False (and a note) when less than `need` seconds are left for `what`.
  bool allows(BenchContext& ctx, double need, const std::string& what) const {
    if (left() >= need) return true;
    ctx.note("gpu: skipped " + what + ": " + fmt("%.0f", left()) + " s of --gpu-budget left, it needs ~" +
             fmt("%.0f", need) + " s");
    return false;
  }
};

model::ModelOptions vitl_options() {
  model::ModelOptions o;
  o.backbone = model_config_path(kBackbone);
  o.input_size = kSize;
  o.features_list = {6, 12, 18, 24};  // the reference's layers for ViT-L
  return o;
}

std::string sdpa_kernels(const c10::Device& dev) {
#if TORCH_VERSION_MAJOR >= 2
  // at::_fused_sdp_choice returns at::SDPBackend: -1 error, 0 math, 1 flash, 2 memory-efficient,
  // 3 cuDNN (4: oneDNN or "overrideable", by version). The 6-argument form exists in every 2.x.
  static const char* const names[] = {"math", "flash attention", "memory-efficient", "cuDNN attention"};
  std::string out;
  for (auto [label, dtype] : {std::pair<const char*, at::ScalarType>{"fp32", at::kFloat},
                              {"fp16/autocast", at::kHalf},
                              {"bf16", at::kBFloat16}}) {
    auto q = at::randn({2, 16, 1370, 64}, at::TensorOptions().device(dev).dtype(dtype));
    const int64_t c = at::_fused_sdp_choice(q, q, q, {}, /*dropout_p=*/0.0, /*is_causal=*/false);
    out += std::string(out.empty() ? "" : ", ") + label + " -> " +
           (c >= 0 && c < 4 ? names[c] : ("backend " + std::to_string(c)).c_str());
  }
  return out;
#else
  (void)dev;
  return "n/a (LibTorch < 2.0: no scaled_dot_product_attention)";
#endif
}

/// Best-of-`reps` fp16 matmul of n×n on `dev` in TFLOP/s (the reachable dense rate).
double fp16_gemm_tflops(const c10::Device& dev, int64_t n, int reps) {
  auto o = at::TensorOptions().device(dev).dtype(at::kHalf);
  auto a = at::randn({n, n}, o), b = at::randn({n, n}, o);
  auto c = at::mm(a, b);
  sync(dev);
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    at::mm_out(c, a, b);
    sync(dev);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * n * n * n / best / 1e12;
}

struct TowerMode {
  const char* name;
  Precision precision;
  bool tf32;
  int64_t batch;
};

/// The tower's images/s per mode (best and median of `iters` after a warm-up).
nlohmann::json tower_rows(BenchContext& ctx, model::VcpClip& m, double peak_tflops, const Budget& budget) {
  const std::vector<TowerMode> modes = {
      {"fp32", Precision::kFp32, false, 32},         {"tf32", Precision::kFp32, true, 32},
      {"fp16", Precision::kFp16, false, 32},         {"bf16", Precision::kBf16, false, 32},
      {"autocast", Precision::kAutocast, false, 32}, {"autocast", Precision::kAutocast, false, 8}};
  const double gflop = vision_gflop_per_image(m->clip->config().vision, kSize);
  nlohmann::json rows = nlohmann::json::array();
  char line[240];
  for (const auto& mode : modes) {
    if (!budget.allows(ctx, 20, std::string("tower ") + mode.name)) break;
    at::globalContext().setAllowTF32CuBLAS(mode.tf32);
    m->set_precision(mode.precision);
    auto images = at::randn({mode.batch, 3, kSize, kSize}, at::TensorOptions().device(ctx.device));
    { auto warm = m->encode_image(images); }
    sync(ctx.device);
    std::vector<double> t;
    for (int i = 0; i < 5 && (i < 3 || budget.left() > 30); ++i) {
      const auto t0 = Clock::now();
      auto out = m->encode_image(images);
      sync(ctx.device);
      t.push_back(seconds_since(t0));
    }
    std::sort(t.begin(), t.end());
    const double ips = mode.batch / t.front(), tflops = gflop * ips / 1e3;
    std::snprintf(line, sizeof line, "  tower %-9s batch %2lld %8.1f img/s (median %.1f) %7.1f TFLOP/s %s\n", mode.name,
                  static_cast<long long>(mode.batch), ips, mode.batch / t[t.size() / 2], tflops,
                  peak_tflops > 0 ? fmt("= %.1f %% of the dense fp16 peak", 100 * tflops / peak_tflops).c_str() : "");
    ctx.out << line << std::flush;
    rows.push_back({{"mode", mode.name},
                    {"batch", mode.batch},
                    {"images_per_second", ips},
                    {"images_per_second_median", mode.batch / t[t.size() / 2]},
                    {"tflops", tflops},
                    {"fraction_of_dense_fp16_peak", peak_tflops > 0 ? nlohmann::json(tflops / peak_tflops) : nullptr}});
  }
  at::globalContext().setAllowTF32CuBLAS(false);
  m->set_precision(Precision::kFp32);
  return rows;
}

/// train::train_step at batch 32 in fp32 and autocast: best and median of 3 after one warm-up.
nlohmann::json train_rows(BenchContext& ctx, model::VcpClip& m, const Budget& budget, double* autocast_step) {
  nlohmann::json rows = nlohmann::json::array();
  for (const Precision p : {Precision::kAutocast, Precision::kFp32}) {
    if (!budget.allows(ctx, 30, std::string("train step ") + to_string(p))) break;
    m->set_precision(p);
    m->train();
    train::TrainOptions to;
    auto opt = train::make_optimizer(*m->head, to);
    auto images = at::randn({32, 3, kSize, kSize}, at::TensorOptions().device(ctx.device));
    auto masks = (at::rand({32, kSize, kSize}, at::TensorOptions().device(ctx.device)) > 0.9).to(at::kFloat);
    train::train_step(*m, *opt, images, masks, 1);
    sync(ctx.device);
    std::vector<double> t;
    for (int i = 0; i < 3; ++i) {
      const auto t0 = Clock::now();
      train::train_step(*m, *opt, images, masks, i + 2);
      sync(ctx.device);
      t.push_back(seconds_since(t0));
    }
    std::sort(t.begin(), t.end());
    if (p == Precision::kAutocast) *autocast_step = t.front();
    ctx.out << "  train step batch 32 " << to_string(p) << ": best " << fmt("%.3f", t.front()) << " s, median "
            << fmt("%.3f", t[1]) << " s (" << fmt("%.1f", 32 / t.front()) << " img/s)\n"
            << std::flush;
    rows.push_back({{"precision", to_string(p)}, {"best_seconds", t.front()}, {"median_seconds", t[1]}});
    for (auto& prm : m->head->parameters()) prm.mutable_grad() = at::Tensor();
  }
  m->set_precision(Precision::kFp32);
  m->eval();
  return rows;
}

/// `n` random-texture 518² PNGs (the same files every run), written on all cores.
std::vector<std::string> write_pngs(const fs::path& dir, int n) {
  fs::create_directories(dir);
  std::vector<std::string> paths(static_cast<size_t>(n));
  std::vector<std::thread> pool;
  const int threads = std::max(1u, std::thread::hardware_concurrency());
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = t; i < n; i += threads) {
        std::mt19937 rng(static_cast<uint32_t>(7 + i));
        cv::Mat m(kSize, kSize, CV_8UC3);
        cv::randu(m, cv::Scalar::all(0), cv::Scalar::all(255));
        cv::GaussianBlur(m, m, cv::Size(9, 9), 3);
        paths[i] = (dir / ("img_" + std::to_string(i) + ".png")).string();
        cv::imwrite(paths[i], m);
      }
    });
  for (auto& t : pool) t.join();
  return paths;
}

/// The run config shared by predict, serve, train and eval (random ViT-L, CUDA, autocast).
std::string write_config(const fs::path& dir, const c10::Device& dev, const std::string& extra) {
  const auto path = dir / "vitl.yaml";
  std::ofstream f(path);
  f << "runtime: {device: " << dev.str() << ", precision: autocast, threads: 0}\n"
    << "model: {backbone: " << model_config_path(kBackbone) << ", image_size: " << kSize
    << ", features_list: [6, 12, 18, 24]}\n"
    << "predict: {batch_size: 8, heatmap: false}\n"
    << "serve: {port: 0, max_batch: 8, max_wait_ms: 5}\n"
    << extra;
  return path.string();
}

nlohmann::json predict_and_serve(BenchContext& ctx, model::VcpClip& m, const nlohmann::json& tower,
                                 const Budget& budget) {
  const fs::path dir = ctx.work / "gpu_predict";
  fs::create_directories(dir);
  const std::string config = write_config(dir, ctx.device, "");
  const std::string checkpoint = (dir / "head.pth").string();
  model::save_vcp_checkpoint(*m, checkpoint);
  const auto paths = write_pngs(dir / "images", 512);
  const ServeRow r = measure_serve(config, checkpoint, paths, 128, dir / "out");
  double tower8 = 0;
  for (const auto& row : tower)
    if (row.at("mode") == "autocast" && row.at("batch") == 8) tower8 = row.at("images_per_second").get<double>();
  ctx.out << "  predict (run_predict, batch 8, autocast, 512 images, load excluded): " << fmt("%.1f", r.predict_ips)
          << " img/s = " << (tower8 > 0 ? fmt("%.2f", r.predict_ips / tower8) : std::string("?"))
          << "x the tower's batch-8 autocast rate (target >= 0.8)\n"
          << "  serve (8 clients, max_batch 8, 512 requests): " << fmt("%.1f", r.serve_ips)
          << " img/s = " << fmt("%.2f", r.serve_ips / r.predict_ips)
          << "x predict (target >= 0.9); latency at concurrency 1: "
          << "Inferencer " << fmt("%.1f", r.direct_ms) << " ms, HTTP " << fmt("%.1f", r.http_ms) << " ms\n"
          << std::flush;
  std::error_code ec;
  fs::remove_all(dir / "out", ec);
  (void)budget;
  return {{"predict_images_per_second", r.predict_ips},
          {"tower_batch8_autocast_images_per_second", tower8},
          {"predict_vs_tower", tower8 > 0 ? nlohmann::json(r.predict_ips / tower8) : nullptr},
          {"serve_images_per_second", r.serve_ips},
          {"serve_vs_predict", r.serve_ips / r.predict_ips},
          {"inferencer_ms", r.direct_ms},
          {"http_ms", r.http_ms}};
}

}  // namespace

nlohmann::json gpu_section(BenchContext& ctx) {
  ctx.section("gpu");
  VCP_CHECK(ctx.device.is_cuda(), "bench --only gpu: expected a CUDA device, found ", ctx.device.str());
  Budget budget;
  budget.seconds = ctx.opts.gpu_budget_seconds;
  c10::NoGradGuard no_grad;
  nlohmann::json j;
  ctx.out << "\n[gpu] issue 31 targets: " << kBackbone << " @ " << kSize << ", random weights, " << ctx.device.str()
          << "\n  attention: " << model::attention_kernel()
          << "\n  SDPA kernel per dtype at [2, 16, 1370, 64]: " << sdpa_kernels(ctx.device) << "\n";
  j["attention"] = model::attention_kernel();
  j["sdpa_kernels"] = sdpa_kernels(ctx.device);
  j["torch_version"] = TORCH_VERSION;
  const double gemm = fp16_gemm_tflops(ctx.device, 8192, 5), peak = ctx.opts.gpu_peak_tflops;
  ctx.out << "  fp16 GEMM 8192^3: " << fmt("%.0f", gemm) << " TFLOP/s; dense fp16 peak "
          << (peak > 0 ? fmt("%.0f", peak) + " TFLOP/s (--gpu-peak-tflops)"
                       : std::string("not given (--gpu-peak-tflops)"))
          << "\n"
          << std::flush;
  j["fp16_gemm_tflops"] = gemm;
  j["dense_fp16_peak_tflops"] = peak > 0 ? nlohmann::json(peak) : nullptr;
  auto m = build_quiet(vitl_options(), ctx.device);
  m->eval();
  j["tower"] = tower_rows(ctx, m, peak, budget);
  double autocast_step = 0;
  {
    c10::AutoGradMode grad(true);
    j["train_step"] = train_rows(ctx, m, budget, &autocast_step);
  }
  if (budget.allows(ctx, 120, "predict and serve")) j["predict_serve"] = predict_and_serve(ctx, m, j["tower"], budget);
  m = model::VcpClip(nullptr);  // the protocol runs in child processes
  if (budget.allows(ctx, 140, "the protocol dry run"))
    j["protocol"] = protocol_dry_run(ctx, budget.seconds > 0 ? budget.left() : 0, autocast_step);
  return j;
}

}  // namespace vcpclip::app::bench_detail
