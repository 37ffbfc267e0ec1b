// `vcpclip eval --export-png`: strips, heatmaps, curve plots and index.json (see app/report/eval_png.h).
#include "vcpclip/app/report/eval_png.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/visualize.h"
#include "vcpclip/io/atomic_file.h"

namespace fs = std::filesystem;

namespace vcpclip::app {
namespace {

std::string with_metric(const std::string& name, const char* metric, const eval::Metric& v) {
  char buf[64];
  if (v)
    std::snprintf(buf, sizeof buf, " (%s %.1f)", metric, 100.0 * *v);
  else
    std::snprintf(buf, sizeof buf, " (%s n/a)", metric);
  return name + buf;
}

/// Which images of a class get a strip: best and worst anomalous first, then dataset order.
struct Selection {
  std::vector<size_t> images;
  std::optional<size_t> best, worst;
  std::vector<eval::Metric> auroc;  ///< per image (anomalous ones)
};

Selection select_strips(const eval::ClassAccumulator& acc, int64_t limit) {
  Selection s;
  s.auroc.resize(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) {
    if (!acc.label(i)) continue;
    s.auroc[i] = image_pixel_auroc(acc, i);
    if (!s.auroc[i]) continue;
    if (!s.best || *s.auroc[i] > *s.auroc[*s.best]) s.best = i;
    if (!s.worst || *s.auroc[i] < *s.auroc[*s.worst]) s.worst = i;
  }
  const size_t n = limit > 0 ? std::min<size_t>(acc.size(), static_cast<size_t>(limit)) : acc.size();
  for (const auto& pick : {s.best, s.worst})
    if (pick && s.images.size() < std::max<size_t>(n, 2) &&
        std::find(s.images.begin(), s.images.end(), *pick) == s.images.end())
      s.images.push_back(*pick);
  for (size_t i = 0; i < acc.size() && s.images.size() < n; ++i)
    if (std::find(s.images.begin(), s.images.end(), i) == s.images.end()) s.images.push_back(i);
  return s;
}

void write_strip(const fs::path& dir, const eval::ClassAccumulator& acc, size_t i, const data::SampleInfo& info,
                 double threshold) {
  const int h = static_cast<int>(acc.height(i)), w = static_cast<int>(acc.width(i));
  cv::Mat rgb = data::read_rgb(info.image_path), bgr, resized;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  cv::resize(bgr, resized, cv::Size(w, h), 0, 0, cv::INTER_AREA);
  // Views of the accumulator's (class-normalised) map and mask; the functions only read them.
  const cv::Mat map(h, w, CV_32F, const_cast<float*>(acc.map(i)));
  const cv::Mat gt(h, w, CV_8U, const_cast<uint8_t*>(acc.mask(i)));
  eval::write_png((dir / (acc.id(i) + ".png")).string(), eval::strip_image(resized, map, gt, threshold));
  eval::write_png((dir / (acc.id(i) + "_heatmap.png")).string(), eval::jet_overlay(resized, map));
}

nlohmann::json pick_json(const Selection& s, const std::optional<size_t>& pick, const eval::ClassAccumulator& acc) {
  if (!pick) return nullptr;
  return {{"strip", "imgs/" + acc.id(*pick) + ".png"}, {"pixel_auroc", *s.auroc[*pick]}};
}

}  // namespace

eval::Metric image_pixel_auroc(const eval::ClassAccumulator& acc, size_t i) {
  const int64_t h = acc.height(i), w = acc.width(i);
  const int64_t step = std::max<int64_t>(1, std::max(h, w) / 64);
  std::vector<double> scores;
  std::vector<uint8_t> labels;
  for (int64_t y = 0; y < h; y += step)
    for (int64_t x = 0; x < w; x += step) {
      scores.push_back(acc.map(i)[y * w + x]);
      labels.push_back(acc.mask(i)[y * w + x] ? 1 : 0);
    }
  std::vector<std::string> ignored;
  return eval::binary_metrics(scores.data(), labels.data(), scores.size(), 0.0, "", &ignored).auroc;
}

void export_eval_pngs(const EvalRequest& req, const std::vector<eval::ClassAccumulator>& accs,
                      const std::map<std::string, data::SampleInfo>& infos, const EvalResult& result) {
  const fs::path dir = fs::path(req.out_dir) / "imgs";
  int64_t written = 0, plots = 0;
  nlohmann::json index = {{"classes", nlohmann::json::array()}};
  for (size_t c = 0; c < accs.size(); ++c) {
    const auto& acc = accs[c];
    const auto& m = result.report.classes.at(c);
    if (acc.size() == 0) continue;
    const Selection sel = select_strips(acc, req.eval.png_limit);
    nlohmann::json strips = nlohmann::json::array();
    for (size_t i : sel.images) {
      const auto& info = infos.at(acc.id(i));
      write_strip(dir, acc, i, info, m.pixel.f1_threshold.value_or(0.5));
      strips.push_back({{"strip", "imgs/" + acc.id(i) + ".png"},
                        {"heatmap", "imgs/" + acc.id(i) + "_heatmap.png"},
                        {"defect", info.specie_name},
                        {"anomalous", acc.label(i) != 0},
                        {"score", acc.score(i)},
                        {"pixel_auroc", sel.auroc[i] ? nlohmann::json(*sel.auroc[i]) : nlohmann::json(nullptr)}});
    }
    written += static_cast<int64_t>(sel.images.size());
    eval::write_png((dir / acc.name() / "roc.png").string(),
                    eval::plot_curves({{with_metric(acc.name(), "AUROC", m.pixel.auroc), m.pixel.roc}},
                                      acc.name() + ": pixel ROC", "FPR", "TPR", 1.0, true));
    eval::write_png(
        (dir / acc.name() / "pro.png").string(),
        eval::plot_curves({{with_metric(acc.name(), "AUPRO", m.pixel.aupro), m.pixel.pro}},
                          acc.name() + ": per-region overlap", "FPR", "PRO", req.eval.metrics.aupro_fpr_limit));
    plots += 2;
    index["classes"].push_back({{"name", acc.name()},
                                {"roc", "imgs/" + acc.name() + "/roc.png"},
                                {"pro", "imgs/" + acc.name() + "/pro.png"},
                                {"best", pick_json(sel, sel.best, acc)},
                                {"worst", pick_json(sel, sel.worst, acc)},
                                {"strips", strips}});
  }
  io::write_file_atomically((dir / "index.json").string(), index.dump(2) + "\n");
  spdlog::info("eval: {} image strips and {} curve plots -> {} (index.json: best and worst strip per class)", written,
               plots, dir.string());
}

}  // namespace vcpclip::app
