// `vcpclip eval`: per-class zero-shot evaluation (see include/vcpclip/app/evaluate.h).
#include "vcpclip/app/evaluate.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "vcpclip/app/batch_pipeline.h"
#include "vcpclip/app/calibrate/calibrate.h"
#include "vcpclip/app/report/eval_html.h"
#include "vcpclip/app/report/eval_png.h"
#include "vcpclip/app/score.h"
#include "vcpclip/common/error.h"
#include "vcpclip/common/progress.h"
#include "vcpclip/common/stage_timer.h"
#include "vcpclip/data/loader.h"
#include "vcpclip/eval/ground_truth.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/npy.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

namespace {

/// The test set in dataset class order, with the number of test images of each class.
struct TestSet {
  data::DatasetIndex index;
  std::vector<std::string> classes;
  std::map<std::string, int64_t> images_of;
};

/// What the model run collects: per-class accumulators (in TestSet::classes order), the saved
/// scores (save_maps) and the samples by key (export_png).
struct Collected {
  std::map<std::string, model::ReferenceMemory> memories;  ///< few-shot: per class (empty: zero-shot)
  std::vector<eval::ClassAccumulator> accs;
  /// few-shot: the same images without the references (zero-shot), for the comparison per class
  std::vector<eval::ClassAccumulator> zero_accs;
  std::map<std::string, size_t> acc_of;
  std::map<std::string, double> saved_scores;
  /// save_maps with references: per image key, the scalars of what the fusion combined (maps/few_shot.json)
  nlohmann::json saved_parts = nlohmann::json::object();
  std::map<std::string, data::SampleInfo> infos;
};

/// One batch on the host, in the order predict_test_set submits it: the fused pixel map and score,
/// with references the zero-shot pixel map and score before the fusion, and with references and
/// save_maps D, D̂ (undefined for a memory without normal statistics) and each image's normal_max.
enum HostSlot : size_t { kPixel, kScore, kZeroPixel, kZeroScore, kFewShotRaw, kFewShotNormalized, kNormalMax, kSlots };

void warn(EvalResult& result, const std::string& w) {
  spdlog::warn("eval: {}", w);
  result.report.warnings.push_back(w);
}

TestSet read_test_set(const data::DataOptions& opts) {
  TestSet ts;
  ts.index = data::read_index(opts);
  VCP_CHECK(!ts.index.samples.empty(), "eval: the test set is empty (", ts.index.source, ")");
  for (const auto& si : ts.index.samples) ++ts.images_of[si.cls_name];
  ts.classes = ts.index.classes;
  for (const auto& [c, n] : ts.images_of)
    if (std::find(ts.classes.begin(), ts.classes.end(), c) == ts.classes.end()) ts.classes.push_back(c);
  return ts;
}

/// A class without test images cannot be scored: refused before the model runs unless allowed.
void check_empty_classes(const TestSet& ts, bool allow_partial) {
  std::string empty;
  int n = 0;
  for (const auto& c : ts.classes)
    if (!ts.images_of.count(c)) empty += (n++ ? ", '" : "'") + c + "'";
  VCP_CHECK(n == 0 || allow_partial, "eval: ", n == 1 ? "class " : "classes ", empty, n == 1 ? " has" : " have",
            " no test images in ", ts.index.source,
            ", so the result would be partial (--allow-partial evaluates the other classes and labels the mean "
            "as partial)");
}

void write_reports(const EvalRequest& req, const EvalResult& result) {
  const nlohmann::json run = {
      {"config", req.config_path},
      {"checkpoint", req.checkpoint.empty() ? nlohmann::json(nullptr) : nlohmann::json(req.checkpoint)},
      {"untrained_head", req.checkpoint.empty()},
      {"dataset", req.eval.data->root},
      {"layout", req.eval.data->layout},
      {"image_size", req.model.input_size},
      {"alpha", req.postprocess.alpha},
      {"sigma", req.postprocess.sigma},
      {"topk", req.postprocess.topk},
      {"post_vcp", req.model.post_vcp},
      {"few_shot", result.few_shot},
      {"device", req.runtime.device},
      {"images", result.images},
      {"skipped", result.skipped},
      {"seconds", result.seconds},
      {"images_per_second", result.images_per_second}};
  eval::write_reports(result.report, req.out_dir, run);
}

/// save_maps with references: beside the fused map, what the fusion combined (maps/<key>.zero_shot.npy,
/// .few_shot_raw.npy, .few_shot_normalized.npy) and its scalars (maps/few_shot.json).
void save_fusion_parts(const fs::path& maps_dir, const std::string& key, int64_t j, const std::vector<at::Tensor>& host,
                       double score, Collected& c) {
  const auto write = [&](HostSlot slot, const char* part) {
    io::write_npy((maps_dir / (key + "." + part + ".npy")).string(), host[slot][j].contiguous());
  };
  write(kZeroPixel, "zero_shot");
  write(kFewShotRaw, "few_shot_raw");
  nlohmann::json parts = {{"score", score},
                          {"zero_shot_score", host[kZeroScore][j].item<double>()},
                          {"few_shot_raw_max", host[kFewShotRaw][j].max().item<double>()}};
  if (host[kFewShotNormalized].defined()) {
    write(kFewShotNormalized, "few_shot_normalized");
    parts["few_shot_normalized_max"] = host[kFewShotNormalized][j].max().item<double>();
    parts["normal_max"] = host[kNormalMax][j].item<double>();
  }
  c.saved_parts[key] = std::move(parts);
}

/// One batch's post-processed maps [B, S, S] float32 and scores [B] float64 on the host (HostSlot),
/// into the accumulators (+ saved maps). The writer thread's part (app/batch_pipeline.h), in batch order.
void add_batch(const EvalRequest& req, const data::Batch& batch, const std::vector<at::Tensor>& host, Collected& c) {
  const fs::path maps_dir = fs::path(req.out_dir) / "maps";
  const auto& pixel = host[kPixel];
  for (int64_t j = 0; j < batch.size(); ++j) {
    const auto& info = batch.infos[j];
    const auto item = ground_truth_item(info);
    const std::string key = item.key();
    const double sc = host[kScore][j].item<double>();
    c.accs[c.acc_of.at(info.cls_name)].add(key, pixel[j], batch.masks[j], sc, info.anomaly);
    if (!c.zero_accs.empty())
      c.zero_accs[c.acc_of.at(info.cls_name)].add(key, host[kZeroPixel][j], batch.masks[j],
                                                  host[kZeroScore][j].item<double>(), info.anomaly);
    if (req.eval.save_maps) {
      VCP_CHECK(!c.saved_scores.count(key), "eval --save-maps: two test images share the key '", key,
                "' (same class, defect and file stem), the second is ", info.image_path);
      const std::string file = eval::saved_map_path(maps_dir.string(), item);
      io::make_directories(fs::path(file).parent_path().string());
      io::write_npy(file, pixel[j].contiguous());
      c.saved_scores[key] = sc;
      if (host[kFewShotRaw].defined()) save_fusion_parts(maps_dir, key, j, host, sc, c);
    }
    if (req.eval.export_png) c.infos.emplace(key, info);
  }
}

/// maps/few_shot.json (save_maps with references): the run's few-shot settings, each class's
/// memory statistics and, per image, the scores and maxima of what the fusion combined.
void write_fusion_parts_json(const EvalRequest& req, const Collected& c, const EvalResult& result) {
  nlohmann::json classes = nlohmann::json::object();
  for (const auto& [cls, mem] : c.memories)
    classes[cls] = {{"k", mem.shots()},
                    {"layers", mem.layers},
                    {"normal_level", mem.normal_level},
                    {"normal_scale", mem.normal_scale},
                    {"normal_max", mem.has_normal_stats() ? nlohmann::json(mem.normal_max) : nlohmann::json(nullptr)},
                    {"images", mem.images}};
  const nlohmann::json j = {{"few_shot", result.few_shot}, {"classes", classes}, {"images", c.saved_parts}};
  io::write_file_atomically((fs::path(req.out_dir) / "maps" / "few_shot.json").string(), j.dump(1) + "\n");
}

/// Runs the model over the whole test set (loader workers, batches of eval.batch_size).
void predict_test_set(const EvalRequest& req, model::Method& model, const TestSet& ts, Collected& c, EvalResult& result,
                      StageTimer& timer) {
  const int64_t s = model->input_size();
  for (const auto& cls : ts.classes) {
    c.acc_of[cls] = c.accs.size();
    c.accs.emplace_back(cls);
    c.accs.back().reserve(size_t(ts.images_of.count(cls) ? ts.images_of.at(cls) : 0), s, s);
    if (!c.memories.empty()) c.zero_accs.emplace_back(cls);
  }
  const auto device = model->device();
  auto lopts = data::make_loader_options(*req.eval.data, s, req.eval.batch_size, /*shuffle=*/false, req.runtime.seed);
  data::DataLoader loader(ts.index.samples, lopts);
  loader.start_epoch(0);
  std::optional<Progress> bar;
  if (req.progress) bar.emplace("eval", static_cast<int64_t>(ts.index.samples.size()), "img");
  const auto start = std::chrono::steady_clock::now();
  PipelineOptions po;
  po.overlap = !req.serial;
  BatchPipeline pipe(device, po, req.profile ? &timer : nullptr);
  while (true) {
    auto wait = timer.scope("waiting for decoded images");
    auto batch = loader.next();
    { auto done = std::move(wait); }
    if (!batch) break;
    pipe.begin_batch();
    std::vector<const model::ReferenceMemory*> refs;
    if (!c.memories.empty())
      for (const auto& info : batch->infos) refs.push_back(&c.memories.at(info.cls_name));
    const auto maps = model->predict_maps(to_device_async(batch->images, device), &timer, refs, batch->classes());
    auto post = timer.scope("post-processing");
    auto out = eval::postprocess_maps(maps.raw, maps.post, req.postprocess, maps.image_score);
    std::vector<at::Tensor> results(kSlots);
    if (!c.zero_accs.empty())
      results[kZeroPixel] = out.pixel.to(at::kFloat), results[kZeroScore] = out.score.to(at::kDouble);
    if (!c.zero_accs.empty() && req.eval.save_maps) {
      results[kFewShotRaw] = maps.few_shot.to(at::kFloat);
      if (maps.few_shot_normalized.defined())
        results[kFewShotNormalized] = maps.few_shot_normalized.to(at::kFloat),
        results[kNormalMax] = maps.few_shot_normal_max.to(at::kDouble);
    }
    fuse_references(out, maps, req.few_shot);
    results[kPixel] = out.pixel.to(at::kFloat), results[kScore] = out.score.to(at::kDouble);
    { auto done = std::move(post); }
    auto b = std::make_shared<data::Batch>(std::move(*batch));
    b->images = at::Tensor();  // not needed by the writer
    pipe.submit(std::move(results), [&, b](std::vector<at::Tensor>& host) {
      for (auto& t : host)
        if (t.defined()) t = t.contiguous();
      add_batch(req, *b, host, c);
      result.images += b->size();
      if (bar) bar->update(b->size());
    });
  }
  pipe.finish();
  result.gpu_busy_share = pipe.device_busy_share();
  if (bar) bar->finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.images_per_second = result.seconds > 0 ? result.images / result.seconds : 0.0;
  result.skipped = loader.skipped();
  if (result.skipped) warn(result, msg(result.skipped, " unreadable test sample(s) skipped (eval.data.skip_bad)"));
  if (req.eval.save_maps)
    eval::write_scores_json((fs::path(req.out_dir) / "maps" / "scores.json").string(), c.saved_scores);
  if (req.eval.save_maps && !c.memories.empty()) write_fusion_parts_json(req, c, result);
}

/// eval with references: each class's AUROCs without them (eval/reference_effect.h); a class that
/// the references make worse by more than 1 point gets a warning in plain words.
void compare_with_zero_shot(const EvalRequest& req, Collected& c, EvalResult& result) {
  eval::MetricsOptions mopts = req.eval.metrics;
  mopts.curves = false;
  for (auto& acc : c.zero_accs) {
    eval::ClassMetrics m;
    m.name = acc.name();
    if (acc.size() > 0) {
      acc.normalize();
      m = acc.compute(mopts);
    }
    result.zero_shot_classes.push_back(std::move(m));
  }
  int64_t k = 0;
  for (const auto& [cls, mem] : c.memories) k = mem.shots();
  result.report.references = eval::reference_effects(result.zero_shot_classes, result.report.classes, k);
  for (const auto& e : result.report.references)
    if (e.worse()) warn(result, e.warning());
}

/// Per-class min-max normalisation (reference test.py) and metrics; a class that cannot be
/// scored keeps its error (and null metrics) for eval::require_complete.
void compute_metrics(const EvalRequest& req, const TestSet& ts, Collected& c, EvalResult& result) {
  eval::MetricsOptions mopts = req.eval.metrics;
  if (req.eval.export_png) mopts.curves = true;
  for (auto& acc : c.accs) {
    const int64_t expected = ts.images_of.count(acc.name()) ? ts.images_of.at(acc.name()) : 0;
    eval::ClassMetrics m;
    m.name = acc.name();
    try {
      VCP_CHECK(expected > 0, "no test images");
      VCP_CHECK(acc.size() > 0, "all ", expected, " test images were unreadable (skipped)");
      acc.normalize();
      m = acc.compute(mopts);
    } catch (const Error& e) {
      m.error = e.what();
      warn(result, msg("class '", acc.name(), "' not evaluated: ", e.what()));
    }
    m.num_skipped = expected - int64_t(acc.size());
    for (const auto& w : m.warnings) spdlog::warn("eval: {}", w);
    result.report.classes.push_back(std::move(m));
  }
  result.mean = eval::mean_metrics(result.report.classes);
  if (!c.zero_accs.empty()) compare_with_zero_shot(req, c, result);
}

/// --profile: the stage table on stderr and in EvalResult::profile.
void print_profile(const EvalRequest& req, const c10::Device& device, const StageTimer& timer, double load_seconds,
                   std::chrono::steady_clock::time_point run_start, EvalResult& result) {
  const double total =
      load_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  result.profile = timer.to_json(total);
  result.profile["gpu_busy_share"] = result.gpu_busy_share ? nlohmann::json(*result.gpu_busy_share) : nullptr;
  std::fprintf(stderr, "eval profile (%s, %s):\n%s%s, %s\n", device.str().c_str(), to_string(req.runtime.precision),
               timer.table(total).c_str(), busy_share_line(result.gpu_busy_share).c_str(),
               req.serial ? "serial loop (--serial)" : "pipelined (writer thread)");
}

}  // namespace

