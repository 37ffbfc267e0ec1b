// bench_cuda_check: the same source on CPU and on a GPU, side by side.
//
//   bench_cuda_check [--device cuda|cuda:N] [--skip-tiny] [--skip-big] [--backbone NAME]
//                    [--size S] [--batch B] [--steps N] [--iters N]
//
// 1. Tiny golden fixture (tests/fixtures/vcp, scripts/golden/make_golden_vcp.py): M_raw, M_post, the
//    final pixel map and the image score on CPU and on the device (fp32 with TF32 off, then with
//    the PyTorch defaults), each compared with the reference outputs and with each other; then two
//    training steps (forward, focal + dice loss, backward, Adam; prompt dropout 0) from the same
//    initial head on both devices: the losses and the largest parameter difference afterwards.
// 2. Full size (default ViT-L-14-336 @ 518, batch 32, random backbone weights): time and peak
//    device memory of training steps, then vision-tower images/s (no autograd) in fp32 (TF32 off),
//    fp32 with TF32, fp16 and bf16 weights.
// Numbers are printed; the exit status is 1 when a tiny-fixture difference exceeds its tolerance.
// Needs the BPE vocabulary (model.vocab search or $VCPCLIP_VOCAB).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/GradMode.h>
#include <torch/cuda.h>

#include <nlohmann/json.hpp>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#define VCPCLIP_CUDA_STATS 1
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/model/vcp_clip.h"
#include "vcpclip/train/trainer.h"

using namespace vcpclip;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void sync(const c10::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

void set_tf32(bool on) {
  at::globalContext().setAllowTF32CuBLAS(on);
  at::globalContext().setAllowTF32CuDNN(on);
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.detach().to(at::kCPU, at::kDouble) - b.detach().to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

int g_failures = 0;
void report(const std::string& what, double d, double tol) {
  const bool ok = d <= tol;
  if (!ok) ++g_failures;
  std::printf("  %-58s max|diff| = %-10.3g (tol %.0e) %s\n", what.c_str(), d, tol, ok ? "ok" : "EXCEEDED");
  std::fflush(stdout);
}

std::string source_path(const std::string& rel) {
  if (std::filesystem::exists(rel)) return rel;
  return std::string(VCPCLIP_SOURCE_DIR) + "/" + rel;
}

// --------------------------------------------------------------------------------------------
// memory

struct Mem {
  double peak_alloc_gib = -1, peak_reserved_gib = -1, used_gib = -1, total_gib = -1;
};

void reset_peak(const c10::Device& d) {
#ifdef VCPCLIP_CUDA_STATS
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.has_index() ? d.index() : 0);
#endif
}

Mem memory(const c10::Device& d) {
  Mem m;
#ifdef VCPCLIP_CUDA_STATS
  if (d.is_cuda()) {
    const auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(d.has_index() ? d.index() : 0);
    m.peak_alloc_gib = static_cast<double>(st.allocated_bytes[0].peak) / (1 << 30);
    m.peak_reserved_gib = static_cast<double>(st.reserved_bytes[0].peak) / (1 << 30);
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
      m.used_gib = static_cast<double>(total_b - free_b) / (1 << 30);
      m.total_gib = static_cast<double>(total_b) / (1 << 30);
    }
  }
#endif
  return m;
}

void print_mem(const char* label, const Mem& m) {
  if (m.peak_alloc_gib < 0) {
    std::printf("  %s: (no CUDA allocator statistics in this build)\n", label);
    return;
  }
  std::printf("  %s: peak allocated %.2f GiB, peak reserved %.2f GiB, device used now %.2f of %.2f GiB\n", label,
              m.peak_alloc_gib, m.peak_reserved_gib, m.used_gib, m.total_gib);
}

// --------------------------------------------------------------------------------------------
// 1. tiny fixture

struct Fixture {
  nlohmann::json manifest;
  std::string dir;
  at::Tensor load(const std::string& name) const {
    return io::read_npy(dir + "/" + manifest.at("tensors").at(name).at("file").get<std::string>());
  }
  model::ModelOptions options() const {
    model::ModelOptions o;
    o.backbone = dir + "/" + manifest.at("config").get<std::string>();
    o.weights = dir + "/" + manifest.at("weights").get<std::string>();
    o.input_size = manifest.at("image_size").get<int64_t>();
    o.features_list = manifest.at("features_list").get<std::vector<int64_t>>();
    o.prompt_len = manifest.at("prompt_len").get<int64_t>();
    o.deep_prompt_len = manifest.at("deep_prompt_len").get<int64_t>();
    o.deep_prompt_layers = -1;
    o.post_heads = manifest.at("post_heads").get<int64_t>();
    o.templates_normal = manifest.at("templates_normal").get<std::vector<std::string>>();
    o.templates_abnormal = manifest.at("templates_abnormal").get<std::vector<std::string>>();
    return o;
  }
};

