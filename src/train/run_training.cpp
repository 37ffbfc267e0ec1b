// The training run (epochs, logs, checkpoints, resume), see include/vcpclip/train/trainer.h.
#include <ATen/ATen.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vcpclip/common/error.h"
#include "vcpclip/common/progress.h"
#include "vcpclip/data/check.h"
#include "vcpclip/data/loader.h"
#include "vcpclip/train/trainer.h"

namespace fs = std::filesystem;

namespace vcpclip::train {

namespace {

/// Adds out_dir/train.log to the default logger for the lifetime of the object.
class FileLog {
 public:
  explicit FileLog(const std::string& path) {
    sink_ = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
    sink_->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~FileLog() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }

 private:
  spdlog::sink_ptr sink_;
};

void append_line(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path, std::ios::app);
  VCP_CHECK(out, "cannot append to ", path);
  out << j.dump() << "\n";
  out.flush();
  VCP_CHECK(out, "cannot write ", path);
}

/// Drops lines whose `key` exceeds `max` (a resumed run re-logs what came after its state).
void truncate_jsonl(const std::string& path, const char* key, int64_t max) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::stringstream kept;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      auto j = nlohmann::json::parse(line);
      if (j.contains(key) && j[key].get<int64_t>() > max) continue;
    } catch (const std::exception&) {
      continue;  // a torn last line from a killed run
    }
    kept << line << "\n";
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  out << kept.str();
}

nlohmann::json opt_num(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

std::string fmt_opt(const std::optional<double>& v) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", *v);
  return buf;
}

}  // namespace

TrainSummary run_training(const TrainRequest& req_in) {
  TrainRequest req = req_in;
  const auto device = apply_runtime(req.runtime);
  if (req.train.deterministic) req.model.prompt_dropout = 0.0;
  auto model = model::build_vcp_clip(req.model, device);
  model->set_precision(req.runtime.precision);  // towers in bf16/fp16, or CUDA autocast (runtime.h)
  return run_training(req, model);
}

