// `vcpclip predict` (DESIGN §6): maps, scores and heatmaps for images (see predict.h).
#include "vcpclip/app/predict.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "vcpclip/app/decider.h"
#include "vcpclip/app/run_config.h"
#include "vcpclip/common/error.h"
#include "vcpclip/common/progress.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/model/vcp_clip.h"

namespace fs = std::filesystem;

namespace vcpclip::app {
namespace {

/// JET heatmap of a min-max normalised map blended over the RGB image resized to S×S; BGR out.
cv::Mat heatmap_overlay(const cv::Mat& rgb, const at::Tensor& map, double alpha) {
  const int s = static_cast<int>(map.size(0));
  auto m = map.to(at::kFloat).contiguous();
  float lo = m.min().item<float>(), hi = m.max().item<float>();
  auto u8 = ((m - lo) / std::max(hi - lo, 1e-12f) * 255.0f).round().clamp(0, 255).to(at::kByte).contiguous();
  cv::Mat gray(s, s, CV_8UC1, u8.data_ptr<uint8_t>());
  cv::Mat color;
  cv::applyColorMap(gray, color, cv::COLORMAP_JET);
  cv::Mat bgr, resized;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  cv::resize(bgr, resized, cv::Size(s, s), 0, 0, cv::INTER_AREA);
  cv::Mat out;
  cv::addWeighted(color, alpha, resized, 1.0 - alpha, 0.0, out);
  return out;
}

bool is_image_ext(const fs::path& p) {
  static const std::set<std::string> exts{".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"};
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return exts.count(e) > 0;
}

}  // namespace

PostprocessOptions parse_postprocess_options(io::ConfigNode& node) {
  PostprocessOptions o;
  o.alpha = node.get<double>("alpha", o.alpha);
  o.sigma = node.get<double>("sigma", o.sigma);
  o.topk = node.get<int64_t>("topk", o.topk);
  node.finish();
  VCP_CHECK(o.alpha >= 0 && o.alpha <= 1, "config key ", node.where("alpha"), ": expected a weight in [0, 1], found ",
            o.alpha);
  VCP_CHECK(o.sigma >= 0, "config key ", node.where("sigma"), ": expected ≥ 0, found ", o.sigma);
  VCP_CHECK(o.topk >= 1, "config key ", node.where("topk"), ": expected ≥ 1, found ", o.topk);
  return o;
}

PredictOptions parse_predict_options(io::ConfigNode& node) {
  PredictOptions o;
  o.batch_size = node.get<int64_t>("batch_size", o.batch_size);
  o.heatmap = node.get<bool>("heatmap", o.heatmap);
  o.heatmap_alpha = node.get<double>("heatmap_alpha", o.heatmap_alpha);
  node.finish();
  VCP_CHECK(o.batch_size >= 1, "config key ", node.where("batch_size"), ": expected ≥ 1, found ", o.batch_size);
  VCP_CHECK(o.heatmap_alpha >= 0 && o.heatmap_alpha <= 1, "config key ", node.where("heatmap_alpha"),
            ": expected a weight in [0, 1], found ", o.heatmap_alpha);
  return o;
}

PredictRequest load_predict_config(const std::string& config_path, const std::vector<std::string>& overrides) {
  // The unified loader checks every section of the file (app/run_config.h).
  const RunConfig cfg = load_run_config(config_path, overrides);
  PredictRequest req;
  req.runtime = cfg.runtime;
  req.model = cfg.require_model("predict");
  req.postprocess = cfg.postprocess;
  req.predict = cfg.predict;
  return req;
}

std::vector<std::string> collect_images(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(in))
        if (e.is_regular_file() && is_image_ext(e.path())) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      VCP_CHECK(!found.empty(), "predict: no images (.png .jpg .jpeg .bmp .tif .tiff) in directory ", in);
      out.insert(out.end(), found.begin(), found.end());
    } else {
      VCP_CHECK(fs::exists(in, ec), "predict: input ", in, " does not exist");
      out.push_back(in);
    }
  }
  return out;
}

std::vector<std::string> unique_stems(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  std::map<std::string, int> seen;
  for (const auto& p : paths) {
    std::string stem = fs::path(p).stem().string();
    int n = ++seen[stem];
    out.push_back(n == 1 ? stem : stem + "_" + std::to_string(n));
  }
  return out;
}