Fixture load_fixture() {
  Fixture f;
  f.dir = source_path("tests/fixtures/vcp");
  std::ifstream in(f.dir + "/golden.json");
  VCP_CHECK(static_cast<bool>(in), "missing ", f.dir, "/golden.json");
  f.manifest = nlohmann::json::parse(in);
  return f;
}

struct TinyMaps {
  at::Tensor raw, post, final_map, score;  // on CPU
};

TinyMaps tiny_maps(const Fixture& fx, const c10::Device& dev) {
  auto m = model::build_vcp_clip(fx.options(), dev);
  model::load_vcp_checkpoint(*m, fx.dir + "/" + fx.manifest.at("checkpoint").get<std::string>());
  m->eval();
  auto maps = m->predict_maps(fx.load("images").to(dev));
  const double alpha = fx.manifest.at("alpha").get<double>(), sigma = fx.manifest.at("sigma").get<double>();
  const int64_t k = fx.manifest.at("topk").get<int64_t>();
  TinyMaps r;
  r.final_map = eval::pixel_map(maps.raw, maps.post, alpha, sigma).to(at::kCPU);
  r.score = eval::image_score(maps.raw, maps.post, k).to(at::kCPU);
  r.raw = maps.raw.to(at::kCPU);
  r.post = maps.post.to(at::kCPU);
  return r;
}

struct TinyTrain {
  std::vector<double> losses;
  std::vector<std::pair<std::string, at::Tensor>> grads;   // on CPU, of the first step
  std::vector<std::pair<std::string, at::Tensor>> params;  // on CPU after the steps
};

TinyTrain tiny_train(const Fixture& fx, const c10::Device& dev, int steps) {
  auto opts = fx.options();
  opts.prompt_dropout = 0.0;  // deterministic: the same step on both devices
  opts.init_seed = 5;
  auto m = model::build_vcp_clip(opts, dev);
  m->train();
  train::TrainOptions topts;
  topts.lr = 1e-3;
  auto optim = train::make_optimizer(*m->head, topts);
  auto images = fx.load("images");
  const int64_t b = images.size(0), s = images.size(2);
  // masks: a left half, a centred square, nothing
  auto masks = at::zeros({b, s, s});
  masks[0].narrow(1, 0, s / 2).fill_(1);
  if (b > 1) masks[1].narrow(0, s / 4, s / 2).narrow(1, s / 4, s / 2).fill_(1);
  TinyTrain r;
  for (int i = 0; i < steps; ++i) {
    r.losses.push_back(train::train_step(*m, *optim, images, masks, i + 1).loss);
    if (i == 0)
      for (auto& kv : m->head->named_parameters(true))
        if (kv.value().grad().defined())
          r.grads.emplace_back(kv.key(), kv.value().grad().detach().to(at::kCPU).clone());
  }
  for (auto& kv : m->head->named_parameters(true))
    r.params.emplace_back(kv.key(), kv.value().detach().to(at::kCPU).clone());
  return r;
}

