// Calibration end to end on a synthetic MVTec-layout target set with the tiny golden VCP fixture:
// `eval --calibration-out` then `predict --calibration` reproduces eval's F1-optimal decisions
// exactly (image and pixel confusion matrices equal to an independent F1 maximisation over eval's
// saved scores and maps), the quantile method on normal images, and the refusals (another
// checkpoint, another config, unknown class) with their exact messages.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "../model/vcp_fixture.h"
#include "support/synth_set.h"
#include "support/test_util.h"
#include "vcpclip/app/calibrate/calibrate.h"
#include "vcpclip/app/decider.h"
#include "vcpclip/app/predict.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/ground_truth.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/io/sha256.h"

using namespace vcpclip;
using vcpclip::testing::error_of;
namespace fx = vcp_fixture;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) { return vcpclip::testing::fresh_temp_dir("vcpclip_calibrate_" + name); }

/// 2 target classes × 10 test images (4 normal, 6 anomalous) + 4 train/good, 64 px; once per process.
const fs::path& synth_root() {
  static const fs::path root = vcpclip::testing::make_synth_target_set("vcpclip_calibrate_synth", 2, 10, 4);
  return root;
}

app::EvalRequest eval_request(const fs::path& out, const std::string& split = "test") {
  app::EvalRequest r;
  r.runtime.threads = 1;
  r.model = fx::options();
  r.checkpoint = fx::path("tiny_vcp.pth");
  data::DataOptions d;
  d.layout = "mvtec", d.root = synth_root().string(), d.split = split, d.workers = 1;
  r.eval.data = d;
  r.eval.batch_size = 3;
  r.out_dir = out.string();
  r.progress = false;
  return r;
}

app::PredictRequest predict_request(const std::vector<std::string>& inputs, const fs::path& out,
                                    const std::string& calibration, const std::string& cls) {
  app::PredictRequest r;
  r.runtime.threads = 1;
  r.model = fx::options();
  r.checkpoint = fx::path("tiny_vcp.pth");
  r.inputs = inputs;
  r.out_dir = out.string();
  r.predict.batch_size = 2;  // other batches than eval's 3
  r.predict.heatmap = false;
  r.calibration = calibration;
  r.class_name = cls;
  return r;
}

/// Eval's F1-optimal image decisions recomputed from its saved scores: the lowest threshold t
/// among the class-normalised scores with the largest F1 = 2PR / (P + R); "ng" when score ≥ t.
eval::Confusion f1_optimal_images(const std::vector<double>& raw, const std::vector<int>& labels) {
  std::vector<double> s = raw;
  const double lo = *std::min_element(s.begin(), s.end()), hi = *std::max_element(s.begin(), s.end());
  for (auto& v : s) v = (v - lo) / (hi - lo);
  double best = -1, best_t = 0;
  for (double t : s) {
    double tp = 0, fp = 0, pos = 0;
    for (size_t i = 0; i < s.size(); ++i) tp += s[i] >= t && labels[i], fp += s[i] >= t && !labels[i], pos += labels[i];
    const double p = tp / (tp + fp), r = tp / pos, f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;
    if (f1 > best || (f1 == best && t < best_t)) best = f1, best_t = t;
  }
  eval::Confusion c;
  for (size_t i = 0; i < s.size(); ++i) (labels[i] ? (s[i] >= best_t ? c.tp : c.fn) : (s[i] >= best_t ? c.fp : c.tn))++;
  return c;
}

void count(eval::Confusion& c, const cv::Mat& decided, const at::Tensor& truth) {
  ASSERT_EQ(decided.rows, truth.size(0));
  ASSERT_EQ(decided.cols, truth.size(1));
  auto t = truth.accessor<float, 2>();
  for (int y = 0; y < decided.rows; ++y)
    for (int x = 0; x < decided.cols; ++x) {
      const bool on = decided.at<uint8_t>(y, x) != 0, gt = t[y][x] > 0.5f;
      (gt ? (on ? c.tp : c.fn) : (on ? c.fp : c.tn))++;
    }
}

struct Calibrated {
  fs::path dir;
  eval::Calibration cal;
  app::EvalResult result;
};

