#pragma once
// The sections of `vcpclip bench` (src/app/bench*.cpp; not part of the public API). run_bench
// (bench.cpp) builds a BenchContext, runs the sections the options ask for, and collects their JSON.
#include <c10/core/Device.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "vcpclip/app/bench/bench.h"
#include "vcpclip/model/vcp_clip.h"

namespace vcpclip::app::bench_detail {

/// What every section needs: the options, the device, the threads, a work folder, the Python
/// reference (when usable), the output stream and the notes of the run.
struct BenchContext {
  const BenchOptions& opts;
  c10::Device device;
  int threads;
  std::filesystem::path work;
  std::optional<std::string> python;  ///< python3 with torch (nullopt: no_python says why)
  std::string no_python;
  std::ostream& out;
  std::vector<std::string> notes;
  void note(const std::string& n);
  void section(const std::string& what) const;
};

nlohmann::json vision_section(BenchContext& ctx);
nlohmann::json predict_section(BenchContext& ctx);       ///< tiny/mid, in process
nlohmann::json real_predict_section(BenchContext& ctx);  ///< ViT-B-16@224, ViT-L-14-336@518, `predict` processes
nlohmann::json metrics_section(BenchContext& ctx);
nlohmann::json train_section(BenchContext& ctx);
nlohmann::json data_section(BenchContext& ctx);   ///< synthetic sets, preprocessing, loader, tokenizer (data.cpp)
nlohmann::json serve_section(BenchContext& ctx);  ///< `vcpclip serve` vs Inferencer::predict and `predict` (serve.cpp)
nlohmann::json few_shot_section(BenchContext& ctx);  ///< reference memory cost (few_shot.cpp)
/// Issue 31's GPU targets at ViT-L-14-336 @ 518 and the full-size protocol dry run (gpu.cpp).
nlohmann::json gpu_section(BenchContext& ctx);
/// The full-size protocol dry run of gpu_section (gpu_protocol.cpp): `seconds` left of the budget
/// (0 = none), `autocast_step` the measured train step (s) that sizes the time-box.
nlohmann::json protocol_dry_run(BenchContext& ctx, double seconds, double autocast_step);

/// serve.cpp's measurement for one config: median Inferencer and HTTP latency at concurrency 1
/// (`requests` sequential requests), img/s of 8 concurrent clients (4 · requests requests) and of
/// run_predict over `paths` (outputs in `out`).
struct ServeRow {
  double direct_ms = 0, http_ms = 0, serve_ips = 0, predict_ips = 0;
};
ServeRow measure_serve(const std::string& config, const std::string& checkpoint, const std::vector<std::string>& paths,
                       int requests, const std::filesystem::path& out);

// ---- helpers shared by the sections ----
/// This vcpclip binary (/proc/self/exe; the build's vcpclip when unreadable).
std::string self_exe();
void sync(const c10::Device& d);
/// Runs `cmd` through the shell (stderr merged), returns exit status and output.
std::pair<int, std::string> run_capture(const std::string& cmd);
std::string shell_quote(const std::string& s);
std::string last_lines(const std::string& s, int n);
/// Builds a model with warnings silenced (the random-backbone warning is expected here).
model::VcpClip build_quiet(const model::ModelOptions& o, const c10::Device& dev);
std::string fmt(const char* f, double v);
nlohmann::json num_or_null(const std::optional<double>& v);
/// The "mid" backbone (a ViT-B-16-like tower at width 384), as in bench/reference/bench_predict_reference.py.
extern const char* const kMidBackbone;

/// A child process's wall time, peak RSS and exit status (fork/exec of `sh -c cmd`, wait4).
struct ProcessRun {
  int status = -1;
  double seconds = 0, peak_rss_mb = 0;
  std::string output;  ///< its stdout + stderr
};
ProcessRun run_process(const std::string& cmd);

/// Median and range of repeated measurements (real.cpp, methods.cpp).
struct Spread {
  double median = 0, min = 0, max = 0;
};
Spread spread(std::vector<double> v);
nlohmann::json spread_json(const Spread& s);                       ///< {"median", "min", "max"}
std::string spread_text(const Spread& s, const char* f = "%.3f");  ///< "median [min-max]"

/// "OPENBLAS_CORETYPE=<kernels> " when vcpclip switched OpenBLAS's kernels (common/blas_kernels.h), so
/// that the reference runs on the same BLAS kernels as vcpclip; "" otherwise.
std::string reference_blas_env();
/// Runs bench/reference/bench_predict_reference.py for `config` (weights made in / read from `dir`,
/// `images` images in batches of `batch`): its JSON plus "process_peak_rss_mb", or null and `why`.
nlohmann::json reference_run(BenchContext& ctx, const std::string& config, const std::filesystem::path& dir, int images,
                             int batch, std::string* why);

}  // namespace vcpclip::app::bench_detail
