// `vcpclip bench --only methods`: each method's predict_maps against its official test.py forward,
// side by side, separate processes, alternating repetitions (see methods.h and bench.h).
#include "methods.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "vcpclip/app/config/run_util.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/blas_kernels.h"
#include "vcpclip/common/error.h"
#include "vcpclip/common/runtime.h"
#include "vcpclip/io/config_node.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/model_options.h"

namespace fs = std::filesystem;

namespace vcpclip::app::bench_detail {

using Clock = std::chrono::steady_clock;

namespace {

/// One size of the section; features_list per method as its official test script runs it.
struct SizeCase {
  std::string name;
  int64_t size;
  int images;
  std::vector<int64_t> vcp, april, anomaly;
  int64_t depth;  ///< AnomalyCLIP's deep-prompt depth (9 officially; the tiny text tower has 4 blocks)
};

const std::vector<SizeCase>& size_cases() {
  static const std::vector<SizeCase> c = {{"tiny", 64, 5, {2, 3, 4}, {2, 3, 4}, {4}, 3},
                                          {"ViT-L-14-336", 518, 3, {6, 12, 18, 24}, {6, 12, 18, 24}, {24}, 9}};
  return c;
}

/// bench/reference/bench_methods_reference.py's "tiny" backbone (written here when Python is absent).
const char* const kTinyMethodsBackbone =
    R"({"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 4, "width": 128, "patch_size": 8},
 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 4}})";
const char* const kClassName = "bottle";  // APRIL-GAN's prompts name the product

std::string script(const char* name) { return std::string(VCPCLIP_SOURCE_DIR) + "/bench/reference/" + name; }

/// Which weight files of a size exist (made by the Python scripts): per method family.
struct SizeFiles {
  fs::path dir;
  bool methods = false, vcp = false;  ///< bench_methods_reference.py / bench_predict_reference.py files
  std::string methods_why, vcp_why;
};

SizeFiles make_files(BenchContext& ctx, const SizeCase& sc, const std::optional<std::string>& py,
                     const std::string& py_why) {
  SizeFiles f;
  f.dir = sc.name == "tiny" ? ctx.work / "methods" : fs::path(ctx.opts.weights_dir);
  fs::create_directories(f.dir);
  f.methods_why = f.vcp_why = py_why;
  if (!py) return f;
  f.methods_why.clear();  // Python is there; what is missing now is said below
  const auto& m = ctx.opts.methods;
  const bool want_vcp = std::find(m.begin(), m.end(), "vcp_clip") != m.end();
  if (want_vcp && m.size() == 1) f.methods_why = "not needed";
  for (const auto& ref : {ctx.opts.april_gan_ref, ctx.opts.anomaly_clip_ref})
    if (f.methods_why.empty() && !fs::exists(ref))
      f.methods_why = "official code not found at " + ref + " (--april-gan-ref, --anomaly-clip-ref)";
  if (f.methods_why.empty()) {
    const auto run = run_process(shell_quote(*py) + " " + shell_quote(script("bench_methods_reference.py")) +
                                 " --make-only --size " + sc.name + " --weights-dir " + shell_quote(f.dir.string()) +
                                 " --april-ref " + shell_quote(ctx.opts.april_gan_ref) + " --anomaly-ref " +
                                 shell_quote(ctx.opts.anomaly_clip_ref));
    f.methods = run.status == 0;
    if (!f.methods) f.methods_why = "cannot make the weight files: " + last_lines(run.output, 3);
  }
  if (ctx.python && want_vcp) {
    const auto run = run_process(shell_quote(*ctx.python) + " " + shell_quote(script("bench_predict_reference.py")) +
                                 " --ref " + shell_quote(ctx.opts.ref_dir) + " --config " + sc.name +
                                 " --weights-dir " + shell_quote(f.dir.string()) + " --make-only");
    f.vcp = run.status == 0;
    f.vcp_why = f.vcp ? "" : "cannot make the VCP-CLIP weight files: " + last_lines(run.output, 3);
  } else {
    f.vcp_why = ctx.no_python;
  }
  return f;
}

