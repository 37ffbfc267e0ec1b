// `vcpclip score`: metrics from saved maps + scores.json against a dataset's ground truth.
#include "vcpclip/app/score.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "vcpclip/app/config/run_config.h"
#include "vcpclip/common/error.h"
#include "vcpclip/data/datasets.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/accumulator.h"
#include "vcpclip/eval/ground_truth.h"
#include "vcpclip/io/npy.h"

namespace vcpclip::app {
namespace {

using ScoreMap = std::map<std::string, double>;

/// One image's saved map, checked, into the accumulator (errors name the file or the key).
void add_image(eval::ClassAccumulator& acc, const eval::GroundTruthItem& it, const std::string& maps_dir,
               const ScoreMap& scores) {
  const std::string path = eval::saved_map_path(maps_dir, it);
  std::error_code ec;
  VCP_CHECK(std::filesystem::exists(path, ec), "missing anomaly map ", path, " for image '", it.key(), "'");
  at::Tensor map = io::read_npy(path);
  while (map.dim() > 2 && map.size(0) == 1) map = map.squeeze(0);
  VCP_CHECK(map.dim() == 2 && map.is_floating_point(), "anomaly map ", path, " must be a float32 [S,S] array, found ",
            map.dtype(), " ", map.sizes());
  VCP_CHECK(map.size(0) == map.size(1), "anomaly map ", path, " must be square (S×S), found ", map.sizes());
  const auto s = scores.find(it.key());
  VCP_CHECK(s != scores.end(), "scores.json has no image score for '", it.key(), "'");
  at::Tensor mask = data::load_mask(it.mask_path, map.size(0));
  acc.add(it.key(), map, mask, s->second, it.label);
}

eval::ClassMetrics score_class(const std::string& cls, const std::vector<eval::GroundTruthItem>& items,
                               const ScoreRequest& req, const ScoreMap& scores, const eval::MetricsOptions& opts) {
  VCP_CHECK(!items.empty(), "class '", cls, "' has no test images in the dataset");
  eval::ClassAccumulator acc(cls);
  int64_t skipped = 0;
  for (const auto& it : items) {
    try {
      add_image(acc, it, req.maps_dir, scores);
    } catch (const Error& e) {
      if (!req.skip_bad) throw;
      spdlog::warn("score: --skip-bad: leaving out image '{}': {}", it.key(), e.what());
      ++skipped;
    }
  }
  VCP_CHECK(acc.size() > 0, "all ", items.size(), " images of class '", cls, "' were left out (--skip-bad)");
  acc.normalize();
  eval::ClassMetrics m = acc.compute(opts);
  m.num_skipped = skipped;
  if (skipped) m.warnings.push_back(msg("class '", cls, "': ", skipped, " of ", items.size(), " images left out"));
  return m;
}

/// A class that could not be scored: its error, its images counted as not scored, null metrics.
eval::ClassMetrics failed_class(const std::string& cls, const std::vector<eval::GroundTruthItem>& items,
                                const std::string& error) {
  eval::ClassMetrics m;
  m.name = cls;
  m.num_images = int64_t(items.size());
  for (const auto& it : items) m.num_anomalous += it.label;
  m.error = error;
  spdlog::error("score: class '{}' not scored: {}", cls, error);
  return m;
}

}  // namespace

eval::GroundTruthItem ground_truth_item(const data::SampleInfo& s) {
  eval::GroundTruthItem it;
  it.cls = s.cls_name;
  it.defect = s.specie_name.empty() ? (s.anomaly ? "anomaly" : "good") : s.specie_name;
  it.stem = std::filesystem::path(s.image_path).stem().string();
  it.mask_path = s.mask_path;
  it.label = s.anomaly;
  return it;
}

ScoreResult run_score(const ScoreRequest& req) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunConfig cfg = load_run_config(req.config_path, req.overrides);
  const auto& dopts = cfg.require_eval_data("score");
  eval::MetricsOptions opts = cfg.eval.metrics;
  if (req.aupro) opts.aupro = *req.aupro;
  std::error_code ec;
  VCP_CHECK(std::filesystem::is_directory(req.maps_dir, ec), "maps directory '", req.maps_dir, "' does not exist");
  const auto scores = eval::read_scores_json(req.maps_dir + "/scores.json");
  const data::DatasetIndex index = data::read_index(dopts);

  std::map<std::string, std::vector<eval::GroundTruthItem>> by_class;
  for (const auto& s : index.samples) by_class[s.cls_name].push_back(ground_truth_item(s));

  ScoreResult res;
  res.report.aupro_mode = eval::to_string(opts.aupro);
  for (const auto& cls : index.classes) {
    eval::ClassMetrics m;
    try {
      m = score_class(cls, by_class[cls], req, scores, opts);
    } catch (const Error& e) {
      m = failed_class(cls, by_class[cls], e.what());
    }
    for (const auto& w : m.warnings) spdlog::warn("{}", w);
    res.report.classes.push_back(std::move(m));
  }
  eval::require_complete(res.report, req.allow_partial, req.skip_bad);
  if (!req.out_dir.empty()) eval::write_reports(res.report, req.out_dir);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace vcpclip::app