TrainSummary run_training(const TrainRequest& req_in, model::VcpClip model) {
  TrainRequest req = req_in;
  TrainOptions& to = req.train;
  to.resolve();
  seed_everything(req.runtime.seed);  // dropout stream (resume restores its saved state instead)
  Distributed dist(dist_env_from_environment());
  const bool main_rank = dist.is_main();
  const int world = dist.world_size();
  VCP_CHECK(to.batch_size % world == 0, "train.batch_size ", to.batch_size, " must be divisible by WORLD_SIZE=", world,
            " (each rank trains on batch_size / WORLD_SIZE images)");
  const std::string out_dir = to.out_dir;
  const std::string resume_path = (fs::path(out_dir) / "resume.pt").string();
  const std::string last_path = (fs::path(out_dir) / "last.pth").string();
  const std::string steps_path = (fs::path(out_dir) / "steps.jsonl").string();
  const std::string epochs_path = (fs::path(out_dir) / "epochs.jsonl").string();
  if (main_rank) fs::create_directories(out_dir);
  dist.barrier();
  std::unique_ptr<FileLog> file_log;
  if (main_rank) file_log = std::make_unique<FileLog>((fs::path(out_dir) / "train.log").string());
  if (main_rank && !req.config_text.empty()) spdlog::info("effective config:\n{}", req.config_text);

  // ---- data: read, check (refuse a broken set unless skip_bad) ----
  auto index = data::read_index(req.data);
  VCP_CHECK(!index.samples.empty(), "training data ", index.source, " has no samples in split '", req.data.split, "'");
  const bool skip_bad = to.skip_bad || req.data.skip_bad;
  {
    data::CheckOptions co;
    co.workers = std::max(1, to.workers);
    co.progress = req.progress && main_rank;
    auto report = data::check_index(index, req.data.split, co);
    if (!report.ok()) {
      if (!skip_bad)
        fail("training data ", index.source,
             " has problems (fix them, or set train.skip_bad: true to leave the "
             "bad samples out):\n",
             report.format());
      const size_t dropped = data::drop_bad(index.samples, report);
      spdlog::warn("skip_bad: left out {} bad sample(s) of {}:\n{}", dropped, index.source, report.format());
      VCP_CHECK(!index.samples.empty(), "training data ", index.source, ": no usable sample left after skip_bad");
    }
  }
  std::vector<data::SampleInfo> val_samples;
  VCP_CHECK(to.val_classes.empty() || to.val_data,
            "train.val_classes lists validation classes but there is no "
            "train.val_data section saying where they are");
  if (to.val_data && main_rank) {
    auto vd = *to.val_data;
    if (!to.val_classes.empty()) vd.classes = to.val_classes;
    val_samples = data::read_samples(vd);
    spdlog::info("validation: {} images of {} class(es)", val_samples.size(), data::class_names(val_samples).size());
  }

  const int64_t local_batch = to.batch_size / world;
  auto lo = data::make_loader_options(req.data, model->input_size(), local_batch, to.shuffle, req.runtime.seed);
  lo.workers = to.workers;
  lo.rank = dist.rank();
  lo.world_size = world;
  lo.skip_bad = skip_bad;
  lo.augment = to.augment && req.data.augment;
  lo.mosaic_p = to.augment ? req.data.mosaic_p : 0.0;
  data::DataLoader loader(index.samples, lo);
  const int64_t batches = loader.batches_per_epoch();
  spdlog::info("training on {} images ({} classes) of {}: {} batches of {} per epoch{}, augment {}, shuffle {}",
               index.samples.size(), data::class_names(index.samples).size(), index.source, batches, to.batch_size,
               world > 1 ? " (over " + std::to_string(world) + " ranks)" : std::string(), lo.augment, lo.shuffle);

  // ---- model state: init_from / resume ----
  model->train();
  auto optimizer = make_optimizer(*model->head, to);
  auto params = trainable_tensors(*model->head);
  TrainCounters counters;
  counters.seed = req.runtime.seed;
  counters.world_size = world;
  counters.global_batch = to.batch_size;
  if (req.resume) {
    if (!to.init_from.empty())
      spdlog::warn("--resume: train.init_from {} is ignored (the run's own state is used)", to.init_from);
    const auto saved = load_resume_state(resume_path, params, *optimizer);
    VCP_CHECK(saved.batch_in_epoch == 0 || saved.global_batch == to.batch_size, "resume state ", resume_path,
              " stopped inside epoch ", saved.epoch + 1, " with batch size ", saved.global_batch,
              "; resuming it needs the same train.batch_size (found ", to.batch_size, ")");
    if (saved.seed != req.runtime.seed)
      spdlog::warn("resume: the state was written with seed {}, this run has seed {} (data order differs)", saved.seed,
                   req.runtime.seed);
    counters.epoch = saved.epoch;
    counters.batch_in_epoch = saved.batch_in_epoch;
    counters.step = saved.step;
    spdlog::info("resumed from {}: {} epoch(s) and {} step(s) done", resume_path, counters.epoch, counters.step);
    if (main_rank) {
      truncate_jsonl(steps_path, "step", counters.step);
      truncate_jsonl(epochs_path, "epoch", counters.epoch);
    }
  } else {
    if (!to.init_from.empty()) {
      model::load_vcp_checkpoint(*model, to.init_from);
      spdlog::info("initialised the trainable tensors from {}", to.init_from);
    }
    if (main_rank) {  // a fresh run starts fresh logs
      std::ofstream(steps_path, std::ios::trunc);
      std::ofstream(epochs_path, std::ios::trunc);
    }
  }
  {  // every rank starts from rank 0's tensors
    std::vector<at::Tensor> ts;
    for (auto& [n, t] : params) ts.push_back(t);
    dist.broadcast(ts, 0);
  }

  auto save_state = [&](bool epoch_checkpoint) {
    if (!main_rank) return;
    if (epoch_checkpoint)
      model::save_vcp_checkpoint(
          *model, (fs::path(out_dir) / ("checkpoint_epoch_" + std::to_string(counters.epoch) + ".pth")).string());
    model::save_vcp_checkpoint(*model, last_path);
    save_resume_state(resume_path, counters, params, *optimizer);
  };

  TrainSummary summary;
  bool stop = false;
  try {
    for (int64_t epoch = counters.epoch; epoch < to.epochs && !stop; ++epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      loader.start_epoch(epoch);
      int64_t b = 0;
      for (; b < counters.batch_in_epoch; ++b) loader.next();  // resumed inside this epoch
      std::unique_ptr<Progress> bar;
      if (req.progress && main_rank)
        bar = std::make_unique<Progress>("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(to.epochs),
                                         (batches - b) * to.batch_size, "img");
      double sum = 0, sum_raw = 0, sum_post = 0;
      int64_t n = 0, images = 0;
      while (auto batch = loader.next()) {
        const auto r = train_step(*model, *optimizer, batch->images, batch->masks, counters.step + 1, &dist, 0);
        ++counters.step;
        ++b;
        counters.batch_in_epoch = b;
        sum += r.loss;
        sum_raw += r.loss_raw;
        sum_post += r.loss_post;
        ++n;
        images += r.images * world;
        if (main_rank && counters.step % to.log_every == 0)
          append_line(steps_path, {{"step", counters.step},
                                   {"epoch", epoch + 1},
                                   {"loss", r.loss},
                                   {"loss_raw", r.loss_raw},
                                   {"loss_post", r.loss_post},
                                   {"lr", to.lr},
                                   {"lr_temp", to.lr_temp}});
        if (bar) {
          char status[64];
          std::snprintf(status, sizeof status, "loss %.4f", r.loss);
          bar->update(r.images * world, status);
        }
        if (to.max_steps > 0 && counters.step >= to.max_steps) {
          stop = true;
          break;
        }
      }
      if (bar) bar->finish();
      const bool epoch_done = !stop || b >= batches;
      if (epoch_done) {
        counters.epoch = epoch + 1;
        counters.batch_in_epoch = 0;
      }
      EpochRecord rec;
      rec.epoch = epoch + 1;
      rec.loss = n ? sum / n : 0;
      rec.loss_raw = n ? sum_raw / n : 0;
      rec.loss_post = n ? sum_post / n : 0;
      rec.steps = counters.step;
      const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rec.images_per_second = train_seconds > 0 ? images / train_seconds : 0;
      if (epoch_done && main_rank && !val_samples.empty()) {
        auto v = validate_pixel_ap(*model, val_samples, std::max<int64_t>(1, local_batch), to.workers);
        rec.val_ap_raw = v.mean_ap_raw;
        rec.val_ap_post = v.mean_ap_post;
      }
      rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (epoch_done) {
        if (main_rank)
          append_line(epochs_path, {{"epoch", rec.epoch},
                                    {"loss", rec.loss},
                                    {"loss_raw", rec.loss_raw},
                                    {"loss_post", rec.loss_post},
                                    {"val_ap_raw", opt_num(rec.val_ap_raw)},
                                    {"val_ap_post", opt_num(rec.val_ap_post)},
                                    {"seconds", rec.seconds},
                                    {"images_per_second", rec.images_per_second},
                                    {"steps", rec.steps}});
        spdlog::info(
            "epoch {}/{}: loss {:.4f} (raw {:.4f}, post {:.4f}), val pixel AP raw {} post {}, {:.1f} s, {:.2f} img/s",
            rec.epoch, to.epochs, rec.loss, rec.loss_raw, rec.loss_post, fmt_opt(rec.val_ap_raw),
            fmt_opt(rec.val_ap_post), rec.seconds, rec.images_per_second);
        summary.epochs.push_back(rec);
      } else {
        spdlog::info("stopped at max_steps {} inside epoch {} (batch {}/{})", to.max_steps, epoch + 1, b, batches);
      }
      save_state(epoch_done && (counters.epoch % to.save_every == 0 || counters.epoch == to.epochs));
      dist.barrier();
    }
  } catch (const std::exception& e) {
    spdlog::error("training stopped: {}", e.what());
    if (main_rank && fs::exists(last_path)) spdlog::error("the last good checkpoint is {}", last_path);
    throw;
  }
  summary.steps = counters.step;
  summary.epochs_done = counters.epoch;
  summary.stopped_early = stop;
  if (main_rank) summary.last_checkpoint = last_path;
  return summary;
}

}  // namespace vcpclip::train
