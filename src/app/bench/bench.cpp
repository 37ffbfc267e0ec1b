// `vcpclip bench`: vision tower vs sgemm, predict and metrics vs the Python reference, training
// step time, data input speed, peak RSS (see include/vcpclip/app/bench/bench.h).
#include "vcpclip/app/bench/bench.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <opencv2/imgproc.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "methods.h"
#include "sections.h"
#include "vcpclip/app/config/run_util.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/blas_kernels.h"
#include "vcpclip/common/error.h"
#include "vcpclip/common/runtime.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/model/vcp_clip.h"
#include "vcpclip/train/trainer.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

namespace bench_detail {

using Clock = std::chrono::steady_clock;

void BenchContext::note(const std::string& n) {
  notes.push_back(n);
  out << "  note: " << n << "\n";
}

void BenchContext::section(const std::string& what) const {
  if (opts.progress) spdlog::info("bench: {} ...", what);
}

void sync(const c10::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

const char* const kMidBackbone =
    R"({"embed_dim": 256, "vision_cfg": {"image_size": 224, "layers": 6, "width": 384, "patch_size": 16},
 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 4}})";

std::pair<int, std::string> run_capture(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((cmd + " 2>&1").c_str(), "r"), pclose);
  if (!pipe) return {-1, "cannot start: " + cmd};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) out.append(buf.data(), n);
  const int rc = pclose(pipe.release());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0), out};
}

ProcessRun run_process(const std::string& cmd) {
  ProcessRun r;
  char tmpl[] = "/tmp/vcpclip_bench_out_XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) return r;
  const auto t0 = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  if (pid > 0 && wait4(pid, &status, 0, &ru) == pid) {
    r.seconds = seconds_since(t0);
    r.peak_rss_mb = ru.ru_maxrss / 1024.0;
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  close(fd);
  std::ifstream in(tmpl);
  r.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::remove(tmpl);
  return r;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string last_lines(const std::string& s, int n) {
  size_t p = s.size();
  for (int i = 0; i < n && p != std::string::npos && p > 0; ++i) p = s.rfind('\n', p - 1);
  return p == std::string::npos ? s : s.substr(p + 1);
}

model::VcpClip build_quiet(const model::ModelOptions& o, const c10::Device& dev) {
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::err);
  try {
    auto m = model::build_vcp_clip(o, dev);
    spdlog::set_level(level);
    return m;
  } catch (...) {
    spdlog::set_level(level);
    throw;
  }
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

nlohmann::json num_or_null(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

}  // namespace bench_detail

using namespace bench_detail;

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

double vision_gflop_per_image(const model::ClipVisionConfig& v, int64_t size) {
  const double g = static_cast<double>(size / v.patch_size), w = static_cast<double>(v.width);
  const double l = g * g + 1, p = static_cast<double>(v.patch_size);
  const double patch = 2.0 * g * g * w * 3 * p * p;
  const double block = 24.0 * l * w * w + 4.0 * l * l * w;
  return (patch + v.layers * block + 2.0 * w * 1) / 1e9;
}

std::string model_config_path(const std::string& name) {
  const std::string rel = "configs/models/" + name + ".json";
  if (fs::exists(rel)) return rel;
  return std::string(VCPCLIP_SOURCE_DIR) + "/" + rel;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

void fill_synthetic_maps(eval::ClassAccumulator& acc, int n, int size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  acc.reserve(n, size, size);
  cv::Mat low(12, 12, CV_32F), map, mask, bump;
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 144; ++k) low.at<float>(k) = u(rng);
    cv::resize(low, map, cv::Size(size, size), 0, 0, cv::INTER_LINEAR);
    mask = cv::Mat::zeros(size, size, CV_8U);
    const int blobs = std::uniform_int_distribution<int>(0, 3)(rng);
    for (int b = 0; b < blobs; ++b) {
      cv::Point c(int(u(rng) * size), int(u(rng) * size));
      cv::Size ax(3 + int(u(rng) * size / 10), 3 + int(u(rng) * size / 10));
      cv::ellipse(mask, c, ax, u(rng) * 180, 0, 360, cv::Scalar(1), -1);
    }
    mask.convertTo(bump, CV_32F, 0.5);
    cv::GaussianBlur(bump, bump, cv::Size(0, 0), std::max(1.0, 6.0 * size / 518.0));  // 6 px at 518
    map += bump;
    for (int k = 0; k < size * size; ++k) map.at<float>(k) += 0.05f * u(rng);
    const double score = cv::sum(map)[0] / (size * size) + 0.01 * (rng() % 100);
    acc.add("img" + std::to_string(i), map.ptr<float>(), mask.ptr<uint8_t>(), size, size, score,
            cv::countNonZero(mask) > 0 ? 1 : 0);
  }
  acc.normalize();
}

std::optional<std::string> find_python_with_torch(std::string* why, const std::vector<std::string>& fallbacks) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("VCPCLIP_PYTHON"); env && *env) candidates.push_back(env);
  candidates.insert(candidates.end(), fallbacks.begin(), fallbacks.end());
  std::string tried;
  for (const auto& py : candidates) {
    if (py.find('/') != std::string::npos && !fs::exists(py)) {
      tried += (tried.empty() ? "" : "; ") + py + ": not found";
      continue;
    }
    auto [rc, out] = run_capture(shell_quote(py) + " -c 'import torch, numpy, sklearn'");
    if (rc == 0) return py;
    tried += (tried.empty() ? "" : "; ") + py + ": cannot import torch/numpy/sklearn";
  }
  if (why) *why = "no python3 with torch, numpy and scikit-learn (" + tried + "; set $VCPCLIP_PYTHON)";
  return std::nullopt;
}

