// `vcpclip bench`: vision tower vs sgemm, predict and metrics vs the Python reference, training
// step time, peak RSS (see include/vcpclip/app/bench.h).
#include "vcpclip/app/bench.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
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

#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/common/runtime.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/model/vcp_clip.h"
#include "vcpclip/train/trainer.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void sync(const c10::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

/// The "mid" backbone of scripts/bench_predict_reference.py (ViT-B-16-like tower at width 384).
constexpr const char* kMidBackbone =
    R"({"embed_dim": 256, "vision_cfg": {"image_size": 224, "layers": 6, "width": 384, "patch_size": 16},
 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 4}})";

struct PredictCase {
  std::string name;
  int64_t size;
  std::vector<int64_t> features;
};
const std::vector<PredictCase>& predict_cases() {
  static const std::vector<PredictCase> c = {{"tiny", 64, {2, 3, 4}}, {"mid", 224, {2, 4, 5, 6}}};
  return c;
}

/// Runs `cmd` (stderr merged), returns exit status and output.
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

/// Quiet model building (the random-backbone warning is expected here).
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

}  // namespace

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

std::optional<std::string> find_python_with_torch(std::string* why) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("VCPCLIP_PYTHON"); env && *env) candidates.push_back(env);
  candidates.push_back("/usr/bin/python3");
  candidates.push_back("python3");
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
  const int threads = setup_threads(opts.threads);
  const bool q = opts.quick;
  nlohmann::json j;
  std::vector<std::string> notes;
  auto note = [&](const std::string& n) {
    notes.push_back(n);
    out << "  note: " << n << "\n";
  };
  auto section = [&](const std::string& what) {
    if (opts.progress) spdlog::info("bench: {} ...", what);
  };
  double load1 = -1;
  {
    std::ifstream la("/proc/loadavg");
    la >> load1;
  }
  j["machine"] = {{"device", dev.str()},
                  {"threads", threads},
                  {"hardware_threads", std::thread::hardware_concurrency()},
                  {"load_average_1min", load1 >= 0 ? nlohmann::json(load1) : nlohmann::json(nullptr)},
                  {"quick", q}};
  out << "vcpclip bench: device " << dev.str() << ", " << threads << " intra-op threads, load average "
      << fmt("%.2f", load1) << (q ? " (--quick)" : "") << "\n";

  // Work folder (predict weights, metric maps).
  fs::path work = opts.work_dir.empty() ? fs::temp_directory_path() / ("vcpclip_bench_" + std::to_string(::getpid()))
                                        : fs::path(opts.work_dir);
  const bool remove_work = opts.work_dir.empty();
  fs::create_directories(work);
  struct Cleanup {
    fs::path p;
    bool on;
    ~Cleanup() {
      std::error_code ec;
      if (on) fs::remove_all(p, ec);
    }
  } cleanup{work, remove_work};

  std::string no_python;
  std::optional<std::string> python;
  if (!opts.python)
    no_python = "--no-python";
  else if (!fs::exists(opts.ref_dir))
    no_python = "reference code not found at " + opts.ref_dir + " (--ref)";
  else
    python = find_python_with_torch(&no_python);

  // ---- vision tower vs sgemm ----
  section("vision tower");
  {
    c10::NoGradGuard no_grad;
    const int64_t n = dev.is_cuda() ? 8192 : (q ? 1024 : 2048);
    const double peak = sgemm_gflops(dev, n, dev.is_cuda() ? 10 : (q ? 2 : 3));
    out << "\n[vision] CLIP vision tower (random weights) vs sgemm (at::mm " << n << "x" << n
        << " fp32: " << fmt("%.1f", peak) << " GFLOP/s)\n";
    char line[200];
    std::snprintf(line, sizeof line, "  %-14s %5s %5s %10s %10s %10s %9s\n", "backbone", "size", "batch", "images/s",
                  "GFLOP/img", "GFLOP/s", "of sgemm");
    out << line;
    std::vector<std::tuple<std::string, int64_t, int64_t>> cases = {{"ViT-B-16", 224, 2}, {"ViT-L-14-336", 518, 1}};
    if (q) cases = {{"ViT-B-16", 224, 1}};
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& [name, size, batch] : cases) {
      const auto c = bench_vision_case(dev, name, size, batch, q ? 1 : 3, peak);
      std::snprintf(line, sizeof line, "  %-14s %5lld %5lld %10.2f %10.1f %10.1f %8.0f%%\n", name.c_str(),
                    (long long)size, (long long)batch, c.images_per_second, c.gflop_per_image, c.gflops,
                    100 * c.fraction_of_sgemm);
      out << line << std::flush;
      arr.push_back({{"backbone", name},
                     {"size", size},
                     {"batch", batch},
                     {"images_per_second", c.images_per_second},
                     {"gflop_per_image", c.gflop_per_image},
                     {"gflops", c.gflops},
                     {"fraction_of_sgemm", c.fraction_of_sgemm}});
    }
    j["vision"] = {{"sgemm_n", n}, {"sgemm_gflops", peak}, {"cases", arr}};
  }

  // ---- predict vs the reference pipeline ----
  section("predict");
  {
    const int images = q ? 2 : 8;
    const int batch = q ? 2 : 8;
    nlohmann::json ref;  // reference_times.json of the script
    std::string ref_note;
    const fs::path pdir = work / "predict";
    fs::create_directories(pdir);
    if (python && !q) {
      const std::string cmd = shell_quote(*python) + " " +
                              shell_quote(std::string(VCPCLIP_SOURCE_DIR) + "/scripts/bench_predict_reference.py") +
                              " --ref " + shell_quote(opts.ref_dir) + " --out " + shell_quote(pdir.string()) +
                              " --threads " + std::to_string(threads) + " --images " + std::to_string(images) +
                              " --batch " + std::to_string(batch);
      auto [rc, text] = run_capture(cmd);
      if (rc == 0 && fs::exists(pdir / "reference_times.json")) {
        std::ifstream in(pdir / "reference_times.json");
        ref = nlohmann::json::parse(in);
      } else {
        ref_note = "reference predict script failed (exit " + std::to_string(rc) + "): " + last_lines(text, 3);
      }
    } else {
      ref_note = q ? "reference predict timing skipped in --quick" : no_python;
    }
    out << "\n[predict] VcpClip::predict_maps (" << images << " images, batch " << batch << ")"
        << (ref.is_null() ? ", random weights" : ", on the reference script's weights") << "\n";
    char line[200];
    std::snprintf(line, sizeof line, "  %-6s %5s %12s %12s %8s\n", "config", "S", "C++ img/s", "ref img/s", "ratio");
    out << line;
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& pc : predict_cases()) {
      if (q && pc.name != "tiny") continue;
      model::ModelOptions o;
      if (!ref.is_null()) {
        o.backbone = (pdir / (pc.name + "_clip.json")).string();
        o.weights = (pdir / (pc.name + "_clip.pt")).string();
      } else if (pc.name == "tiny") {
        o.backbone = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/vcp/tiny_vcp_clip.json";
      } else {
        o.backbone = (pdir / "mid_random.json").string();
        std::ofstream(o.backbone) << kMidBackbone;
      }
      o.image_size = pc.size;
      o.features_list = pc.features;
      auto model = build_quiet(o, dev);
      if (!ref.is_null()) model::load_vcp_checkpoint(*model, (pdir / (pc.name + ".pth")).string());
      model->eval();
      auto x = at::randn({images, 3, pc.size, pc.size}, at::TensorOptions().device(dev));
      model->predict_maps(x.slice(0, 0, 1));  // warm-up
      sync(dev);
      auto t0 = Clock::now();
      for (int s = 0; s < images; s += batch) model->predict_maps(x.slice(0, s, std::min(images, s + batch)));
      sync(dev);
      const double ips = images / seconds_since(t0);
      std::optional<double> rips;
      if (!ref.is_null() && ref.contains(pc.name)) rips = ref.at(pc.name).at("images_per_s").get<double>();
      std::snprintf(line, sizeof line, "  %-6s %5lld %12.2f %12s %8s\n", pc.name.c_str(), (long long)pc.size, ips,
                    rips ? fmt("%.2f", *rips).c_str() : "-", rips ? fmt("%.2fx", ips / *rips).c_str() : "-");
      out << line << std::flush;
      arr.push_back({{"config", pc.name},
                     {"image_size", pc.size},
                     {"images_per_second", ips},
                     {"reference_images_per_second", num_or_null(rips)},
                     {"speedup", rips ? nlohmann::json(ips / *rips) : nlohmann::json(nullptr)}});
    }
    j["predict"] = {{"images", images},
                    {"batch", batch},
                    {"cases", arr},
                    {"reference_peak_rss_mb", ref.is_null() ? nlohmann::json(nullptr) : ref.at("peak_rss_mb")},
                    {"reference_skipped", ref.is_null() ? nlohmann::json(ref_note) : nlohmann::json(nullptr)}};
    if (!ref_note.empty()) note("predict reference: " + ref_note);
  }

  // ---- metrics vs sklearn + reference cal_pro_score ----
  section("metrics");
  {
    const int maps = q ? 24 : 100, size = q ? 128 : 518, py_maps = q ? 8 : 25;
    eval::ClassAccumulator acc("synthetic");
    fill_synthetic_maps(acc, maps, size, 1234);
    auto time_all = [&](const eval::ClassAccumulator& a, eval::AuproMode mode) {
      eval::MetricsOptions mo;
      mo.aupro = mode;
      auto t0 = Clock::now();
      auto m = a.compute(mo);
      (void)m;
      return seconds_since(t0);
    };
    const double exact = time_all(acc, eval::AuproMode::kExact);
    const double reference_mode = time_all(acc, eval::AuproMode::kReference);
    // The same first py_maps maps for both implementations.
    eval::ClassAccumulator sub("subset");
    for (int i = 0; i < py_maps; ++i)
      sub.add(acc.id(i), acc.map(i), acc.mask(i), size, size, acc.score(i), acc.label(i));
    const double sub_exact = time_all(sub, eval::AuproMode::kExact);
    const double sub_ref = time_all(sub, eval::AuproMode::kReference);
    std::optional<double> py_total;
    std::string py_note = no_python;
    if (python) {
      const fs::path mdir = work / "metrics";
      fs::create_directories(mdir);
      {
        std::ofstream fm(mdir / "maps.f32", std::ios::binary), fg(mdir / "masks.u8", std::ios::binary);
        for (int i = 0; i < py_maps; ++i) {
          fm.write(reinterpret_cast<const char*>(acc.map(i)), std::streamsize(sizeof(float) * size * size));
          fg.write(reinterpret_cast<const char*>(acc.mask(i)), std::streamsize(size * size));
        }
      }
      const std::string cmd = shell_quote(*python) + " " +
                              shell_quote(std::string(VCPCLIP_SOURCE_DIR) + "/scripts/bench_metrics_reference.py") +
                              " --maps " + shell_quote((mdir / "maps.f32").string()) + " --masks " +
                              shell_quote((mdir / "masks.u8").string()) + " --shape " + std::to_string(py_maps) + "," +
                              std::to_string(size) + "," + std::to_string(size) + " --ref " + shell_quote(opts.ref_dir);
      auto [rc, text] = run_capture(cmd);
      std::istringstream lines(text);
      for (std::string l; std::getline(lines, l);)
        if (l.rfind("total_seconds ", 0) == 0) py_total = std::atof(l.c_str() + 14);
      if (rc != 0 || !py_total) {
        py_note = "reference metrics script failed (exit " + std::to_string(rc) + "): " + last_lines(text, 3);
        py_total.reset();
      }
    }
    out << "\n[metrics] all metrics of one class (pixel AUROC, AP, F1-max + IoU, AUPRO; image metrics)\n";
    out << "  " << maps << " maps of " << size << "x" << size << ": " << fmt("%.3f", exact) << " s (exact AUPRO), "
        << fmt("%.3f", reference_mode) << " s (reference 200-step AUPRO)\n";
    out << "  first " << py_maps << " maps: C++ " << fmt("%.3f", sub_exact) << " s exact / " << fmt("%.3f", sub_ref)
        << " s reference-mode; python (sklearn + reference cal_pro_score) "
        << (py_total ? fmt("%.3f s", *py_total) : std::string("-"));
    if (py_total)
      out << " -> " << fmt("%.0fx", *py_total / sub_exact) << " (exact), " << fmt("%.0fx", *py_total / sub_ref)
          << " (reference mode)";
    out << "\n" << std::flush;
    j["metrics"] = {{"maps", maps},
                    {"size", size},
                    {"seconds_exact", exact},
                    {"seconds_reference_mode", reference_mode},
                    {"subset_maps", py_maps},
                    {"subset_seconds_exact", sub_exact},
                    {"subset_seconds_reference_mode", sub_ref},
                    {"python_seconds", num_or_null(py_total)},
                    {"speedup_exact", py_total ? nlohmann::json(*py_total / sub_exact) : nlohmann::json(nullptr)},
                    {"python_skipped", py_total ? nlohmann::json(nullptr) : nlohmann::json(py_note)}};
    if (!py_total) note("metrics reference: " + py_note);
  }

  // ---- training step time ----
  section("train step");
  {
    out << "\n[train] train::train_step (forward, VCP loss, backward, Adam), random backbone\n";
    char line[200];
    std::snprintf(line, sizeof line, "  %-6s %5s %6s %12s %12s\n", "config", "S", "batch", "s/step", "images/s");
    out << line;
    nlohmann::json arr = nlohmann::json::array();
    const fs::path tdir = work / "train";
    fs::create_directories(tdir);
    for (const auto& pc : predict_cases()) {
      if (q && pc.name != "tiny") continue;
      model::ModelOptions o;
      if (pc.name == "tiny") {
        o.backbone = model_config_path("tiny");
      } else {
        o.backbone = (tdir / "mid.json").string();
        std::ofstream(o.backbone) << kMidBackbone;
      }
      o.image_size = pc.size;
      o.features_list = pc.features;
      const int64_t batch = pc.name == "tiny" ? 8 : 2;
      const int steps = q ? 2 : (pc.name == "tiny" ? 5 : 3);
      auto model = build_quiet(o, dev);
      model->train();
      train::TrainOptions to;
      to.lr = 1e-3;
      auto opt = train::make_optimizer(*model->head, to);
      at::Tensor images = at::randn({batch, 3, pc.size, pc.size}, at::TensorOptions().device(dev));
      at::Tensor masks = (at::rand({batch, pc.size, pc.size}, at::TensorOptions().device(dev)) > 0.9).to(at::kFloat);
      train::train_step(*model, *opt, images, masks, 1);  // warm-up
      sync(dev);
      std::vector<double> times;
      for (int s = 0; s < steps; ++s) {
        auto t0 = Clock::now();
        train::train_step(*model, *opt, images, masks, s + 2);
        sync(dev);
        times.push_back(seconds_since(t0));
      }
      std::sort(times.begin(), times.end());
      const double median = times[times.size() / 2];
      std::snprintf(line, sizeof line, "  %-6s %5lld %6lld %12.3f %12.2f\n", pc.name.c_str(), (long long)pc.size,
                    (long long)batch, median, batch / median);
      out << line << std::flush;
      arr.push_back({{"config", pc.name},
                     {"image_size", pc.size},
                     {"batch", batch},
                     {"steps", steps},
                     {"seconds_per_step_median", median},
                     {"images_per_second", batch / median}});
    }
    j["train"] = {{"cases", arr}};
  }

  j["peak_rss_mb"] = peak_rss_mb();
  j["seconds"] = seconds_since(start);
  j["notes"] = notes;
  out << "\npeak RSS " << fmt("%.0f", peak_rss_mb()) << " MB; bench took " << fmt("%.1f", seconds_since(start))
      << " s\n"
      << std::flush;
  return j;
}

}  // namespace vcpclip::app