/// The child's spec: the `model:` keys, checkpoint, class name and image count of one method.
nlohmann::json child_spec(BenchContext& ctx, const SizeCase& sc, const std::string& method, const SizeFiles& f) {
  const bool weights = method == "vcp_clip" ? f.vcp : f.methods;
  const std::string stem = method == "vcp_clip" ? sc.name : sc.name + "_methods";
  nlohmann::json model = {{"method", method}, {"image_size", sc.size}};
  if (weights) {
    model["backbone"] = (f.dir / (stem + "_clip.json")).string();
    model["weights"] = (f.dir / (stem + "_clip.pt")).string();
  } else if (sc.name != "tiny") {
    model["backbone"] = model_config_path(sc.name);
  } else if (method == "vcp_clip") {
    model["backbone"] = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/vcp/tiny_vcp_clip.json";
  } else {
    model["backbone"] = (f.dir / "tiny_methods_random.json").string();
    std::ofstream(model["backbone"].get<std::string>()) << kTinyMethodsBackbone;
  }
  std::string checkpoint;
  if (method == "vcp_clip") {
    model["features_list"] = sc.vcp;
    if (weights) checkpoint = (f.dir / (sc.name + ".pth")).string();
  } else if (method == "april_gan") {
    model["features_list"] = sc.april, model["activation"] = "gelu";  // open_clip rebuilt at S: exact GELU
    if (weights) checkpoint = (f.dir / (sc.name + "_april_gan.pth")).string();
  } else {
    model["features_list"] = sc.anomaly, model["activation"] = "quick_gelu", model["depth"] = sc.depth;
    if (weights) checkpoint = (f.dir / (sc.name + "_anomaly_clip.pth")).string();
  }
  return {{"model", model}, {"checkpoint", checkpoint}, {"class_name", kClassName}, {"images", sc.images}};
}

/// Runs `cmd` (writing `json`): its JSON plus "process_peak_rss_mb", or null and `why`.
nlohmann::json run_json(const std::string& cmd, const fs::path& json, const std::string& what, std::string* why) {
  std::error_code ec;
  fs::remove(json, ec);
  const auto run = run_process(cmd);
  if (run.status != 0 || !fs::exists(json)) {
    *why = what + " failed (exit " + std::to_string(run.status) + "): " + last_lines(run.output, 3);
    return nullptr;
  }
  std::ifstream in(json);
  auto j = nlohmann::json::parse(in);
  j["process_peak_rss_mb"] = run.peak_rss_mb;
  return j;
}

/// The repeated measurements of one method at one size.
struct Samples {
  std::vector<double> cpp, ref, cpp_rss, ref_rss, cpp_load, ref_load, ref_gaussian;
  std::string ref_kernels, ref_skipped, cpp_error;
};

nlohmann::json reference_once(BenchContext& ctx, const SizeCase& sc, const std::string& method, const SizeFiles& f,
                              const std::string& py, std::string* why) {
  if (method == "vcp_clip") return reference_run(ctx, sc.name, f.dir, sc.images, 1, why);
  const fs::path json = ctx.work / ("methods_ref_" + method + ".json");
  const std::string cmd =
      reference_blas_env() + shell_quote(py) + " " + shell_quote(script("bench_methods_reference.py")) + " --method " +
      method + " --size " + sc.name + " --weights-dir " + shell_quote(f.dir.string()) + " --april-ref " +
      shell_quote(ctx.opts.april_gan_ref) + " --anomaly-ref " + shell_quote(ctx.opts.anomaly_clip_ref) + " --threads " +
      std::to_string(ctx.threads) + " --images " + std::to_string(sc.images) + " --json " + shell_quote(json.string());
  return run_json(cmd, json, "official " + method + " forward", why);
}

nlohmann::json cpp_once(BenchContext& ctx, const std::string& method, const nlohmann::json& spec, std::string* why) {
  const fs::path spec_file = ctx.work / ("methods_spec_" + method + ".json"),
                 json = ctx.work / ("methods_cpp_" + method + ".json");
  std::ofstream(spec_file) << spec.dump(2) << "\n";
  const std::string cmd = shell_quote(self_exe()) + " bench --no-progress --threads " + std::to_string(ctx.threads) +
                          " --device " + shell_quote(ctx.opts.device) + " --method-child " +
                          shell_quote(spec_file.string()) + " --json " + shell_quote(json.string());
  return run_json(cmd, json, "vcpclip " + method + " predict_maps", why);
}