std::string format_eval_table(const EvalResult& result) { return eval::report_table(result.report); }

EvalRequest make_eval_request(const RunConfig& cfg) {
  EvalRequest req;
  req.runtime = cfg.runtime;
  req.model = cfg.require_model("eval");
  cfg.require_eval_data("eval");
  req.postprocess = cfg.postprocess;
  req.eval = cfg.eval;
  req.out_dir = cfg.eval.out_dir;
  req.config_path = cfg.path;
  req.config_text = run_config_file_text(cfg.text);
  req.few_shot = cfg.few_shot;
  return req;
}

EvalResult run_eval(const EvalRequest& req) {
  VCP_CHECK(req.eval.data.has_value(), "eval: no test set (an `eval.data` section) given");
  refuse_auto_precision(req.runtime.precision, "eval");
  const auto start = std::chrono::steady_clock::now();
  const auto device = apply_runtime(req.runtime);
  auto model = model::build_method(req.model, device);
  const double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run_eval(req, model, load);
}

EvalResult run_eval(const EvalRequest& req, model::Method model, double load_seconds) {
  const auto run_start = std::chrono::steady_clock::now();
  VCP_CHECK(req.eval.data.has_value(), "eval: no test set (an `eval.data` section) given");
  VCP_CHECK(!req.out_dir.empty(), "eval: no output directory given (--out or eval.out_dir)");
  refuse_auto_precision(req.runtime.precision, "eval");
  const auto device = model->device();
  StageTimer timer(req.profile, device_sync(device));
  if (load_seconds > 0) timer.add("load (weights, tokenizer)", load_seconds);
  model->set_precision(req.runtime.precision);
  EvalResult result;
  result.report.aupro_mode = eval::to_string(req.eval.metrics.aupro);
  if (!req.checkpoint.empty()) {
    model::load_method_checkpoint(*model, req.checkpoint);
  } else {
    const auto& info = model->info();
    warn(result,
         msg("no checkpoint given: evaluating an UNTRAINED ", info.name == "vcp_clip" ? "VCP" : info.title,
             " head (initialised with seed ", req.model.init_seed, "), a baseline, not ", info.title, "'s numbers"));
  }
  model->eval();
  const TestSet ts = read_test_set(*req.eval.data);
  check_empty_classes(ts, req.allow_partial);
  io::make_directories(req.out_dir);
  if (!req.config_text.empty())
    io::write_file_atomically((fs::path(req.out_dir) / "config.yaml").string(), req.config_text);

  Collected collected;
  if (req.few_shot.enabled()) {
    auto refs = timer.scope("few-shot reference memories");
    std::vector<std::string> tests, classes;
    for (const auto& si : ts.index.samples) tests.push_back(si.image_path);
    for (const auto& c : ts.classes)
      if (ts.images_of.count(c)) classes.push_back(c);
    collected.memories =
        class_memories(*model, req.few_shot, *req.eval.data, classes, tests, run_identity(req.model, req.checkpoint),
                       (fs::path(req.out_dir) / "references").string());
    result.few_shot = few_shot_settings(req.few_shot, collected.memories);
  }
  predict_test_set(req, model, ts, collected, result, timer);
  // --calibration-out (app/calibrate/calibrate.h): the class ranges before the per-class normalisation.
  std::vector<eval::ClassRange> ranges;
  if (!req.calibration_out.empty()) ranges = eval::class_ranges(collected.accs);
  {
    auto metrics = timer.scope("metrics");
    compute_metrics(req, ts, collected, result);
  }
  eval::require_complete(result.report, req.allow_partial, req.eval.data->skip_bad);

  auto writing = timer.scope("writing");
  if (req.eval.export_png) export_eval_pngs(req, collected.accs, collected.infos, result);
  if (!req.calibration_out.empty()) write_eval_calibration(req, ranges, collected.accs, result);
  write_reports(req, result);
  const std::string html = write_eval_report_html(req.out_dir);
  { auto done = std::move(writing); }
  if (req.profile) print_profile(req, device, timer, load_seconds, run_start, result);
  spdlog::info("eval: {} images in {} classes ({} skipped) in {:.2f} s ({:.2f} img/s) -> {} (open {})", result.images,
               result.report.classes.size(), result.skipped, result.seconds, result.images_per_second, req.out_dir,
               html);
  return result;
}

}  // namespace vcpclip::app