const Calibrated& calibrated() {
  static const Calibrated c = [] {
    Calibrated out;
    out.dir = fresh_dir("eval");
    auto req = eval_request(out.dir);
    req.eval.save_maps = true;
    req.calibration_out = (out.dir / "calibration.json").string();
    out.result = app::run_eval(req);
    out.cal = eval::read_calibration(req.calibration_out);
    return out;
  }();
  return c;
}

/// The test images of one class as eval keys them (eval/ground_truth.h).
std::vector<eval::GroundTruthItem> class_items(const data::DatasetIndex& index, const std::string& cls,
                                               std::vector<std::string>* paths) {
  std::vector<eval::GroundTruthItem> items;
  for (const auto& s : index.samples) {
    if (s.cls_name != cls) continue;
    paths->push_back(s.image_path);
    items.push_back({s.cls_name, s.specie_name, fs::path(s.image_path).stem().string(), s.mask_path, s.anomaly});
  }
  return items;
}

}  // namespace

TEST(Calibrate, PredictReproducesEvalsF1OptimalDecisions) {
  const auto& c = calibrated();
  ASSERT_EQ(c.cal.classes.size(), 2u);
  EXPECT_EQ(c.cal.method, "f1");
  EXPECT_EQ(c.cal.checkpoint_sha256, io::sha256_file(fx::path("tiny_vcp.pth")));
  const auto saved = eval::read_scores_json((c.dir / "maps" / "scores.json").string());
  const auto index = data::read_index(*eval_request(c.dir).eval.data);
  for (size_t k = 0; k < 2; ++k) {
    const auto& cls = c.cal.classes[k];
    const auto& metrics = c.result.report.classes[k];
    ASSERT_EQ(cls.name, metrics.name);
    std::vector<std::string> paths;
    const auto items = class_items(index, cls.name, &paths);
    const auto out = fresh_dir("predict_" + cls.name);
    const auto summary = app::run_predict(predict_request(paths, out, (c.dir / "calibration.json").string(), cls.name));
    ASSERT_EQ(summary.images.size(), paths.size());
    // predict's decisions and masks against the ground truth.
    eval::Confusion images, pixels;
    std::vector<double> eval_scores;
    std::vector<int> labels;
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& r = summary.images[i];
      ASSERT_EQ(r.path, paths[i]);
      ASSERT_TRUE(r.decision);
      const bool ng = r.decision->anomalous;
      (items[i].label ? (ng ? images.tp : images.fn) : (ng ? images.fp : images.tn))++;
      count(pixels, cv::imread((out / (r.stem + "_mask.png")).string(), cv::IMREAD_UNCHANGED),
            data::load_mask(items[i].mask_path, 64));
      eval_scores.push_back(saved.at(items[i].key()));
      labels.push_back(items[i].label);
    }
    // Images: the same confusion matrix as eval's F1-optimal decisions, recomputed independently.
    EXPECT_EQ(images, f1_optimal_images(eval_scores, labels)) << cls.name;
    EXPECT_EQ(images, *cls.image_confusion) << cls.name;
    EXPECT_NEAR(images.f1(), *metrics.image.f1_max, 1e-12) << cls.name;
    // Pixels: eval's saved maps, normalised over the class (float32), at eval's F1 threshold.
    std::vector<at::Tensor> maps;
    float lo = INFINITY, hi = -INFINITY;
    for (const auto& it : items) {
      maps.push_back(io::read_npy(eval::saved_map_path((c.dir / "maps").string(), it)));
      lo = std::min(lo, maps.back().min().item<float>());
      hi = std::max(hi, maps.back().max().item<float>());
    }
    eval::Confusion eval_pixels;
    for (size_t i = 0; i < items.size(); ++i) {
      const at::Tensor v = ((maps[i] - lo) / (hi - lo)).contiguous();
      cv::Mat decided(64, 64, CV_8UC1);
      auto a = v.accessor<float, 2>();
      for (int y = 0; y < 64; ++y)
        for (int x = 0; x < 64; ++x) decided.at<uint8_t>(y, x) = a[y][x] >= *metrics.pixel.f1_threshold ? 255 : 0;
      count(eval_pixels, decided, data::load_mask(items[i].mask_path, 64));
    }
    EXPECT_EQ(pixels, eval_pixels) << cls.name;
    EXPECT_EQ(pixels, *cls.pixel_confusion) << cls.name;
    EXPECT_NEAR(pixels.f1(), *metrics.pixel.f1_max, 1e-6) << cls.name;
    // scores.json carries the decision, the centred score, the mask and its regions.
    std::ifstream in(out / "scores.json");
    const auto j = nlohmann::json::parse(in);
    EXPECT_EQ(j.at("calibration").at("class").get<std::string>(), cls.name);
    for (const auto& e : j.at("images")) {
      const bool ng = e.at("decision").get<std::string>() == "ng";
      EXPECT_EQ(ng, e.at("normalized_score").get<double>() >= 0.5);
      int64_t area = 0;
      for (const auto& reg : e.at("regions")) area += reg.at("area").get<int64_t>();
      EXPECT_EQ(area, e.at("mask_area").get<int64_t>());
      EXPECT_TRUE(fs::is_regular_file(out / e.at("mask").get<std::string>()));
    }
  }
}

