// `vcpclip eval`: per-class zero-shot evaluation (see include/vcpclip/app/evaluate.h).
#include "vcpclip/app/evaluate.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "vcpclip/app/eval_png.h"
#include "vcpclip/common/error.h"
#include "vcpclip/common/progress.h"
#include "vcpclip/data/loader.h"
#include "vcpclip/eval/ground_truth.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/npy.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

namespace {

/// The key `vcpclip score` uses for an image: <class>/<defect>/<stem> (eval/ground_truth.h).
eval::GroundTruthItem ground_truth_item(const data::SampleInfo& s) {
  eval::GroundTruthItem it;
  it.cls = s.cls_name;
  it.defect = s.specie_name.empty() ? (s.anomaly ? "anomaly" : "good") : s.specie_name;
  it.stem = fs::path(s.image_path).stem().string();
  it.mask_path = s.mask_path;
  it.label = s.anomaly;
  return it;
}

void write_reports(const EvalRequest& req, const EvalResult& result) {
  nlohmann::json j = eval::report_json(result.report);
  j["run"] = {{"config", req.config_path},
              {"checkpoint", req.checkpoint.empty() ? nlohmann::json(nullptr) : nlohmann::json(req.checkpoint)},
              {"untrained_head", req.checkpoint.empty()},
              {"dataset", req.eval.data->root},
              {"layout", req.eval.data->layout},
              {"image_size", req.model.image_size},
              {"alpha", req.postprocess.alpha},
              {"sigma", req.postprocess.sigma},
              {"topk", req.postprocess.topk},
              {"post_vcp", req.model.post_vcp},
              {"device", req.runtime.device},
              {"images", result.images},
              {"skipped", result.skipped},
              {"seconds", result.seconds},
              {"images_per_second", result.images_per_second}};
  const fs::path dir(req.out_dir);
  fs::create_directories(dir);
  io::write_file_atomically((dir / "metrics.json").string(), j.dump(2) + "\n");
  io::write_file_atomically((dir / "metrics.csv").string(), eval::report_csv(result.report));
  io::write_file_atomically((dir / "metrics.md").string(), eval::report_markdown(result.report));
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
  return req;
}

EvalResult run_eval(const EvalRequest& req) {
  VCP_CHECK(req.eval.data.has_value(), "eval: no test set (an `eval.data` section) given");
  const auto device = apply_runtime(req.runtime);
  auto model = model::build_vcp_clip(req.model, device);
  return run_eval(req, model);
}

EvalResult run_eval(const EvalRequest& req, model::VcpClip model) {
  VCP_CHECK(req.eval.data.has_value(), "eval: no test set (an `eval.data` section) given");
  VCP_CHECK(!req.out_dir.empty(), "eval: no output directory given (--out or eval.out_dir)");
  const auto& data_opts = *req.eval.data;
  const int64_t s = req.model.image_size;
  const auto& pp = req.postprocess;
  const auto device = model->head->prompt_embeddings.device();
  EvalResult result;
  result.report.aupro_mode = eval::to_string(req.eval.metrics.aupro);
  auto warn = [&](const std::string& w) {
    spdlog::warn("eval: {}", w);
    result.report.warnings.push_back(w);
  };

  if (!req.checkpoint.empty()) {
    model::load_vcp_checkpoint(*model, req.checkpoint);
  } else {
    warn(msg("no checkpoint given: evaluating an UNTRAINED VCP head (initialised with seed ", req.model.init_seed,
             "), a baseline, not VCP-CLIP's numbers"));
  }
  model->eval();

  // Test set and per-class accumulators, in dataset class order.
  const auto index = data::read_index(data_opts);
  VCP_CHECK(!index.samples.empty(), "eval: the test set is empty (", index.source, ")");
  std::map<std::string, size_t> per_class;
  for (const auto& si : index.samples) ++per_class[si.cls_name];
  std::vector<std::string> classes = index.classes;
  for (const auto& [c, n] : per_class)
    if (std::find(classes.begin(), classes.end(), c) == classes.end()) classes.push_back(c);
  std::vector<eval::ClassAccumulator> accs;
  std::map<std::string, size_t> acc_of;
  for (const auto& c : classes) {
    acc_of[c] = accs.size();
    accs.emplace_back(c);
    accs.back().reserve(per_class[c], s, s);
  }

  fs::create_directories(req.out_dir);
  const fs::path maps_dir = fs::path(req.out_dir) / "maps";
  std::map<std::string, double> saved_scores;
  std::map<std::string, data::SampleInfo> infos;  // by key, for the PNG export

  auto lopts = data::make_loader_options(data_opts, s, req.eval.batch_size, /*shuffle=*/false, req.runtime.seed);
  data::DataLoader loader(index.samples, lopts);
  loader.start_epoch(0);
  std::optional<Progress> bar;
  if (req.progress) bar.emplace("eval", static_cast<int64_t>(index.samples.size()), "img");
  const auto start = std::chrono::steady_clock::now();
  while (auto batch = loader.next()) {
    auto maps = model->predict_maps(batch->images.to(device));
    // DESIGN §6 (shared with `predict`): without Post-VCP the map and score use M_raw alone.
    at::Tensor pixel, score;
    if (maps.post.defined()) {
      pixel = eval::pixel_map(maps.raw, maps.post, pp.alpha, pp.sigma);
      score = eval::image_score(maps.raw, maps.post, pp.topk);
    } else {
      pixel = eval::gaussian_filter(maps.raw.to(at::kFloat), pp.sigma);
      score = eval::topk_mean(maps.raw, pp.topk);
    }
    pixel = pixel.to(at::kCPU).to(at::kFloat).contiguous();
    score = score.to(at::kCPU).to(at::kDouble).contiguous();
    for (int64_t j = 0; j < batch->size(); ++j) {
      const auto& info = batch->infos[j];
      const auto item = ground_truth_item(info);
      const std::string key = item.key();
      const double sc = score[j].item<double>();
      accs[acc_of.at(info.cls_name)].add(key, pixel[j], batch->masks[j], sc, info.anomaly);
      if (req.eval.save_maps) {
        VCP_CHECK(!saved_scores.count(key), "eval --save-maps: two test images share the key '", key,
                  "' (same class, defect and file stem), the second is ", info.image_path);
        const std::string file = eval::saved_map_path(maps_dir.string(), item);
        fs::create_directories(fs::path(file).parent_path());
        io::write_npy(file, pixel[j].contiguous());
        saved_scores[key] = sc;
      }
      if (req.eval.export_png) infos.emplace(key, info);
    }
    result.images += batch->size();
    if (bar) bar->update(batch->size());
  }
  if (bar) bar->finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.images_per_second = result.seconds > 0 ? result.images / result.seconds : 0.0;
  result.skipped = loader.skipped();
  if (result.skipped) warn(msg(result.skipped, " unreadable test sample(s) skipped (eval.data.skip_bad)"));
  if (req.eval.save_maps) eval::write_scores_json((maps_dir / "scores.json").string(), saved_scores);

  // Per-class min-max normalisation (reference test.py) and metrics.
  eval::MetricsOptions mopts = req.eval.metrics;
  if (req.eval.export_png) mopts.curves = true;
  for (auto& acc : accs) {
    eval::ClassMetrics m;
    if (acc.size() == 0) {
      m.name = acc.name();
      m.error = "no test images";
      warn(msg("class '", acc.name(), "' has no test images; it is reported without metrics"));
    } else {
      acc.normalize();
      m = acc.compute(mopts);
      for (const auto& w : m.warnings) spdlog::warn("eval: {}", w);
    }
    result.report.classes.push_back(std::move(m));
  }
  result.mean = eval::mean_metrics(result.report.classes);

  if (req.eval.export_png) export_eval_pngs(req, accs, infos, result);
  write_reports(req, result);
  spdlog::info("eval: {} images in {} classes ({} skipped) in {:.2f} s ({:.2f} img/s) -> {}", result.images,
               result.report.classes.size(), result.skipped, result.seconds, result.images_per_second, req.out_dir);
  return result;
}

}  // namespace vcpclip::app