VisionCase bench_vision_case(const c10::Device& dev, const std::string& backbone, int64_t size, int64_t batch,
                             int iters, double sgemm) {
  c10::NoGradGuard no_grad;
  auto cfg = model::ClipConfig::from_json_file(model_config_path(backbone));
  model::ClipVision tower(cfg.vision, cfg.embed_dim, cfg.activation);
  tower->eval();
  tower->to(dev);
  auto images = at::randn({batch, 3, size, size}, at::TensorOptions().device(dev));
  tower->forward(images, {}, true);  // warm-up (also builds the resized positional embedding)
  sync(dev);
  double best = 1e30;
  for (int i = 0; i < std::max(1, iters); ++i) {
    auto t0 = Clock::now();
    auto out = tower->forward(images, {}, true);
    sync(dev);
    best = std::min(best, seconds_since(t0));
  }
  VisionCase c;
  c.backbone = backbone;
  c.size = size;
  c.batch = batch;
  c.images_per_second = batch / best;
  c.gflop_per_image = vision_gflop_per_image(cfg.vision, size);
  c.gflops = c.gflop_per_image * batch / best;
  c.fraction_of_sgemm = sgemm > 0 ? c.gflops / sgemm : 0;
  return c;
}

nlohmann::json run_bench(const BenchOptions& opts, std::ostream& out) {
  const auto start = Clock::now();
  const c10::Device dev = parse_device(opts.device);
  const bool gpu_asked = std::find(opts.only.begin(), opts.only.end(), "gpu") != opts.only.end();
  VCP_CHECK(!gpu_asked || dev.is_cuda(), "bench --only gpu measures issue 31's GPU targets and needs CUDA, but the ",
            "device is ", dev.str(), ": ",
            torch::cuda::is_available() ? "pass --device cuda"
                                        : "this vcpclip's LibTorch has no CUDA (Debian's is CPU-only): build it "
                                          "against a CUDA LibTorch (README \"Building\") and run it on a GPU "
                                          "machine (docs/benchmarks.md \"Next GPU machine\")");
  const auto& blas = select_blas_kernels();  // before the first matmul (common/blas_kernels.h)
  const std::string ref_blas = reference_blas_env();
  if (!opts.method_child.empty()) return method_child_run(opts, setup_threads(opts.threads));  // methods.h
  BenchContext ctx{opts, dev, setup_threads(opts.threads), {}, std::nullopt, {}, out, {}};
  double load1 = -1;
  {
    std::ifstream la("/proc/loadavg");
    la >> load1;
  }
  nlohmann::json j;
  j["machine"] = {
      {"device", dev.str()},
      {"threads", ctx.threads},
      {"hardware_threads", std::thread::hardware_concurrency()},
      {"load_average_1min", load1 >= 0 ? nlohmann::json(load1) : nlohmann::json(nullptr)},
      {"quick", opts.quick},
      {"attention", model::attention_kernel()},
      {"blas", {{"openblas_kernels_at_start", blas.before}, {"openblas_kernels", blas.after}, {"note", blas.reason}}}};
  out << "attention: " << model::attention_kernel() << "\n";
  out << "vcpclip bench: device " << dev.str() << ", " << ctx.threads << " intra-op threads, load average "
      << fmt("%.2f", load1) << (opts.quick ? " (--quick)" : "") << "\nBLAS: " << blas.reason
      << (ref_blas.empty() ? "" : "; the reference runs with " + ref_blas + "as well") << "\n";
  // Work folder (weights of the small cases, metric maps, predict outputs).
  ctx.work = opts.work_dir.empty() ? fs::temp_directory_path() / ("vcpclip_bench_" + std::to_string(::getpid()))
                                   : fs::path(opts.work_dir);
  fs::create_directories(ctx.work);
  struct Cleanup {
    fs::path p;
    bool on;
    ~Cleanup() {
      std::error_code ec;
      if (on) fs::remove_all(p, ec);
    }
  } cleanup{ctx.work, opts.work_dir.empty()};
  if (!opts.python)
    ctx.no_python = "--no-python";
  else if (!fs::exists(opts.ref_dir))
    ctx.no_python = "reference code not found at " + opts.ref_dir + " (--ref)";
  else
    ctx.python = find_python_with_torch(&ctx.no_python);

  auto wanted = [&](const std::string& s) {
    return opts.only.empty() || std::find(opts.only.begin(), opts.only.end(), s) != opts.only.end();
  };
  if (wanted("vision")) j["vision"] = vision_section(ctx);
  if (wanted("predict")) j["predict"] = predict_section(ctx);
  if (wanted("real") && !opts.quick) j["predict_real"] = real_predict_section(ctx);
  if (wanted("metrics")) j["metrics"] = metrics_section(ctx);
  if (wanted("train")) j["train"] = train_section(ctx);
  if (wanted("data")) j["data"] = data_section(ctx);
  if (wanted("serve")) j["serve"] = serve_section(ctx);
  if (wanted("few_shot")) j["few_shot"] = few_shot_section(ctx);
  if (wanted("methods")) j["methods"] = methods_section(ctx);
  if (wanted("gpu") && dev.is_cuda()) j["gpu"] = gpu_section(ctx);
  if (wanted("gpu") && !dev.is_cuda()) ctx.note("gpu section skipped: it needs a CUDA device (--device cuda)");
  j["peak_rss_mb"] = peak_rss_mb();
  j["seconds"] = seconds_since(start);
  j["notes"] = ctx.notes;
  out << "\npeak RSS " << fmt("%.0f", peak_rss_mb()) << " MB; bench took " << fmt("%.1f", seconds_since(start))
      << " s\n"
      << std::flush;
  return j;
}

}  // namespace vcpclip::app