TEST(Calibrate, PredictRefusesAnotherCheckpointOrConfig) {
  const auto& c = calibrated();
  const std::string cal = (c.dir / "calibration.json").string();
  const auto out = fresh_dir("refuse");
  const std::string image = fx::path("image_1.png");
  // Another checkpoint: a copy with one more byte (refused before it is even loaded).
  const auto other = out / "other.pth";
  fs::copy_file(fx::path("tiny_vcp.pth"), other);
  std::ofstream(other, std::ios::app) << "x";
  auto req = predict_request({image}, out, cal, c.cal.classes[0].name);
  req.checkpoint = other.string();
  EXPECT_EQ(error_of([&] { app::run_predict(req); }),
            "calibration " + cal + " was made for another checkpoint: " + fx::path("tiny_vcp.pth") + " with SHA-256 " +
                io::sha256_file(fx::path("tiny_vcp.pth")) + ", but this run uses " + other.string() + " with SHA-256 " +
                io::sha256_file(other.string()) + "; calibrate again for it (vcpclip calibrate)");
  // Another config.
  req = predict_request({image}, out, cal, c.cal.classes[0].name);
  req.postprocess.sigma = 4;
  req.model.input_size = 32;
  EXPECT_EQ(error_of([&] { app::run_predict(req); }),
            "calibration " + cal +
                " was made for another config: model.image_size: 64 in the calibration, 32 in this run; "
                "postprocess.sigma: 8.0 in the calibration, 4.0 in this run; calibrate again with this config "
                "(vcpclip calibrate)");
  // A class it does not have; no class with two.
  req = predict_request({image}, out, cal, "bolt");
  EXPECT_EQ(error_of([&] { app::run_predict(req); }), "calibration " + cal + " has no class 'bolt' (it has: " +
                                                          c.cal.classes[0].name + ", " + c.cal.classes[1].name + ")");
  req.class_name = "";
  EXPECT_EQ(error_of([&] { app::run_predict(req); }), "calibration " + cal + " has 2 classes (" +
                                                          c.cal.classes[0].name + ", " + c.cal.classes[1].name +
                                                          "): choose one with --class");
  EXPECT_FALSE(fs::exists(out / "scores.json"));
}

TEST(Calibrate, QuantileMethodOnNormalImages) {
  const auto dir = fresh_dir("quantile");
  app::CalibrateRequest req;
  req.eval = eval_request(dir, "train");  // train/good: normal images only
  req.method = "quantile";
  req.image_quantile = 0.5;
  req.pixel_quantile = 0.99;
  const auto cal = app::run_calibrate(req);
  EXPECT_EQ(cal.method, "quantile");
  EXPECT_EQ(*cal.image_quantile, 0.5);
  EXPECT_EQ(cal.data.at("split").get<std::string>(), "train");
  ASSERT_EQ(cal.classes.size(), 2u);
  EXPECT_EQ(eval::to_json(eval::read_calibration(app::calibration_path(dir.string()))), eval::to_json(cal));
  // On its own 4 normal images, the median threshold flags the upper two of each class.
  const auto index = data::read_index(*req.eval.eval.data);
  for (const auto& cls : cal.classes) {
    std::vector<std::string> paths;
    for (const auto& s : index.samples)
      if (s.cls_name == cls.name) paths.push_back(s.image_path);
    ASSERT_EQ(paths.size(), 4u);
    const auto summary =
        app::run_predict(predict_request(paths, fresh_dir("qpred"), app::calibration_path(dir.string()), cls.name));
    int ng = 0;
    for (const auto& r : summary.images) ng += r.decision->anomalous;
    EXPECT_EQ(ng, 2) << cls.name;
  }
  req.image_quantile = 1.5;
  EXPECT_EQ(error_of([&] { app::run_calibrate(req); }), "calibrate: --image-quantile must be in [0, 1], found 1.5");
  req.image_quantile = 0.5;
  req.eval.checkpoint = "";
  EXPECT_EQ(error_of([&] { app::run_calibrate(req); }), "calibrate: no checkpoint given (--checkpoint)");
}

