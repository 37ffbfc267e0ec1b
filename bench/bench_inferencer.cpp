// Per-image cost of vcpclip::Inferencer::predict against the batch-of-1 forward pass it wraps,
// and against `vcpclip predict` (app::run_predict) per image, side by side in one process.
//   build/bench_inferencer [--model tiny|mid] [--images N] [--rounds R] [--threads T] [--input-size P]
// Each round times, image by image and back to back on the same N images:
//   forward     VcpClip::predict_maps on the preprocessed [1,3,S,S] tensor (nothing else)
//   preprocess  data::to_rgb + data::preprocess_image (PIL-exact bicubic resize, CLIP normalisation)
//   postprocess eval::postprocess_maps (gaussian, top-k) on the forward's maps
//   inferencer  Inferencer::predict(cv::Mat) without and with a calibration (decision, mask, regions),
//               and per image its time minus the forward's time just before it
//   predict     run_predict on the N images as PNG files, batch 1 and batch 8 (decode, maps, .npy, heatmap)
// and prints the median over rounds (min-max) in ms per image. tiny: the golden fixture backbone
// (S = 64); mid: a ViT-B-16-like tower at width 384 (S = 224), random weights (bench.cpp's "mid").
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/decider.h"
#include "vcpclip/app/predict.h"
#include "vcpclip/build_info.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/sha256.h"
#include "vcpclip/model/vcp_clip.h"
#include "vcpclip/vcpclip.h"

using namespace vcpclip;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string model = "tiny";
  int images = 16, rounds = 5, threads = 0, input_size = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") a.model = v;
    if (k == "--images") a.images = std::stoi(v);
    if (k == "--rounds") a.rounds = std::stoi(v);
    if (k == "--threads") a.threads = std::stoi(v);
    if (k == "--input-size") a.input_size = std::stoi(v);
  }
  return a;
}

/// Writes backbone, config and checkpoint for the chosen model into `dir`; returns the config path.
std::string prepare_model(const Args& a, const fs::path& dir, std::string* checkpoint, model::ModelOptions* opts) {
  const std::string fixture = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/vcp/";
  model::ModelOptions& o = *opts;
  std::string weights;
  if (a.model == "tiny") {
    o.backbone = fixture + "tiny_vcp_clip.json";
    weights = fixture + "tiny_vcp_clip.pt";
    o.image_size = 64;
    o.features_list = {2, 3, 4};
    *checkpoint = fixture + "tiny_vcp.pth";
  } else {
    o.backbone = (dir / "mid.json").string();
    std::ofstream(o.backbone) << R"({"embed_dim": 256, "vision_cfg": {"image_size": 224, "layers": 6, "width": 384,
 "patch_size": 16}, "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 4}})";
    o.image_size = 224;
    o.features_list = {2, 4, 5, 6};
    *checkpoint = (dir / "mid.pth").string();
    model::save_vcp_checkpoint(*model::build_vcp_clip(o, c10::Device(c10::kCPU)), *checkpoint);
  }
  o.weights = weights;
  const fs::path cfg = dir / "bench.yaml";
  std::ofstream(cfg) << "runtime:\n  threads: " << a.threads
                     << "\n  log_level: warn\nmodel:\n  backbone: " << o.backbone << "\n  weights: \"" << weights
                     << "\"\n  image_size: " << o.image_size << "\n  features_list: [" << o.features_list[0] << ", "
                     << o.features_list[1] << ", " << o.features_list[2]
                     << (o.features_list.size() > 3 ? ", " + std::to_string(o.features_list[3]) : "") << "]\n";
  return cfg.string();
}

