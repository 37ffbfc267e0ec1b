// `vcpclip bench`, real sizes: the `predict` command at ViT-B-16@224 and ViT-L-14-336@518 in fp32
// and bf16 against the reference pipeline on the same OpenAI-format fp16 archives (see bench.h).
#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <random>

#include "sections.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/blas_kernels.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/io/weights_reader.h"

namespace fs = std::filesystem;

namespace vcpclip::app::bench_detail {

namespace {

struct RealCase {
  std::string name;
  int64_t size;
  std::vector<int64_t> features;
  int images, batch;
};

const std::vector<RealCase>& real_cases() {
  static const std::vector<RealCase> c = {{"ViT-B-16", 224, {3, 6, 9, 12}, 9, 8},
                                          {"ViT-L-14-336", 518, {6, 12, 18, 24}, 3, 1}};
  return c;
}

/// Input folders one/ (1 image) and all/ (N images) of random S×S PNGs, and the run config.
fs::path prepare_inputs(const RealCase& c, const fs::path& dir, const fs::path& weights) {
  std::mt19937 rng(7);
  for (const char* sub : {"one", "all"}) fs::create_directories(dir / sub);
  for (int i = 0; i < c.images; ++i) {
    cv::Mat img(static_cast<int>(c.size), static_cast<int>(c.size), CV_8UC3);
    cv::randu(img, cv::Scalar::all(0), cv::Scalar::all(255));
    const std::string file = "img" + std::to_string(i) + ".png";
    cv::imwrite((dir / "all" / file).string(), img);
    if (i == 0) cv::imwrite((dir / "one" / file).string(), img);
  }
  std::string features;
  for (auto f : c.features) features += (features.empty() ? "" : ", ") + std::to_string(f);
  const fs::path cfg = dir / "predict.yaml";
  std::ofstream(cfg) << "model:\n  backbone: " << (weights / (c.name + "_clip.json")).string()
                     << "\n  weights: " << (weights / (c.name + "_clip.pt")).string() << "\n  image_size: " << c.size
                     << "\n  features_list: [" << features << "]\npredict:\n  batch_size: " << c.batch << "\n";
  return cfg;
}

struct PredictTiming {
  double seconds_per_image = 0, peak_rss_mb = 0, t1 = 0, tn = 0;
  std::string error;
};

/// `vcpclip predict` on one/ and all/: s/image = (t(N) - t(1)) / (N - 1); peak RSS of the N run.
PredictTiming time_predict(BenchContext& ctx, const RealCase& c, const fs::path& dir, const std::string& precision) {
  auto cmd = [&](const char* in) {
    return shell_quote(self_exe()) + " predict --no-progress -c " + shell_quote((dir / "predict.yaml").string()) +
           " -k " + shell_quote((fs::path(ctx.opts.weights_dir) / (c.name + ".pth")).string()) + " -i " +
           shell_quote((dir / in).string()) + " -o " + shell_quote((dir / ("out_" + precision + "_" + in)).string()) +
           " --set runtime.threads=" + std::to_string(ctx.threads) + " --set runtime.precision=" + precision;
  };
  PredictTiming t;
  const auto one = run_process(cmd("one"));
  const auto all = one.status == 0 ? run_process(cmd("all")) : one;
  if (one.status != 0 || all.status != 0) {
    t.error =
        "predict " + precision + " failed (exit " + std::to_string(all.status) + "): " + last_lines(all.output, 3);
    return t;
  }
  t.t1 = one.seconds;
  t.tn = all.seconds;
  t.seconds_per_image = (all.seconds - one.seconds) / (c.images - 1);
  t.peak_rss_mb = all.peak_rss_mb;
  return t;
}

/// Largest |difference| between the fp32 and bf16 pixel maps of the N images.
double max_map_diff(const RealCase& c, const fs::path& dir) {
  double worst = 0;
  for (int i = 0; i < c.images; ++i) {
    const std::string f = "img" + std::to_string(i) + "_map.npy";
    auto a = io::read_npy((dir / "out_fp32_all" / f).string()), b = io::read_npy((dir / "out_bf16_all" / f).string());
    worst = std::max(worst, (a - b).abs().max().item<double>());
  }
  return worst;
}

/// fp32 bytes of the weights in `archive` (what the loaded model holds), MB.
double fp32_weights_mb(const fs::path& archive) {
  auto file = io::open_weights(archive.string());
  double n = 0;
  for (const auto& e : file->entries()) {
    double k = 1;
    for (auto d : e.shape) k *= static_cast<double>(d);
    n += k;
  }
  return n * 4 / (1024.0 * 1024.0);
}

struct RealSamples {
  std::vector<double> ref, fp32, bf16, ref_rss, fp32_rss, bf16_rss, load, load_rss;
  std::string ref_kernels;  ///< the reference's BLAS kernels and where they came from
};

/// The reference's kernels (its JSON: blas_kernels, openblas_coretype_env) and their origin.
std::string reference_kernels(const nlohmann::json& ref) {
  return child_kernels_origin(ref.value("blas_kernels", std::string("unknown")),
                              ref.value("openblas_coretype_env", std::string()), !reference_blas_env().empty());
}

nlohmann::json summarise(BenchContext& ctx, const RealCase& c, const RealSamples& s, double diff, double weights_mb) {
  const Spread ref = spread(s.ref), f32 = spread(s.fp32), b16 = spread(s.bf16), load = spread(s.load);
  std::vector<double> speedup, bf16_gain;
  for (size_t i = 0; i < s.fp32.size() && i < s.ref.size(); ++i) speedup.push_back(s.ref[i] / s.fp32[i]);
  for (size_t i = 0; i < s.fp32.size() && i < s.bf16.size(); ++i) bf16_gain.push_back(s.fp32[i] / s.bf16[i]);
  const Spread up = spread(speedup), gain = spread(bf16_gain);
  ctx.out << "  " << c.name << " @ " << c.size << " (batch " << c.batch << ", N = " << c.images << ", " << s.fp32.size()
          << " repetitions; median [min-max])\n"
          << "    reference       " << spread_text(ref) << " s/img, peak RSS " << fmt("%.0f", spread(s.ref_rss).max)
          << " MB\n    vcpclip fp32    " << spread_text(f32) << " s/img, peak RSS "
          << fmt("%.0f", spread(s.fp32_rss).max) << " MB  -> " << spread_text(up, "%.2f")
          << "x the reference\n    vcpclip bf16    " << spread_text(b16) << " s/img, peak RSS "
          << fmt("%.0f", spread(s.bf16_rss).max) << " MB  -> " << spread_text(gain, "%.2f")
          << "x vcpclip fp32; max |map bf16 - fp32| " << fmt("%.2g", diff) << "\n    loading (info)  "
          << spread_text(load, "%.2f") << " s, peak RSS " << fmt("%.0f", spread(s.load_rss).max) << " MB (fp32 weights "
          << fmt("%.0f", weights_mb) << " MB)\n    BLAS kernels    vcpclip " << kernels_origin(select_blas_kernels())
          << "; reference " << s.ref_kernels << "\n"
          << std::flush;
  return {{"model", c.name},
          {"image_size", c.size},
          {"batch", c.batch},
          {"images", c.images},
          {"repeats", s.fp32.size()},
          {"reference_seconds_per_image", spread_json(ref)},
          {"fp32_seconds_per_image", spread_json(f32)},
          {"bf16_seconds_per_image", spread_json(b16)},
          {"speedup_fp32_vs_reference", spread_json(up)},
          {"speedup_bf16_vs_fp32", spread_json(gain)},
          {"peak_rss_mb",
           {{"reference", spread(s.ref_rss).max}, {"fp32", spread(s.fp32_rss).max}, {"bf16", spread(s.bf16_rss).max}}},
          {"max_map_diff_bf16_vs_fp32", diff},
          {"load_seconds", spread_json(load)},
          {"load_peak_rss_mb", spread(s.load_rss).max},
          {"fp32_weights_mb", weights_mb},
          {"blas_kernels", {{"vcpclip", kernels_origin(select_blas_kernels())}, {"reference", s.ref_kernels}}}};
}

nlohmann::json real_case(BenchContext& ctx, const RealCase& c) {
  const fs::path weights(ctx.opts.weights_dir), dir = ctx.work / ("real_" + c.name);
  fs::create_directories(weights);
  std::string why;
  const auto made =
      run_process(shell_quote(*ctx.python) + " " +
                  shell_quote(std::string(VCPCLIP_SOURCE_DIR) + "/bench/reference/bench_predict_reference.py") +
                  " --ref " + shell_quote(ctx.opts.ref_dir) + " --config " + c.name + " --weights-dir " +
                  shell_quote(weights.string()) + " --make-only");
  if (made.status != 0) {
    ctx.note(c.name + ": cannot make the weight files: " + last_lines(made.output, 3));
    return nullptr;
  }
  prepare_inputs(c, dir, weights);
  RealSamples s;
  for (int r = 0; r < std::max(1, ctx.opts.repeats); ++r) {
    const auto f32 = time_predict(ctx, c, dir, "fp32"), b16 = time_predict(ctx, c, dir, "bf16");
    for (const auto* t : {&f32, &b16})
      if (!t->error.empty()) {
        ctx.note(c.name + ": " + t->error);
        return nullptr;
      }
    auto ref = reference_run(ctx, c.name, weights, c.images, c.batch, &why);
    if (ref.is_null()) {
      ctx.note(c.name + ": " + why);
      return nullptr;
    }
    const auto load = run_process(shell_quote(self_exe()) + " info --weights " +
                                  shell_quote((weights / (c.name + "_clip.pt")).string()));
    s.fp32.push_back(f32.seconds_per_image), s.fp32_rss.push_back(f32.peak_rss_mb);
    s.bf16.push_back(b16.seconds_per_image), s.bf16_rss.push_back(b16.peak_rss_mb);
    s.ref.push_back(ref.at("seconds_per_image").get<double>()), s.ref_rss.push_back(ref.at("process_peak_rss_mb"));
    s.load.push_back(load.seconds), s.load_rss.push_back(load.peak_rss_mb);
    s.ref_kernels = reference_kernels(ref);
  }
  return summarise(ctx, c, s, max_map_diff(c, dir), fp32_weights_mb(weights / (c.name + "_clip.pt")));
}

}  // namespace

Spread spread(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v.front(), v.back()};
}
nlohmann::json spread_json(const Spread& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }
std::string spread_text(const Spread& s, const char* f) {
  return fmt(f, s.median) + " [" + fmt(f, s.min) + "-" + fmt(f, s.max) + "]";
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string(VCPCLIP_BINARY_DIR) + "/vcpclip";
}

nlohmann::json real_predict_section(BenchContext& ctx) {
  ctx.section("predict at the real sizes");
  ctx.out << "\n[real] `vcpclip predict` (processes) vs the reference pipeline, real sizes, random OpenAI-format "
             "fp16 weights, "
          << ctx.threads << " threads; s/image = (t(N) - t(1)) / (N - 1)\n";
  nlohmann::json arr = nlohmann::json::array();
  if (!ctx.python) {
    ctx.note("real-size predict rows skipped: " + ctx.no_python);
    return {{"cases", arr}, {"skipped", ctx.no_python}};
  }
  for (const auto& name : ctx.opts.real_models) {
    auto it = std::find_if(real_cases().begin(), real_cases().end(), [&](const RealCase& c) { return c.name == name; });
    if (it == real_cases().end()) {
      ctx.note("unknown real-size model '" + name + "' (known: ViT-B-16, ViT-L-14-336)");
      continue;
    }
    auto row = real_case(ctx, *it);
    if (!row.is_null()) arr.push_back(row);
  }
  return {{"cases", arr}};
}

}  // namespace vcpclip::app::bench_detail
