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
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/train/trainer.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace vcpclip::train {

void apply_deterministic(TrainRequest& r) {
  if (!r.train.deterministic) return;
  r.model.prompt_dropout = 0.0;
  r.data.augment = false;
  r.data.mosaic_p = 0.0;
  r.train.shuffle = false;
}

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

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

/// The files of a run under train.out_dir.
struct RunFiles {
  fs::path dir;
  std::string resume, last, steps, epochs, log;
  explicit RunFiles(const std::string& out_dir)
      : dir(out_dir),
        resume((dir / "resume.pt").string()),
        last((dir / "last.pth").string()),
        steps((dir / "steps.jsonl").string()),
        epochs((dir / "epochs.jsonl").string()),
        log((dir / "train.log").string()) {}
  std::string epoch_checkpoint(int64_t epoch) const {
    return (dir / ("checkpoint_epoch_" + std::to_string(epoch) + ".pth")).string();
  }
};

void append_line(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path, std::ios::app);
  VCP_CHECK(out, "cannot append to ", path);
  out << j.dump() << "\n";
  out.flush();
  VCP_CHECK(out, "cannot write ", path, " (disk full?)");
}

/// Drops lines whose `key` exceeds `max` (a resumed run re-logs what came after its state) and
/// torn lines of a killed run; rewritten atomically.
void truncate_jsonl(const std::string& path, const char* key, int64_t max) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
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
  io::write_file_atomically(path, kept.str());
}

nlohmann::json opt_num(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

std::string fmt_opt(const std::optional<double>& v) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", *v);
  return buf;
}

/// The training samples after the data check: a broken set is refused, or with train.data.skip_bad
/// its bad samples are left out.
std::vector<data::SampleInfo> training_samples(const TrainRequest& req, bool main_rank, std::string* source) {
  auto index = data::read_index(req.data);
  *source = index.source;
  VCP_CHECK(!index.samples.empty(), "training data ", index.source, " has no samples in split '", req.data.split, "'");
  data::CheckOptions co;
  co.workers = std::max(1, req.data.workers);
  co.progress = req.progress && main_rank;
  auto report = data::check_index(index, req.data.split, co);
  if (!report.ok()) {
    if (!req.data.skip_bad)
      fail("training data ", index.source,
           " has problems (fix them, or set train.data.skip_bad: true to leave the bad samples out):\n",
           report.format());
    const size_t dropped = data::drop_bad(index.samples, report);
    spdlog::warn("skip_bad: left out {} bad sample(s) of {}:\n{}", dropped, index.source, report.format());
    VCP_CHECK(!index.samples.empty(), "training data ", index.source, ": no usable sample left after skip_bad");
  }
  return index.samples;
}

std::vector<data::SampleInfo> validation_samples(const TrainRequest& req, bool main_rank) {
  VCP_CHECK(req.train.val_classes.empty() || req.val_data,
            "train.val_classes lists validation classes but there is no train.val_data section saying where they "
            "are");
  if (!req.val_data || !main_rank) return {};
  auto vd = *req.val_data;
  if (!req.train.val_classes.empty()) vd.classes = req.train.val_classes;
  auto samples = data::read_samples(vd);
  spdlog::info("validation: {} images of {} class(es)", samples.size(), data::class_names(samples).size());
  return samples;
}

/// One rank's training run: model, optimizer, loader, counters, and the files rank 0 writes.
class Run {
 public:
  Run(const TrainRequest& req, model::Method model)
      : req_(req),
        to_(req_.train),
        model_(std::move(model)),
        dist_(dist_env_from_environment(), std::chrono::seconds(3600), model_->device()),
        files_(to_.out_dir) {}

  TrainSummary train();

 private:
  void open_files();
  void make_loader();
  void restore();
  void restore_resume_state();
  bool max_steps_reached() const { return to_.max_steps > 0 && counters_.step >= to_.max_steps; }
  void train_epoch(int64_t epoch);
  void log_step(const StepResult& r, int64_t epoch);
  void maybe_write_resume_state();
  void finish_epoch(int64_t epoch);
  void save_state(bool epoch_checkpoint);
  void write_resume_state();

  TrainRequest req_;
  TrainOptions& to_;
  model::Method model_;
  Distributed dist_;
  RunFiles files_;
  std::unique_ptr<FileLog> file_log_;
  std::unique_ptr<data::DataLoader> loader_;
  std::vector<data::SampleInfo> val_samples_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  NamedParams params_;
  TrainCounters counters_;
  Clock::time_point last_resume_write_ = Clock::now();
  double loader_wait_ = 0;  ///< seconds the epoch's loop waited for the loader (this invocation)
  TrainSummary summary_;
};