PredictSummary run_predict(const PredictRequest& req) {
  VCP_CHECK(!req.checkpoint.empty(), "predict: no checkpoint given (--checkpoint)");
  VCP_CHECK(!req.output.empty(), "predict: no output directory given (--output)");
  const auto device = apply_runtime(req.runtime);
  const auto images = collect_images(req.inputs);
  const auto stems = unique_stems(images);
  std::optional<Decider> decider;  // --calibration (app/decider.h): checked before the model is built
  if (!req.calibration.empty())
    decider.emplace(req.calibration, req.class_name, req.model, req.postprocess, req.checkpoint);
  auto model = model::build_vcp_clip(req.model, device);
  model::load_vcp_checkpoint(*model, req.checkpoint);
  model->eval();
  fs::create_directories(req.output);
  const int64_t s = req.model.image_size;
  const auto& pp = req.postprocess;

  PredictSummary summary;
  Progress bar("predict", static_cast<int64_t>(images.size()), "img");
  const auto start = std::chrono::steady_clock::now();
  std::size_t next = 0;
  while (next < images.size()) {
    // Read the next batch of readable images.
    std::vector<at::Tensor> tensors;
    std::vector<cv::Mat> rgbs;
    std::vector<std::size_t> ids;
    while (next < images.size() && static_cast<int64_t>(ids.size()) < req.predict.batch_size) {
      const std::size_t i = next++;
      try {
        cv::Mat rgb = data::read_rgb(images[i]);
        tensors.push_back(data::preprocess_image(rgb, s));
        rgbs.push_back(std::move(rgb));
        ids.push_back(i);
      } catch (const vcpclip::Error& e) {
        if (!req.skip_bad) throw;
        spdlog::warn("skipping {}: {}", images[i], e.what());
        summary.skipped.emplace_back(images[i], e.what());
        bar.update(1);
      }
    }
    if (ids.empty()) continue;
    auto batch = at::stack(tensors).to(device);
    auto maps = model->predict_maps(batch);
    auto raw = maps.raw.to(at::kCPU);
    auto post = maps.post.defined() ? maps.post.to(at::kCPU) : at::Tensor();
    // Without Post-VCP the blend is M_raw alone.
    auto blend = post.defined() ? eval::blend_maps(raw, post, pp.alpha) : raw.to(at::kFloat);
    auto final_maps = eval::gaussian_filter(blend, pp.sigma).contiguous();
    for (std::size_t j = 0; j < ids.size(); ++j) {
      const std::size_t i = ids[j];
      PredictedImage r;
      r.path = images[i];
      r.stem = stems[i];
      r.score_raw = eval::topk_mean(raw[j], pp.topk).item<double>();
      r.score_post = post.defined() ? eval::topk_mean(post[j], pp.topk).item<double>() : 0.0;
      r.score = r.score_raw + r.score_post;
      auto m = final_maps[j];
      r.map_min = m.min().item<float>();
      r.map_max = m.max().item<float>();
      const std::string base = (fs::path(req.output) / r.stem).string();
      io::write_npy(base + "_map.npy", m);
      if (req.save_branches) {
        io::write_npy(base + "_raw.npy", raw[j].contiguous());
        if (post.defined()) io::write_npy(base + "_post.npy", post[j].contiguous());
      }
      if (req.predict.heatmap) {
        cv::Mat vis = heatmap_overlay(rgbs[j], m, req.predict.heatmap_alpha);
        VCP_CHECK(cv::imwrite(base + ".png", vis), "predict: cannot write ", base, ".png");
      }
      if (decider) r.decision = decider->apply(m, r.score_raw, r.score_post, rgbs[j].size(), base + "_mask.png");
      summary.images.push_back(r);
    }
    bar.update(static_cast<int64_t>(ids.size()));
  }
  bar.finish();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  summary.images_per_second = summary.seconds > 0 ? summary.images.size() / summary.seconds : 0.0;

  nlohmann::json j;
  j["checkpoint"] = req.checkpoint;
  j["image_size"] = s;
  j["alpha"] = pp.alpha;
  j["sigma"] = pp.sigma;
  j["topk"] = pp.topk;
  j["post_vcp"] = req.model.post_vcp;
  j["images"] = nlohmann::json::array();
  for (const auto& r : summary.images) {
    nlohmann::json e = {{"path", r.path},
                        {"stem", r.stem},
                        {"score", r.score},
                        {"score_raw", r.score_raw},
                        {"score_post", r.score_post},
                        {"map_min", r.map_min},
                        {"map_max", r.map_max}};
    if (r.decision) e.update(decision_json(*r.decision, r.stem + "_mask.png"));
    j["images"].push_back(e);
  }
  if (decider) j["calibration"] = decider->describe();
  j["skipped"] = nlohmann::json::array();
  for (const auto& [p, e] : summary.skipped) j["skipped"].push_back({{"path", p}, {"error", e}});
  io::write_file_atomically((fs::path(req.output) / "scores.json").string(), j.dump(2) + "\n");
  spdlog::info("predict: {} images ({} skipped) in {:.2f} s ({:.2f} img/s) → {}", summary.images.size(),
               summary.skipped.size(), summary.seconds, summary.images_per_second, req.output);
  return summary;
}

}  // namespace vcpclip::app