void measure(BenchContext& ctx, const SizeCase& sc, const std::string& method, const SizeFiles& f,
             const std::optional<std::string>& py, int rep, Samples& s) {
  const auto spec = child_spec(ctx, sc, method, f);
  const bool with_ref = py && (method == "vcp_clip" ? f.vcp : f.methods) && !ctx.opts.quick;
  if (!with_ref && s.ref_skipped.empty())
    s.ref_skipped =
        ctx.opts.quick ? "reference timing skipped in --quick" : (method == "vcp_clip" ? f.vcp_why : f.methods_why);
  auto run_ref = [&] {
    if (!with_ref || !s.ref_skipped.empty()) return;
    std::string why;
    const auto r = reference_once(ctx, sc, method, f, *py, &why);
    if (r.is_null()) {
      s.ref_skipped = why;
      ctx.note(sc.name + " " + method + ": " + why);
      return;
    }
    s.ref.push_back(r.at("seconds_per_image").get<double>());
    s.ref_rss.push_back(r.at("process_peak_rss_mb").get<double>());
    s.ref_load.push_back(r.value("load_seconds", 0.0));
    if (r.contains("gaussian_seconds_per_image")) s.ref_gaussian.push_back(r.at("gaussian_seconds_per_image"));
    s.ref_kernels =
        child_kernels_origin(r.value("blas_kernels", std::string("unknown")),
                             r.value("openblas_coretype_env", std::string()), !reference_blas_env().empty());
  };
  auto run_cpp = [&] {
    if (!s.cpp_error.empty()) return;
    std::string why;
    const auto r = cpp_once(ctx, method, spec, &why);
    if (r.is_null()) {
      s.cpp_error = why;
      ctx.note(sc.name + " " + method + ": " + why);
      return;
    }
    s.cpp.push_back(r.at("seconds_per_image").get<double>());
    s.cpp_rss.push_back(r.at("process_peak_rss_mb").get<double>());
    s.cpp_load.push_back(r.at("load_seconds").get<double>());
  };
  if (rep % 2 == 0) {  // alternate which side goes first
    run_ref();
    run_cpp();
  } else {
    run_cpp();
    run_ref();
  }
}

nlohmann::json summarise(BenchContext& ctx, const SizeCase& sc, const std::string& method, const Samples& s) {
  const Spread cpp = spread(s.cpp), ref = spread(s.ref);
  std::vector<double> up;
  for (size_t i = 0; i < s.cpp.size() && i < s.ref.size(); ++i) up.push_back(s.ref[i] / s.cpp[i]);
  const bool has_ref = !s.ref.empty();
  char line[320];
  std::snprintf(line, sizeof line, "  %-13s %-12s %26s %26s %22s %8.0f %8s\n", sc.name.c_str(), method.c_str(),
                spread_text(cpp).c_str(), has_ref ? spread_text(ref).c_str() : "-",
                has_ref ? spread_text(spread(up), "%.2f").c_str() : "-", spread(s.cpp_rss).max,
                has_ref ? fmt("%.0f", spread(s.ref_rss).max).c_str() : "-");
  ctx.out << line << std::flush;
  auto ref_or_null = [&](const nlohmann::json& j) { return has_ref ? j : nlohmann::json(nullptr); };
  return {{"size", sc.name},
          {"method", method},
          {"image_size", sc.size},
          {"images", sc.images},
          {"batch", 1},
          {"repeats", s.cpp.size()},
          {"vcpclip_seconds_per_image", spread_json(cpp)},
          {"reference_seconds_per_image", ref_or_null(spread_json(ref))},
          {"speedup_vs_reference", ref_or_null(spread_json(spread(up)))},
          {"peak_rss_mb", {{"vcpclip", spread(s.cpp_rss).max}, {"reference", ref_or_null(spread(s.ref_rss).max)}}},
          {"load_seconds",
           {{"vcpclip", spread_json(spread(s.cpp_load))}, {"reference", ref_or_null(spread_json(spread(s.ref_load)))}}},
          {"reference_gaussian_seconds_per_image",
           s.ref_gaussian.empty() ? nlohmann::json(nullptr) : spread_json(spread(s.ref_gaussian))},
          {"reference", method == "vcp_clip" ? "bench/reference/bench_predict_reference.py (reference test.py pipeline)"
                                             : "bench/reference/bench_methods_reference.py (official test.py forward)"},
          {"reference_skipped", has_ref ? nlohmann::json(nullptr) : nlohmann::json(s.ref_skipped)},
          {"blas_kernels",
           {{"vcpclip", kernels_origin(select_blas_kernels())}, {"reference", ref_or_null(s.ref_kernels)}}}};
}

}  // namespace