void Run::open_files() {
  VCP_CHECK(to_.batch_size % dist_.world_size() == 0, "train.batch_size ", to_.batch_size,
            " must be divisible by WORLD_SIZE=", dist_.world_size(),
            " (each rank trains on batch_size / WORLD_SIZE images)");
  if (dist_.is_main()) {
    io::make_directories(files_.dir.string());
    for (const auto& p : io::remove_stale_temp_files(files_.dir.string()))
      spdlog::info("removed {}, left by a killed run", p);
  }
  dist_.barrier();
  if (dist_.is_main()) file_log_ = std::make_unique<FileLog>(files_.log);
  spdlog::info("{}", dist_.describe());  // the backend choice, in train.log too (train/distributed.h)
  if (dist_.is_main() && !req_.config_text.empty()) {
    spdlog::info("effective config:\n{}", req_.config_text);
    io::write_file_atomically((files_.dir / "config.yaml").string(), req_.config_text);
  }
}

void Run::make_loader() {
  std::string source;
  auto samples = training_samples(req_, dist_.is_main(), &source);
  val_samples_ = validation_samples(req_, dist_.is_main());
  const int world = dist_.world_size();
  auto lo = data::make_loader_options(req_.data, model_->input_size(), to_.batch_size / world, to_.shuffle,
                                      req_.runtime.seed);
  lo.rank = dist_.rank();
  lo.world_size = world;
  if (!lo.augment) lo.mosaic_p = 0.0;  // the mosaic is one of the augmentations
  const size_t n = samples.size();
  loader_ = std::make_unique<data::DataLoader>(std::move(samples), lo);
  spdlog::info("training on {} images ({} classes) of {}: {} batches of {} per epoch{}, augment {}, shuffle {}", n,
               data::class_names(loader_->samples()).size(), source, loader_->batches_per_epoch(), to_.batch_size,
               world > 1 ? " (over " + std::to_string(world) + " ranks)" : std::string(), lo.augment, lo.shuffle);
}

void Run::restore_resume_state() {
  if (!to_.init_from.empty())
    spdlog::warn("--resume: train.init_from {} is ignored (the run's own state is used)", to_.init_from);
  const auto saved = load_resume_state(files_.resume, params_, *optimizer_);
  const bool mid_epoch = saved.batch_in_epoch > 0;
  VCP_CHECK(!mid_epoch || (saved.global_batch == to_.batch_size && saved.world_size == dist_.world_size()),
            "resume state ", files_.resume, " stopped inside epoch ", saved.epoch + 1, " with batch size ",
            saved.global_batch, " on ", saved.world_size,
            " rank(s); resuming it needs the same train.batch_size and "
            "WORLD_SIZE (found ",
            to_.batch_size, " on ", dist_.world_size(), ")");
  VCP_CHECK(saved.batch_in_epoch <= loader_->batches_per_epoch(), "resume state ", files_.resume, " stopped at batch ",
            saved.batch_in_epoch, " of epoch ", saved.epoch + 1, " but the training set now has ",
            loader_->batches_per_epoch(), " batches per epoch (was the dataset changed?)");
  if (saved.seed != req_.runtime.seed)
    spdlog::warn("resume: the state was written with seed {}, this run has seed {} (data order differs)", saved.seed,
                 req_.runtime.seed);
  counters_.epoch = saved.epoch;
  counters_.batch_in_epoch = saved.batch_in_epoch;
  counters_.step = saved.step;
  counters_.sums = saved.sums;
  spdlog::info("resumed from {}: {} epoch(s) and {} step(s) done{}", files_.resume, counters_.epoch, counters_.step,
               mid_epoch ? msg(", inside epoch ", counters_.epoch + 1, " at batch ", counters_.batch_in_epoch) : "");
  if (dist_.is_main()) {
    truncate_jsonl(files_.steps, "step", counters_.step);
    truncate_jsonl(files_.epochs, "epoch", counters_.epoch);
  }
}

