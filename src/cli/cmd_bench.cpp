// `vcpclip bench [--json F] [--quick] [--threads N] [--device D] [--ref DIR] [--no-python] [--only S]
// [--weights-dir D] [--models M...] [--repeats R] [--method-sizes S...] [--methods M...]
// [--april-gan-ref D] [--anomaly-clip-ref D]`: vision tower vs sgemm, predict (small models and the real sizes
// ViT-B-16@224, ViT-L-14-336@518, fp32 and bf16), metrics and each method's predict_maps vs the
// Python reference, training step time, data input speed and peak RSS in one run. All logic lives
// in vcpclip::app::run_bench.
#include <iostream>
#include <memory>
#include <string>

#include "command.h"
#include "vcpclip/app/bench/bench.h"
#include "vcpclip/io/atomic_file.h"

namespace {

struct BenchArgs {
  vcpclip::app::BenchOptions opts;
  std::string json;
  bool no_python = false, no_progress = false;
};

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "bench",
    "Benchmarks side by side: vision tower vs sgemm peak, predict and metrics vs the Python reference, "
    "training step time, data input speed, peak RSS",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto a = std::make_shared<BenchArgs>();
      sub.add_option("--json", a->json, "also write the results as JSON to this file");
      sub.add_flag("--quick", a->opts.quick, "a < 1 min variant (small cases; no Python predict reference)");
      sub.add_option("--threads", a->opts.threads, "intra-op threads (0 = all cores)")->capture_default_str();
      sub.add_option("--device", a->opts.device, "cpu | cuda | cuda:N")->capture_default_str();
      sub.add_option("--ref", a->opts.ref_dir, "reference VCP-CLIP code for the Python columns")->capture_default_str();
      sub.add_option("--work-dir", a->opts.work_dir, "keep temporary files (weights, maps) here");
      sub.add_flag("--no-python", a->no_python, "skip the Python reference columns");
      sub.add_flag("--no-progress", a->no_progress, "no progress lines");
      sub.add_option("--only", a->opts.only,
                     "run only these sections: vision, predict, real, metrics, train, data, serve, few_shot, "
                     "methods, gpu (gpu: CUDA only, issue 31's targets at ViT-L-14-336 @ 518)")
          ->check(CLI::IsMember(
              {"vision", "predict", "real", "metrics", "train", "data", "serve", "few_shot", "methods", "gpu"}));
      sub.add_option("--gpu-budget", a->opts.gpu_budget_seconds,
                     "gpu: seconds for the whole section; parts that no longer fit are skipped (0 = no limit)")
          ->capture_default_str();
      sub.add_option("--gpu-peak-tflops", a->opts.gpu_peak_tflops,
                     "gpu: the GPU's dense fp16 peak in TFLOP/s, for the tower's share of it (0 = unknown)")
          ->capture_default_str();
      sub.add_option("--weights-dir", a->opts.weights_dir, "real-size weight files (made there once)")
          ->capture_default_str();
      sub.add_option("--models", a->opts.real_models, "real-size rows (ViT-B-16, ViT-L-14-336)")->capture_default_str();
      sub.add_option("--repeats", a->opts.repeats, "repetitions of each real-size and methods row")
          ->capture_default_str();
      sub.add_option("--method-sizes", a->opts.method_sizes, "methods: sizes of the rows (tiny, ViT-L-14-336)")
          ->check(CLI::IsMember({"tiny", "ViT-L-14-336"}))
          ->capture_default_str();
      sub.add_option("--methods", a->opts.methods, "methods: which methods (vcp_clip, april_gan, anomaly_clip)")
          ->check(CLI::IsMember({"vcp_clip", "april_gan", "anomaly_clip"}))
          ->capture_default_str();
      sub.add_option("--april-gan-ref", a->opts.april_gan_ref,
                     "methods: checkout of the official APRIL-GAN code (ByChelsea/VAND-APRIL-GAN)")
          ->capture_default_str();
      sub.add_option("--anomaly-clip-ref", a->opts.anomaly_clip_ref,
                     "methods: checkout of the official AnomalyCLIP code (zqhang/AnomalyCLIP)")
          ->capture_default_str();
      sub.add_option("--method-child", a->opts.method_child, "internal: the methods section's child process")
          ->group("");
      return [a]() {
        a->opts.python = !a->no_python;
        a->opts.progress = !a->no_progress;
        auto j = vcpclip::app::run_bench(a->opts, std::cout);
        if (!a->json.empty()) {
          vcpclip::io::write_file_atomically(a->json, j.dump(2) + "\n");
          std::cout << "results -> " << a->json << "\n";
        }
        return 0;
      };
    });