void run_tiny(const c10::Device& dev) {
  std::printf("== tiny golden fixture (tests/fixtures/vcp): CPU vs %s ==\n", dev.str().c_str());
  const auto fx = load_fixture();
  const auto g_raw = fx.load("m_raw"), g_post = fx.load("m_post"), g_final = fx.load("final_map"),
             g_score = fx.load("score");
  constexpr double kTol = 1e-4;

  auto t0 = Clock::now();
  const auto cpu = tiny_maps(fx, c10::Device(c10::kCPU));
  std::printf(" cpu maps in %.2f s\n", seconds_since(t0));
  report("cpu  M_raw  vs reference", max_abs_diff(cpu.raw, g_raw), kTol);
  report("cpu  M_post vs reference", max_abs_diff(cpu.post, g_post), kTol);
  report("cpu  final map vs reference", max_abs_diff(cpu.final_map, g_final), kTol);
  report("cpu  image score vs reference", max_abs_diff(cpu.score, g_score), kTol);
  for (const bool tf32 : {false, true}) {
    if (dev.is_cpu()) break;
    set_tf32(tf32);
    const std::string tag = dev.str() + (tf32 ? " (TF32 on)" : " (fp32, TF32 off)");
    t0 = Clock::now();
    const auto gpu = tiny_maps(fx, dev);
    sync(dev);
    std::printf(" %s maps in %.2f s (includes CUDA/cuBLAS start-up on the first pass)\n", tag.c_str(),
                seconds_since(t0));
    const double tol = tf32 ? 1e-2 : kTol;  // TF32 keeps 10 mantissa bits: only a sanity bound
    report(tag + " M_raw  vs reference", max_abs_diff(gpu.raw, g_raw), tol);
    report(tag + " M_post vs reference", max_abs_diff(gpu.post, g_post), tol);
    report(tag + " final map vs reference", max_abs_diff(gpu.final_map, g_final), tol);
    report(tag + " image score vs reference", max_abs_diff(gpu.score, g_score), tol);
    report(tag + " M_raw  vs cpu", max_abs_diff(gpu.raw, cpu.raw), tol);
    report(tag + " M_post vs cpu", max_abs_diff(gpu.post, cpu.post), tol);
    report(tag + " final map vs cpu", max_abs_diff(gpu.final_map, cpu.final_map), tol);
  }
  set_tf32(false);

  std::printf(" training steps (forward, focal + dice, backward, Adam lr 1e-3), same initial head:\n");
  const int steps = 2;
  const auto tc = tiny_train(fx, c10::Device(c10::kCPU), steps);
  const auto tg = tiny_train(fx, dev, steps);
  for (int i = 0; i < steps; ++i) {
    std::printf("  step %d loss: cpu %.8f  %s %.8f\n", i + 1, tc.losses[i], dev.str().c_str(), tg.losses[i]);
    report("step " + std::to_string(i + 1) + " loss, |cpu - gpu| / loss",
           std::abs(tc.losses[i] - tg.losses[i]) / std::max(1e-12, std::abs(tc.losses[i])), 1e-5);
  }
  // Gradients of step 1, per tensor relative to its largest CPU gradient element.
  double worst = 0;
  std::string worst_name = "-";
  for (std::size_t i = 0; i < std::min(tc.grads.size(), tg.grads.size()); ++i) {
    const double scale = tc.grads[i].second.abs().max().item<double>() + 1e-12;
    const double d = max_abs_diff(tc.grads[i].second, tg.grads[i].second) / scale;
    if (d > worst) worst = d, worst_name = tc.grads[i].first;
  }
  VCP_CHECK(!tc.grads.empty() && tc.grads.size() == tg.grads.size(),
            "bench_cuda_check: no step-1 gradients to compare");
  report("step 1 gradients of " + std::to_string(tc.grads.size()) + " tensors, max|diff|/max|g| (worst: " + worst_name +
             ")",
         worst, 1e-4);
  // Adam's first steps move each element by about lr whatever the size of its gradient
  // (m̂/√v̂ = ±1), so an element whose gradient is ~0 can step either way on the two devices:
  // parameter differences up to 2·lr·steps are rounding, more would mean a real divergence.
  worst = 0, worst_name = "-";
  for (std::size_t i = 0; i < tc.params.size(); ++i) {
    const double d = max_abs_diff(tc.params[i].second, tg.params[i].second);
    if (d > worst) worst = d, worst_name = tc.params[i].first;
  }
  report("head parameters after " + std::to_string(steps) + " Adam steps (worst: " + worst_name + ")", worst,
         2.0 * 1e-3 * steps + 1e-6);
}

// --------------------------------------------------------------------------------------------
// 2. full size