/// A calibration for timing only (one class, arbitrary range), valid for this model and checkpoint.
std::string write_calibration(const fs::path& dir, const model::ModelOptions& o, const std::string& checkpoint) {
  eval::Calibration c;
  c.method = "quantile", c.created = "bench", c.version = VCPCLIP_VERSION;
  c.checkpoint = checkpoint, c.checkpoint_sha256 = io::sha256_file(checkpoint);
  c.settings = app::calibration_settings(o, app::PostprocessOptions{});
  eval::ClassCalibration k;
  k.name = "bench", k.images = 1, k.score_min = 0, k.score_max = 2, k.map_min = 0, k.map_max = 1;
  k.image_threshold = 0.5, k.pixel_threshold = 0.6;
  c.classes.push_back(k);
  const std::string path = (dir / "calibration.json").string();
  eval::write_calibration(c, path);
  return path;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
double ms_per_image(int n, F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / n;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  const fs::path dir = fs::temp_directory_path() / ("vcpclip_bench_inferencer_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string ckpt;
  model::ModelOptions o;
  const std::string cfg = prepare_model(a, dir, &ckpt, &o);
  const std::string cal = write_calibration(dir, o, ckpt);
  const int s = int(o.image_size), p = a.input_size > 0 ? a.input_size : s;
  std::vector<cv::Mat> images;
  std::vector<std::string> files;
  for (int i = 0; i < a.images; ++i) {
    cv::Mat m(p, p, CV_8UC3);
    cv::randu(m, 0, 256);
    images.push_back(m);
    files.push_back((dir / ("img" + std::to_string(i) + ".png")).string());
    cv::imwrite(files.back(), m);
  }
  const Inferencer plain({cfg, ckpt}), calibrated({cfg, ckpt, cal});
  auto model = model::build_vcp_clip(o, c10::Device(c10::kCPU));
  model::load_vcp_checkpoint(*model, ckpt);
  model->eval();
  std::vector<at::Tensor> tensors;
  for (const auto& m : images)
    tensors.push_back(data::preprocess_image(data::to_rgb(m, data::ChannelOrder::kBGR, "bench"), s).unsqueeze(0));
  plain.predict(images[0]);  // warm-up
  // Per image, back to back (so that the load of a shared machine hits all columns alike):
  // forward, preprocess, postprocess, Inferencer::predict, calibrated Inferencer::predict.
  std::map<std::string, std::vector<double>> t;
  for (int r = 0; r < a.rounds; ++r) {
    for (int i = 0; i < a.images; ++i) {
      model::MethodMaps maps;
      const double fwd = ms_per_image(1, [&] { maps = model->predict_maps(tensors[i]); });
      t["forward"].push_back(fwd);
      t["preprocess"].push_back(ms_per_image(
          1, [&] { data::preprocess_image(data::to_rgb(images[i], data::ChannelOrder::kBGR, "bench"), s); }));
      t["postprocess"].push_back(
          ms_per_image(1, [&] { eval::postprocess_maps(maps.raw, maps.post, eval::PostprocessOptions{}); }));
      const double inf = ms_per_image(1, [&] { plain.predict(images[i]); });
      t["inferencer"].push_back(inf);
      t["inferencer - forward"].push_back(inf - fwd);
      t["inferencer+calibration"].push_back(ms_per_image(1, [&] { calibrated.predict(images[i]); }));
    }
    for (int batch : {1, 8}) {
      app::PredictFlags flags;
      flags.checkpoint = ckpt, flags.inputs = files, flags.out_dir = (dir / "out").string(), flags.progress = false;
      auto req = app::make_predict_request(app::load_run_config(cfg), flags);
      req.predict.batch_size = batch;
      const auto summary = app::run_predict(req);
      t["predict batch " + std::to_string(batch)].push_back(1000.0 * summary.seconds / a.images);
    }
  }
  std::printf("model %s (S = %d), input %dx%d, %d images x %d rounds, %d intra-op threads\n", a.model.c_str(), s, p, p,
              a.images, a.rounds, at::get_num_threads());
  std::printf("%-26s %12s %20s\n", "ms per image", "median", "min - max");
  for (const char* k : {"forward", "preprocess", "postprocess", "inferencer", "inferencer - forward",
                        "inferencer+calibration", "predict batch 1", "predict batch 8"}) {
    const auto& v = t[k];
    std::printf("%-26s %12.3f %9.3f - %8.3f\n", k, median(v), *std::min_element(v.begin(), v.end()),
                *std::max_element(v.begin(), v.end()));
  }
  fs::remove_all(dir);
  return 0;
}
