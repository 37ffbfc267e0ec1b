// `vcpclip eval --export-png`: per-image strips and heatmaps, per-class ROC / PRO curve plots
// (layout in include/vcpclip/app/evaluate.h; pictures from eval/visualize.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <opencv2/imgproc.hpp>

#include "vcpclip/app/evaluate.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/visualize.h"

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

}  // namespace

void export_eval_pngs(const EvalRequest& req, const std::vector<eval::ClassAccumulator>& accs,
                      const std::map<std::string, data::SampleInfo>& infos, const EvalResult& result) {
  const fs::path dir = fs::path(req.out_dir) / "imgs";
  int64_t written = 0, plots = 0;
  for (size_t c = 0; c < accs.size(); ++c) {
    const auto& acc = accs[c];
    const auto& m = result.report.classes.at(c);
    if (acc.size() == 0) continue;
    const double t = m.pixel.f1_threshold.value_or(0.5);
    const size_t limit = req.eval.png_limit > 0 ? std::min<size_t>(acc.size(), req.eval.png_limit) : acc.size();
    for (size_t i = 0; i < limit; ++i) {
      const auto& info = infos.at(acc.id(i));
      const int h = static_cast<int>(acc.height(i)), w = static_cast<int>(acc.width(i));
      cv::Mat rgb = data::read_rgb(info.image_path), bgr, resized;
      cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
      cv::resize(bgr, resized, cv::Size(w, h), 0, 0, cv::INTER_AREA);
      // Views of the accumulator's (class-normalised) map and mask; the functions only read them.
      const cv::Mat map(h, w, CV_32F, const_cast<float*>(acc.map(i)));
      const cv::Mat gt(h, w, CV_8U, const_cast<uint8_t*>(acc.mask(i)));
      eval::write_png((dir / (acc.id(i) + ".png")).string(), eval::strip_image(resized, map, gt, t));
      eval::write_png((dir / (acc.id(i) + "_heatmap.png")).string(), eval::jet_overlay(resized, map));
      ++written;
    }
    eval::write_png((dir / acc.name() / "roc.png").string(),
                    eval::plot_curves({{with_metric(acc.name(), "AUROC", m.pixel.auroc), m.pixel.roc}},
                                      acc.name() + ": pixel ROC", "FPR", "TPR", 1.0, true));
    eval::write_png(
        (dir / acc.name() / "pro.png").string(),
        eval::plot_curves({{with_metric(acc.name(), "AUPRO", m.pixel.aupro), m.pixel.pro}},
                          acc.name() + ": per-region overlap", "FPR", "PRO", req.eval.metrics.aupro_fpr_limit));
    plots += 2;
  }
  spdlog::info("eval: {} image strips and {} curve plots -> {}", written, plots, dir.string());
}

}  // namespace vcpclip::app