/// --resume: the run's own state; else init_from (if any), fresh logs and a first resume state,
/// so that a run killed at any moment from here on can be resumed.
void Run::restore() {
  model_->train();
  optimizer_ = make_optimizer(*model_, to_);
  params_ = trainable_tensors(*model_);
  counters_.seed = req_.runtime.seed;
  counters_.world_size = dist_.world_size();
  counters_.global_batch = to_.batch_size;
  if (req_.resume) {
    restore_resume_state();
  } else {
    if (!to_.init_from.empty()) {
      model::load_method_checkpoint(*model_, to_.init_from);
      spdlog::info("initialised the trainable tensors from {}", to_.init_from);
    }
    if (dist_.is_main()) {
      io::write_file_atomically(files_.steps, "");
      io::write_file_atomically(files_.epochs, "");
    }
  }
  std::vector<at::Tensor> ts;  // every rank starts from rank 0's tensors
  for (auto& [n, t] : params_) ts.push_back(t);
  dist_.broadcast(ts, 0);
  if (!req_.resume) write_resume_state();
}

void Run::write_resume_state() {
  if (!dist_.is_main()) return;
  const auto t0 = Clock::now();
  save_resume_state(files_.resume, counters_, params_, *optimizer_);
  last_resume_write_ = Clock::now();
  std::error_code ec;
  spdlog::debug("wrote {} (step {}, {:.1f} MB) in {:.2f} s", files_.resume, counters_.step,
                double(fs::file_size(files_.resume, ec)) / 1e6, seconds_since(t0));
}

/// Inside an epoch (the epoch end writes it anyway): every resume_every_steps steps, and after
/// the first step ending resume_every_seconds after the last write.
void Run::maybe_write_resume_state() {
  if (counters_.batch_in_epoch >= loader_->batches_per_epoch()) return;
  const bool by_steps = to_.resume_every_steps > 0 && counters_.step % to_.resume_every_steps == 0;
  const bool by_time = to_.resume_every_seconds > 0 && seconds_since(last_resume_write_) >= to_.resume_every_seconds;
  if (by_steps || by_time) write_resume_state();
}

void Run::log_step(const StepResult& r, int64_t epoch) {
  if (!dist_.is_main() || counters_.step % to_.log_every != 0) return;
  append_line(files_.steps, {{"step", counters_.step},
                             {"epoch", epoch + 1},
                             {"loss", r.loss},
                             {"loss_raw", r.loss_raw},
                             {"loss_post", r.loss_post},
                             {"lr", to_.lr},
                             {"lr_temp", to_.lr_temp}});
}

/// Trains epoch `epoch` from the loader position in the counters until its end or max_steps.
void Run::train_epoch(int64_t epoch) {
  const auto t0 = Clock::now();
  const double seconds_before = counters_.sums.seconds;
  const int world = dist_.world_size();
  loader_->start_epoch(epoch, counters_.batch_in_epoch);
  std::unique_ptr<Progress> bar;
  if (req_.progress && dist_.is_main())
    bar = std::make_unique<Progress>("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(to_.epochs),
                                     (loader_->batches_per_epoch() - counters_.batch_in_epoch) * to_.batch_size, "img");
  while (!max_steps_reached()) {
    const auto wait0 = Clock::now();
    auto batch = loader_->next();
    loader_wait_ += seconds_since(wait0);  // the device idles meanwhile: train_step ends synchronised
    if (!batch) break;
    const auto r =
        train_step(*model_, *optimizer_, batch->images, batch->masks, counters_.step + 1, &dist_, 0, batch->classes());
    ++counters_.step;
    counters_.batch_in_epoch = loader_->position();
    auto& s = counters_.sums;
    s.loss += r.loss;
    s.loss_raw += r.loss_raw;
    s.loss_post += r.loss_post;
    s.batches += 1;
    s.images += r.images * world;
    s.seconds = seconds_before + seconds_since(t0);
    log_step(r, epoch);
    if (bar) {
      char status[64];
      std::snprintf(status, sizeof status, "loss %.4f", r.loss);
      bar->update(r.images * world, status);
    }
    maybe_write_resume_state();
  }
  if (bar) bar->finish();
}

