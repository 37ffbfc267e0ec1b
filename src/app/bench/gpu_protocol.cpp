// The full-size protocol dry run of `vcpclip bench --only gpu` (issue 31): the synthetic VisA-sized
// and MVTec-sized sets (app/bench/protocol_sets.h), `vcpclip train` on the first at batch 32 in
// autocast (random ViT-L-14-336 @ 518, at least one epoch, the paper's 10 when the budget allows),
// then `vcpclip eval` of its last checkpoint on the second. Both run as child processes, time-boxed
// with timeout(1); their own records give the figures: epochs.jsonl (seconds, img/s, the seconds the
// training loop waited for the loader) and metrics.json (images, seconds, img/s), plus eval's
// --profile line for the waits for decoded images.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "sections.h"
#include "vcpclip/app/bench/protocol_sets.h"
#include "vcpclip/app/config/run_util.h"
#include "vcpclip/common/error.h"

namespace fs = std::filesystem;

namespace vcpclip::app::bench_detail {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kPaperEpochs = 10;  // configs/train_visa.yaml: the reference train.py's default
constexpr int64_t kBatch = 32;

std::string model_yaml(const c10::Device& dev) {
  return "runtime: {device: " + dev.str() + ", precision: autocast, threads: 0, seed: 333}\n" +
         "model: {backbone: " + model_config_path("ViT-L-14-336") + ", image_size: 518, " +
         "features_list: [6, 12, 18, 24]}\n";
}

/// The epochs.jsonl records of a training run (empty when there is none).
std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line, nullptr, false));
  return out;
}

/// The seconds of a `--profile` table row named `stage` in `text` (-1 when absent).
double profile_seconds(const std::string& text, const std::string& stage) {
  const auto at = text.find(stage);
  if (at == std::string::npos) return -1;
  std::istringstream rest(text.substr(at + stage.size()));
  double s = -1;
  rest >> s;
  return rest ? s : -1;
}

nlohmann::json train_part(BenchContext& ctx, const ProtocolSets& sets, const fs::path& dir, int64_t epochs, int workers,
                          double limit) {
  const int64_t steps_per_epoch = (sets.auxiliary.total_images + kBatch - 1) / kBatch;
  const fs::path cfg = dir / "train.yaml";
  std::ofstream(cfg) << model_yaml(ctx.device) << "train:\n  epochs: " << epochs << "\n  batch_size: " << kBatch
                     << "\n  out_dir: " << (dir / "train").string()
                     << "\n  resume_every_steps: 0\n  resume_every_seconds: 0\n  log_every: 10\n  val_classes: []\n"
                     << "  data: {layout: visa, root: " << sets.auxiliary.out << ", split: test, augment: true, "
                     << "workers: " << workers << "}\n";
  const auto run = run_process("timeout " + std::to_string(static_cast<int>(limit)) + " " + shell_quote(self_exe()) +
                               " train --no-progress -c " + shell_quote(cfg.string()));
  const auto epochs_done = read_jsonl(dir / "train" / "epochs.jsonl");
  ctx.out << "  train (VisA-sized, batch " << kBatch << ", autocast, " << steps_per_epoch << " steps/epoch, " << epochs
          << " epoch(s) asked, time-box " << fmt("%.0f", limit) << " s): exit " << run.status << ", "
          << fmt("%.1f", run.seconds) << " s wall\n";
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& e : epochs_done) {
    if (e.is_discarded()) continue;
    const double s = e.value("seconds", 0.0), wait = e.value("loader_wait_seconds", 0.0);
    ctx.out << "    epoch " << e.value("epoch", 0) << ": " << fmt("%.1f", s) << " s, "
            << fmt("%.1f", e.value("images_per_second", 0.0)) << " img/s, waited " << fmt("%.1f", wait)
            << " s for the loader (" << fmt("%.1f", s > 0 ? 100 * wait / s : 0)
            << " %: " << (wait > 0.05 * s ? "the loader starved the GPU" : "no loader starvation") << ")\n";
    rows.push_back(e);
  }
  if (run.status != 0) ctx.out << "    last lines:\n" << last_lines(run.output, 6) << "\n";
  ctx.out << std::flush;
  return {{"exit", run.status},       {"wall_seconds", run.seconds},        {"epochs_asked", epochs},
          {"epochs", rows},           {"steps_per_epoch", steps_per_epoch}, {"workers", workers},
          {"time_box_seconds", limit}};
}