void run_big(const c10::Device& dev, const std::string& backbone, int64_t size, int64_t batch, int steps, int iters) {
  std::printf("\n== %s @ %lld, batch %lld, random weights, on %s ==\n", backbone.c_str(), (long long)size,
              (long long)batch, dev.str().c_str());
  model::ModelOptions o;
  o.backbone = source_path("configs/models/" + backbone + ".json");
  o.weights = "";
  o.input_size = size;
  const int64_t layers = model::ClipConfig::from_json_file(o.backbone).vision.layers;
  o.features_list = {layers / 4, layers / 2, 3 * layers / 4, layers};  // ViT-L: 6, 12, 18, 24 (reference)
  auto t0 = Clock::now();
  auto m = model::build_vcp_clip(o, dev);
  sync(dev);
  std::printf("  model built (random init) and moved in %.1f s\n", seconds_since(t0));
  print_mem("after model load", memory(dev));

  set_tf32(false);  // PyTorch's default for matmuls; cuDNN (patch embedding) likewise off here
  // Training steps in fp32 and under CUDA autocast (runtime.precision autocast, the reference's
  // train.py setting); each from a fresh optimizer, peak memory per precision.
  for (const Precision p : {Precision::kFp32, Precision::kAutocast}) {
    if (!dev.is_cuda() && p == Precision::kAutocast) continue;
    m->set_precision(p);
    m->train();
    train::TrainOptions topts;
    auto optim = train::make_optimizer(*m->head, topts);
    auto images = at::randn({batch, 3, size, size}, at::TensorOptions().device(dev));
    auto masks = (at::rand({batch, size, size}, at::TensorOptions().device(dev)) > 0.9).to(at::kFloat);
    reset_peak(dev);
    for (int i = 0; i < steps; ++i) {
      sync(dev);
      t0 = Clock::now();
      auto r = train::train_step(*m, *optim, images, masks, i + 1);
      sync(dev);
      std::printf("  train step %d (%s): %.3f s, loss %.5f (%.1f images/s)%s\n", i + 1, to_string(p), seconds_since(t0),
                  r.loss, batch / seconds_since(t0), i == 0 ? "  [first: includes cuBLAS/cuDNN set-up]" : "");
      print_mem("  memory", memory(dev));
      std::fflush(stdout);
    }
    for (auto& prm : m->head->parameters()) prm.mutable_grad() = at::Tensor();
  }
  m->set_precision(Precision::kFp32);
  m->eval();

  struct Mode {
    const char* name;
    at::ScalarType dtype;
    bool tf32;
  };
  const std::vector<Mode> modes = {{"fp32 (TF32 off)", at::kFloat, false},
                                   {"fp32 (TF32 on)", at::kFloat, true},
                                   {"fp16 weights", at::kHalf, false},
                                   {"bf16 weights", at::kBFloat16, false}};
  std::printf("  vision tower (encode_image, no autograd), batch %lld:\n", (long long)batch);
  for (const auto& mode : modes) {
    try {
      set_tf32(mode.tf32);
      m->clip->visual->to(mode.dtype);
      auto images = at::randn({batch, 3, size, size}, at::TensorOptions().device(dev)).to(mode.dtype);
      reset_peak(dev);
      { auto warm = m->encode_image(images); }
      sync(dev);
      double best = 1e30;
      for (int i = 0; i < iters; ++i) {
        t0 = Clock::now();
        auto out = m->encode_image(images);
        sync(dev);
        best = std::min(best, seconds_since(t0));
      }
      const auto mem = memory(dev);
      std::printf("    %-16s %8.1f images/s (best of %d: %.3f s/batch), peak allocated %.2f GiB\n", mode.name,
                  batch / best, iters, best, mem.peak_alloc_gib);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      std::printf("    %-16s failed: %s\n", mode.name, msg.substr(0, msg.find('\n')).c_str());
    }
    std::fflush(stdout);
  }
  m->clip->visual->to(at::kFloat);
  set_tf32(false);
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cuda", backbone = "ViT-L-14-336";
  bool tiny = true, big = true;
  int64_t size = 518, batch = 32;
  int steps = 3, iters = 3;
  for (int i = 1; i < argc; ++i) {
    auto next = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_cuda_check: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--device"))
      device = next("--device");
    else if (!std::strcmp(argv[i], "--skip-tiny"))
      tiny = false;
    else if (!std::strcmp(argv[i], "--skip-big"))
      big = false;
    else if (!std::strcmp(argv[i], "--backbone"))
      backbone = next("--backbone");
    else if (!std::strcmp(argv[i], "--size"))
      size = std::atoll(next("--size"));
    else if (!std::strcmp(argv[i], "--batch"))
      batch = std::atoll(next("--batch"));
    else if (!std::strcmp(argv[i], "--steps"))
      steps = std::max(1, std::atoi(next("--steps")));
    else if (!std::strcmp(argv[i], "--iters"))
      iters = std::max(1, std::atoi(next("--iters")));
    else {
      std::fprintf(stderr,
                   "usage: bench_cuda_check [--device cuda|cuda:N|cpu] [--skip-tiny] [--skip-big] [--backbone NAME]\n"
                   "                        [--size S] [--batch B] [--steps N] [--iters N]\n");
      return 2;
    }
  }
  try {
    const c10::Device dev(device);
    if (dev.is_cuda() && !torch::cuda::is_available()) {
      std::fprintf(stderr, "bench_cuda_check: CUDA requested but not available\n");
      return 2;
    }
    std::printf("device %s (%zu CUDA devices visible), %d intra-op threads\n", dev.str().c_str(),
                static_cast<size_t>(torch::cuda::device_count()), at::get_num_threads());
    if (tiny) run_tiny(dev);
    if (big) run_big(dev, backbone, size, batch, steps, iters);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_check: %s\n", e.what());
    return 1;
  }
  std::printf("\n%s\n", g_failures ? "SOME CHECKS EXCEEDED THEIR TOLERANCE" : "all checks within tolerance");
  return g_failures ? 1 : 0;
}