/// The epoch record (from the running sums, so a resumed epoch logs what an uninterrupted one
/// would), validation, epochs.jsonl.
void Run::finish_epoch(int64_t epoch) {
  const auto t0 = Clock::now();
  const EpochSums s = counters_.sums;
  counters_.epoch = epoch + 1;
  counters_.batch_in_epoch = 0;
  counters_.sums = EpochSums{};
  EpochRecord rec;
  rec.epoch = epoch + 1;
  const double n = double(std::max<int64_t>(1, s.batches));
  rec.loss = s.loss / n;
  rec.loss_raw = s.loss_raw / n;
  rec.loss_post = s.loss_post / n;
  rec.steps = counters_.step;
  rec.images_per_second = s.seconds > 0 ? double(s.images) / s.seconds : 0;
  if (dist_.is_main() && !val_samples_.empty()) {
    const auto v = validate_pixel_ap(*model_, val_samples_, std::max<int64_t>(1, to_.batch_size / dist_.world_size()),
                                     req_.val_data->workers);
    rec.val_ap_raw = v.mean_ap_raw;
    rec.val_ap_post = v.mean_ap_post;
  }
  rec.seconds = s.seconds + seconds_since(t0);
  rec.loader_wait_seconds = loader_wait_;
  loader_wait_ = 0;
  if (dist_.is_main())
    append_line(files_.epochs, {{"epoch", rec.epoch},
                                {"loss", rec.loss},
                                {"loss_raw", rec.loss_raw},
                                {"loss_post", rec.loss_post},
                                {"val_ap_raw", opt_num(rec.val_ap_raw)},
                                {"val_ap_post", opt_num(rec.val_ap_post)},
                                {"seconds", rec.seconds},
                                {"images_per_second", rec.images_per_second},
                                {"loader_wait_seconds", rec.loader_wait_seconds},
                                {"steps", rec.steps}});
  spdlog::info(
      "epoch {}/{}: loss {:.4f} (raw {:.4f}, post {:.4f}), val pixel AP raw {} post {}, {:.1f} s, {:.2f} img/s, "
      "waited {:.1f} s for the loader",
      rec.epoch, to_.epochs, rec.loss, rec.loss_raw, rec.loss_post, fmt_opt(rec.val_ap_raw), fmt_opt(rec.val_ap_post),
      rec.seconds, rec.images_per_second, rec.loader_wait_seconds);
  summary_.epochs.push_back(rec);
}

/// Rank 0: checkpoint_epoch_N.pth (when asked), last.pth, then resume.pt, each atomically.
void Run::save_state(bool epoch_checkpoint) {
  if (!dist_.is_main()) return;
  if (epoch_checkpoint) model::save_method_checkpoint(*model_, files_.epoch_checkpoint(counters_.epoch));
  model::save_method_checkpoint(*model_, files_.last);
  write_resume_state();
}

TrainSummary Run::train() {
  open_files();
  make_loader();
  restore();
  const int64_t batches = loader_->batches_per_epoch();
  try {
    for (int64_t epoch = counters_.epoch; epoch < to_.epochs; ++epoch) {
      train_epoch(epoch);
      const bool epoch_done = counters_.batch_in_epoch >= batches;
      if (epoch_done) {
        finish_epoch(epoch);
      } else {
        spdlog::info("stopped at max_steps {} inside epoch {} (batch {}/{})", to_.max_steps, epoch + 1,
                     counters_.batch_in_epoch, batches);
      }
      save_state(epoch_done && (counters_.epoch % to_.save_every == 0 || counters_.epoch == to_.epochs));
      dist_.barrier();
      if (max_steps_reached()) break;
    }
  } catch (const std::exception& e) {
    spdlog::error("training stopped: {}", e.what());
    std::error_code ec;
    if (dist_.is_main() && fs::exists(files_.resume, ec))
      spdlog::error("the last saved state is {} (continue with --resume); the last checkpoint {}", files_.resume,
                    fs::exists(files_.last, ec) ? files_.last : std::string("was not written yet"));
    throw;
  }
  summary_.steps = counters_.step;
  summary_.epochs_done = counters_.epoch;
  summary_.stopped_early = max_steps_reached();
  if (dist_.is_main()) summary_.last_checkpoint = files_.last;
  return summary_;
}

}  // namespace

TrainSummary run_training(const TrainRequest& request) {
  TrainRequest req = request;
  refuse_auto_precision(req.runtime.precision, "train");
  apply_deterministic(req);
  const auto device = apply_runtime(req.runtime);
  auto model = model::build_method(req.model, device);
  model->set_precision(req.runtime.precision);  // towers in bf16/fp16, or CUDA autocast (runtime.h)
  seed_everything(req.runtime.seed);            // dropout stream (resume restores its saved state instead)
  Run run(req, std::move(model));
  return run.train();
}

}  // namespace vcpclip::train
