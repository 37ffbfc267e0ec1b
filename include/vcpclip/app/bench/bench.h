#pragma once
// `vcpclip bench [--json F] [--quick] [--threads N] [--device D]`: one run, side by side:
//   vision   CLIP vision-tower images/s and achieved GFLOP/s vs this machine's sgemm rate
//            (matmul FLOPs counted analytically, see vision_gflop_per_image)
//   predict  VcpClip::predict_maps images/s (tiny S=64, mid S=224) vs the reference Python
//            pipeline (bench/reference/bench_predict_reference.py, on the same weights)
//   real     the `vcpclip predict` command (processes: start-up, loading, decoding, writing
//            included) at the real sizes ViT-B-16@224 and ViT-L-14-336@518 in fp32 and bf16, vs the
//            reference pipeline on the same OpenAI-format fp16 archives (random weights, made once
//            in --weights-dir); s/image = (t(N) - t(1)) / (N - 1), median and range over
//            --repeats; peak RSS; max |map difference| bf16 vs fp32; weight loading (`vcpclip info`)
//   metrics  all metrics of one class vs sklearn + the reference cal_pro_score
//            (bench/reference/bench_metrics_reference.py, same maps)
//   train    training step time (train::train_step, tiny and mid)
//   data     synthetic set generation, preprocess_image 1024² -> 518², the training loader
//            (augmentation, inline and 2 workers), tokenizer encode (first and cached)
//   serve    `vcpclip serve`: added latency at concurrency 1 vs Inferencer::predict, throughput
//            with 8 clients vs `vcpclip predict` (tiny and mid; src/app/bench/serve.cpp)
//   few_shot reference memory at ViT-L-14-336@518, random weights (--quick: ViT-B-16@224): MB per
//            shot, build s/image, predict_maps with a k = 4 memory vs without, RSS (docs/few_shot.md)
//   gpu      CUDA only (issue 31, src/app/bench/gpu.cpp): ViT-L-14-336@518 tower per precision vs the
//            dense fp16 peak, train step, predict vs tower, serve vs predict, the full-size protocol
//            dry run; `--only gpu` on a CPU device is an error, in a full run on the CPU it is skipped
//   methods  each method's build_method(...)->predict_maps (vcp_clip, april_gan, anomaly_clip) per
//            image (batch 1), random weights, fp32, vs its official test.py forward in Python on the
//            same weight files and kernels (bench/reference/bench_methods_reference.py; vcp_clip:
//            bench_predict_reference.py), each side in its own process (peak RSS), repetitions
//            alternating the sides; sizes "tiny" (S = 64) and "ViT-L-14-336" (S = 518), --quick:
//            tiny, no Python (src/app/bench/methods.cpp)
//   peak RSS of the process
// The Python columns need a python3 with torch, numpy, scikit-learn and the reference code
// (--ref, default /tmp/ref): $VCPCLIP_PYTHON, else /usr/bin/python3, else python3 on PATH; when
// none qualifies, or --no-python, the column says why it was skipped. bench/bench_vision.cpp and
// bench/bench_metrics.cpp use the same functions.
#include <c10/core/Device.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/eval/accumulator.h"
#include "vcpclip/model/clip_config.h"

namespace vcpclip::app {

// ---- building blocks (shared with bench/*.cpp) ----

/// Best-of-`reps` at::mm rate on n×n fp32 matrices on `dev`, GFLOP/s.
double sgemm_gflops(const c10::Device& dev, int64_t n, int reps);
/// Matmul GFLOP of one vision-tower forward at `size`: patch embedding 2·G²·W·3p², per block
/// 24·L·W² (projections, MLP) + 4·L²·W (attention), L = G²+1.
double vision_gflop_per_image(const model::ClipVisionConfig& v, int64_t size);
/// configs/models/<name>.json under the working directory, else under the source tree.
std::string model_config_path(const std::string& name);
/// Peak resident set size of this process, MB.
double peak_rss_mb();
/// Fills `acc` with `n` synthetic maps (smooth random field + bumps over 0–3 elliptic defects)
/// of size×size, seeded, and normalises it.
void fill_synthetic_maps(eval::ClassAccumulator& acc, int n, int size, uint32_t seed);

/// A python3 that can import torch, numpy and scikit-learn: $VCPCLIP_PYTHON, then `fallbacks`
/// (by default /usr/bin/python3, then python3 on PATH), the first that works. nullopt and `why`
/// (each candidate and why it failed) set when none does.
std::optional<std::string> find_python_with_torch(std::string* why, const std::vector<std::string>& fallbacks = {
                                                                        "/usr/bin/python3", "python3"});

struct VisionCase {
  std::string backbone;
  int64_t size = 0, batch = 0;
  double images_per_second = 0, gflop_per_image = 0, gflops = 0, fraction_of_sgemm = 0;
};
/// Times the vision tower (random weights, best of `iters`) for each (backbone, size, batch).
VisionCase bench_vision_case(const c10::Device& dev, const std::string& backbone, int64_t size, int64_t batch,
                             int iters, double sgemm);

// ---- the command ----

struct BenchOptions {
  bool quick = false;                ///< < 1 min variant (smaller cases, fewer repeats)
  int threads = 0;                   ///< intra-op threads, 0 = all cores
  std::string device = "cpu";        ///< cpu | cuda | cuda:N
  bool python = true;                ///< run the Python reference columns when possible
  std::string ref_dir = "/tmp/ref";  ///< reference code for the Python scripts
  std::string work_dir;              ///< temporary files ("" = a fresh folder under the temp dir, removed)
  bool progress = true;              ///< one line per section on stderr
  std::vector<std::string> only;     ///< sections to run (vision, predict, real, metrics, train, data, serve, few_shot,
                                     ///< methods, gpu); empty = all
  double gpu_budget_seconds = 0;  ///< gpu: time-box of the whole section (0 = none); parts that do not fit are skipped
  double gpu_peak_tflops = 0;     ///< gpu: the GPU's dense fp16 peak, TFLOP/s (0 = unknown)
  std::string weights_dir = "runs/bench/weights";  ///< real-size weight files (made there once, reused)
  std::vector<std::string> real_models{"ViT-B-16", "ViT-L-14-336"};  ///< real-size rows
  int repeats = 3;                                                   ///< repetitions of each real-size row
  /// methods: sizes of the rows (tiny, ViT-L-14-336); --quick keeps tiny only
  std::vector<std::string> method_sizes{"tiny", "ViT-L-14-336"};
  std::vector<std::string> methods{"vcp_clip", "april_gan", "anomaly_clip"};  ///< methods: which rows
  std::string april_gan_ref = "/tmp/april";               ///< methods: checkout of ByChelsea/VAND-APRIL-GAN
  std::string anomaly_clip_ref = "/tmp/anomalyclip_ref";  ///< methods: checkout of zqhang/AnomalyCLIP
  /// Internal (the methods section's child process): time one method as the spec file says and
  /// return its JSON instead of running sections.
  std::string method_child;
};

/// Runs every section, prints the side-by-side tables to `out`, returns the results as JSON
/// ({"machine", "vision", "predict", "metrics", "train", "data", "peak_rss_mb", "notes"}).
nlohmann::json run_bench(const BenchOptions& opts, std::ostream& out);

}  // namespace vcpclip::app