nlohmann::json methods_section(BenchContext& ctx) {
  ctx.section("methods");
  const int repeats = ctx.opts.quick ? 1 : std::max(1, ctx.opts.repeats);
  ctx.out << "\n[methods] build_method(...)->predict_maps per image (batch 1, random weights, " << ctx.threads
          << " threads) vs the official test.py forward in Python on the same weights; s/image = (t(N) - t(1)) / "
             "(N - 1), median [min-max] of "
          << repeats << " repetitions alternating the sides; peak RSS of each side's process\n";
  char line[320];
  std::snprintf(line, sizeof line, "  %-13s %-12s %26s %26s %22s %8s %8s\n", "size", "method", "vcpclip s/img",
                "official s/img", "speedup", "RSS MB", "ref MB");
  ctx.out << line;
  // Python for the official code even when the VCP-CLIP reference (--ref) is missing.
  std::string py_why = ctx.no_python;
  std::optional<std::string> py = ctx.python;
  if (!py && ctx.opts.python && !ctx.opts.quick) py = find_python_with_torch(&py_why);
  if (ctx.opts.quick) py.reset(), py_why = "reference timing skipped in --quick";
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& want : ctx.opts.method_sizes) {
    auto it = std::find_if(size_cases().begin(), size_cases().end(), [&](const SizeCase& c) { return c.name == want; });
    if (it == size_cases().end()) {
      ctx.note("unknown methods size '" + want + "' (known: tiny, ViT-L-14-336)");
      continue;
    }
    if (ctx.opts.quick && it->name != "tiny") continue;
    const SizeFiles f = make_files(ctx, *it, py, py_why);
    const auto& names = ctx.opts.methods;
    std::vector<Samples> samples(names.size());
    for (int r = 0; r < repeats; ++r)
      for (size_t m = 0; m < names.size(); ++m) measure(ctx, *it, names[m], f, py, r, samples[m]);
    for (size_t m = 0; m < names.size(); ++m)
      if (!samples[m].cpp.empty()) rows.push_back(summarise(ctx, *it, names[m], samples[m]));
  }
  ctx.out << "  BLAS kernels: vcpclip " << kernels_origin(select_blas_kernels()) << "\n" << std::flush;
  return {{"threads", ctx.threads}, {"repeats", repeats}, {"rows", rows}};
}

nlohmann::json method_child_run(const BenchOptions& opts, int threads) {
  auto root = io::ConfigNode::load_file(opts.method_child);
  auto ms = root.section("model", true);
  const model::ModelOptions mo = model::parse_model_options(ms);
  const std::string checkpoint = root.get<std::string>("checkpoint", "");
  const std::string class_name = root.get<std::string>("class_name", kClassName);
  const int images = root.get<int>("images", 3);
  root.finish();
  VCP_CHECK(images >= 2, "bench --method-child: 'images' must be >= 2 (t(N) - t(1)), found ", images, " in ",
            opts.method_child);
  const c10::Device dev = parse_device(opts.device);
  const auto t0 = Clock::now();
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::err);  // the random-backbone warning is expected here
  model::Method m{nullptr};
  try {
    m = model::build_method(mo, dev);
    if (!checkpoint.empty()) model::load_method_checkpoint(*m, checkpoint);
  } catch (...) {
    spdlog::set_level(level);
    throw;
  }
  spdlog::set_level(level);
  m->eval();
  const double load_s = seconds_since(t0);
  c10::NoGradGuard no_grad;
  const auto x = at::randn({images, 3, mo.input_size, mo.input_size}, at::TensorOptions().device(dev));
  model::ClassNames classes;
  if (m->info().needs_class_name) classes = {class_name};
  auto timed = [&](int n) {
    sync(dev);
    const auto s0 = Clock::now();
    for (int i = 0; i < n; ++i) m->predict_maps(x.slice(0, i, i + 1), nullptr, {}, classes);
    sync(dev);
    return seconds_since(s0);
  };
  timed(1);  // warm-up (also fills the method's text cache, as test.py computes the text before its loop)
  const double t1 = timed(1), tn = timed(images);
  return {{"method", mo.method},
          {"image_size", mo.input_size},
          {"images", images},
          {"threads", threads},
          {"t1", t1},
          {"tN", tn},
          {"seconds_per_image", (tn - t1) / (images - 1)},
          {"load_seconds", load_s},
          {"peak_rss_mb", peak_rss_mb()},
          {"blas_kernels", kernels_origin(select_blas_kernels())}};
}

}  // namespace vcpclip::app::bench_detail