// calibration.json records its precision; used in another precision, predict warns with both names
// (and still decides); auto is refused by calibrate and eval, whose results must mean what the config says.
TEST(Calibrate, RecordsItsPrecisionAndWarnsWhenUsedInAnother) {
  const auto& c = calibrated();
  const std::string cal = (c.dir / "calibration.json").string();
  EXPECT_EQ(c.cal.precision, "fp32");
  EXPECT_EQ(app::calibration_precision_warning(cal, "fp32", Precision::kFp32), "");
  EXPECT_EQ(app::calibration_precision_warning(cal, "fp32", Precision::kBf16),
            "calibration " + cal +
                " was made in fp32 and this run uses bf16: its thresholds were set on fp32 maps; decisions near a "
                "threshold may differ (calibrate in bf16, or run in fp32)");
  EXPECT_EQ(app::calibration_precision_warning(cal, "", Precision::kFp32), "");
  EXPECT_EQ(app::calibration_precision_warning(cal, "", Precision::kBf16),
            "calibration " + cal +
                " does not record its precision (made by an older vcpclip, normally in fp32) and this run uses bf16: "
                "decisions near a threshold may differ (calibrate again, or run in fp32)");
  // predict in bf16 with the fp32 calibration: the warning is logged, the decisions are made.
  std::ostringstream logged;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(logged);
  spdlog::default_logger()->sinks().push_back(sink);
  auto req = predict_request({fx::path("image_1.png")}, fresh_dir("bf16_cal"), cal, c.cal.classes[0].name);
  req.runtime.precision = Precision::kBf16;
  const auto summary = app::run_predict(req);
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
  ASSERT_EQ(summary.images.size(), 1u);
  EXPECT_TRUE(summary.images[0].decision.has_value());
  EXPECT_NE(logged.str().find(app::calibration_precision_warning(cal, "fp32", Precision::kBf16)), std::string::npos)
      << logged.str();
  // A file without the key (older vcpclip) reads as "not recorded".
  auto j = eval::to_json(c.cal);
  j.erase("precision");
  EXPECT_EQ(eval::calibration_from_json(j, "F").precision, "");
  j["precision"] = 3;
  EXPECT_EQ(error_of([&] { eval::calibration_from_json(j, "F"); }),
            "calibration file F: key 'precision' has the wrong type (found 3)");
}

TEST(Calibrate, AutoPrecisionIsRefusedAndBf16IsRecorded) {
  const auto dir = fresh_dir("precision");
  app::CalibrateRequest req;
  req.eval = eval_request(dir, "train");
  req.method = "quantile";
  req.eval.runtime.precision = Precision::kAuto;
  EXPECT_EQ(error_of([&] { app::run_calibrate(req); }),
            "calibrate: runtime.precision auto is for predict and the Inferencer; calibrate needs an explicit "
            "precision (fp32, the default, or bf16/fp16/autocast) so that its results mean what the config says");
  EXPECT_EQ(error_of([&] { app::run_eval(req.eval); }),
            "eval: runtime.precision auto is for predict and the Inferencer; eval needs an explicit precision (fp32, "
            "the default, or bf16/fp16/autocast) so that its results mean what the config says");
  EXPECT_FALSE(fs::exists(app::calibration_path(dir.string())));
  req.eval.runtime.precision = Precision::kBf16;
  EXPECT_EQ(app::run_calibrate(req).precision, "bf16");
  EXPECT_EQ(eval::read_calibration(app::calibration_path(dir.string())).precision, "bf16");
}