nlohmann::json eval_part(BenchContext& ctx, const ProtocolSets& sets, const fs::path& dir, int workers, double limit) {
  const fs::path cfg = dir / "eval.yaml", out = dir / "eval";
  std::ofstream(cfg) << model_yaml(ctx.device)
                     << "eval:\n  batch_size: 8\n  data: {layout: mvtec, root: " << sets.target.out
                     << ", split: test, workers: " << workers << "}\n";
  const auto run = run_process("timeout " + std::to_string(static_cast<int>(limit)) + " " + shell_quote(self_exe()) +
                               " eval --no-progress --profile -c " + shell_quote(cfg.string()) + " -k " +
                               shell_quote((dir / "train" / "last.pth").string()) + " -o " + shell_quote(out.string()));
  nlohmann::json m;
  std::ifstream in(out / "metrics.json");
  if (in) m = nlohmann::json::parse(in, nullptr, false);
  const auto r = m.is_object() && m.contains("run") ? m.at("run") : nlohmann::json::object();
  const double wait = profile_seconds(run.output, "waiting for decoded images");
  ctx.out << "  eval (MVTec-sized, batch 8, autocast): exit " << run.status << ", wall " << fmt("%.1f", run.seconds)
          << " s (process), " << r.value("images", 0) << " images in " << fmt("%.1f", r.value("seconds", 0.0))
          << " s = " << fmt("%.1f", r.value("images_per_second", 0.0)) << " img/s (model + post-processing), "
          << "waited " << fmt("%.1f", wait) << " s for decoded images\n";
  const auto busy = run.output.find("GPU busy share:");
  if (busy != std::string::npos)
    ctx.out << "    " << run.output.substr(busy, run.output.find('\n', busy) - busy) << "\n";
  if (run.status != 0) ctx.out << "    last lines:\n" << last_lines(run.output, 6) << "\n";
  ctx.out << std::flush;
  return {{"exit", run.status},
          {"wall_seconds", run.seconds},
          {"images", r.value("images", 0)},
          {"seconds", r.value("seconds", 0.0)},
          {"images_per_second", r.value("images_per_second", 0.0)},
          {"waiting_for_decoded_images_seconds", wait},
          {"time_box_seconds", limit}};
}

}  // namespace

nlohmann::json protocol_dry_run(BenchContext& ctx, double seconds, double autocast_step) {
  const auto start = Clock::now();
  const fs::path dir = ctx.work / "protocol";
  std::error_code ec;
  fs::remove_all(dir, ec);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto sets = protocol_set_options(dir.string(), 1.0, cores);
  ctx.out << "  protocol sets (synthetic, " << cores << " threads): ";
  const auto t0 = Clock::now();
  data::generate_synthetic(sets.auxiliary);
  const double aux_s = seconds_since(t0);
  data::generate_synthetic(sets.target);
  const double gen_s = seconds_since(t0);
  ctx.out << "VisA-sized " << sets.auxiliary.total_images << " JPEG 1500x1000 in " << fmt("%.1f", aux_s)
          << " s, MVTec-sized " << sets.target.total_images << " PNG 700-1024 px in " << fmt("%.1f", gen_s - aux_s)
          << " s\n"
          << std::flush;
  // Epochs: at least one; the paper's when the budget allows, leaving room for eval (~1725 images).
  const double left = seconds > 0 ? seconds - seconds_since(start) : 1e9, eval_reserve = 75, startup = 30;
  const int64_t per_epoch = (sets.auxiliary.total_images + kBatch - 1) / kBatch;
  const double epoch_s = per_epoch * (autocast_step > 0 ? autocast_step : 0.5) * 1.3;
  int64_t epochs = 1;
  while (epochs < kPaperEpochs && startup + (epochs + 1) * epoch_s < left - eval_reserve) ++epochs;
  const int workers = std::max(2, cores - 2);
  const double train_limit = seconds > 0 ? std::max(45.0, left - eval_reserve) : 3600;
  nlohmann::json j;
  j["sets"] = {{"auxiliary_images", sets.auxiliary.total_images},
               {"target_images", sets.target.total_images},
               {"generation_seconds", gen_s}};
  j["train"] = train_part(ctx, sets, dir, epochs, workers, train_limit);
  const double eval_left = seconds > 0 ? seconds - seconds_since(start) : 1e9;
  if (eval_left < 30 || !fs::exists(dir / "train" / "last.pth")) {
    ctx.note("gpu: protocol eval skipped: " + std::string(fs::exists(dir / "train" / "last.pth")
                                                              ? "less than 30 s of the budget left"
                                                              : "no checkpoint"));
    return j;
  }
  j["eval"] = eval_part(ctx, sets, dir, workers, seconds > 0 ? eval_left - 5 : 3600);
  return j;
}

}  // namespace vcpclip::app::bench_detail
