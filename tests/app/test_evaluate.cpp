// `eval`: the whole evaluation on a tiny synthetic MVTec-layout set with the tiny golden VCP
// fixture (backbone + reference-layout checkpoint): reference-pipeline maps and scores, reports,
// saved maps re-scored by `score` to the same numbers, PNG export, bad images, empty classes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "../model/vcp_fixture.h"
#include "support/synth_set.h"
#include "support/test_util.h"
#include "vcpclip/app/evaluate.h"
#include "vcpclip/app/score.h"
#include "vcpclip/common/error.h"
#include "vcpclip/eval/ground_truth.h"
#include "vcpclip/io/npy.h"

using vcpclip::testing::error_of;

using namespace vcpclip;
namespace fx = vcp_fixture;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("vcpclip_eval_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// 2 target classes × 6 test images (64 px), generated once per process.
const fs::path& synth_root() {
  static const fs::path root = vcpclip::testing::make_synth_target_set("vcpclip_eval_synth", 2, 6, 0);
  return root;
}

app::EvalRequest request(const fs::path& data_root, const fs::path& out) {
  app::EvalRequest r;
  r.runtime.threads = 1;
  r.model = fx::options();
  r.checkpoint = fx::path("tiny_vcp.pth");
  data::DataOptions d;
  d.layout = "mvtec";
  d.root = data_root.string();
  d.workers = 1;
  r.eval.data = d;
  r.eval.batch_size = 4;  // 12 images: full batches and a class boundary inside a batch
  r.out_dir = out.string();
  r.progress = false;
  return r;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

void expect_unit_or_null(const nlohmann::json& row, const std::string& what) {
  for (const char* k : {"pixel_auroc", "pixel_aupro", "pixel_ap", "pixel_f1_max", "pixel_iou", "image_auroc",
                        "image_ap", "image_f1_max"}) {
    ASSERT_TRUE(row.contains(k)) << what << " lacks " << k;
    const auto& v = row.at(k);
    if (v.is_null()) continue;
    ASSERT_TRUE(v.is_number()) << what << " " << k;
    EXPECT_GE(v.get<double>(), 0.0) << what << " " << k;
    EXPECT_LE(v.get<double>(), 1.0) << what << " " << k;
  }
}

}  // namespace

TEST(Evaluate, EndToEndReportsMapsScoreAndPngs) {
  auto out = fresh_dir("e2e");
  auto req = request(synth_root(), out);
  req.eval.save_maps = true;
  req.eval.export_png = true;
  auto res = app::run_eval(req, model::build_vcp_clip(req.model, c10::Device(c10::kCPU)));
  EXPECT_EQ(res.images, 12);
  EXPECT_EQ(res.skipped, 0);
  const auto classes = data::synthetic_class_names("target", 2);
  ASSERT_EQ(res.report.classes.size(), 2u);

  // metrics.json: every class and the mean, values in [0, 1] or null.
  auto j = read_json(out / "metrics.json");
  ASSERT_EQ(j.at("classes").size(), 2u);
  for (size_t c = 0; c < 2; ++c) {
    EXPECT_EQ(j["classes"][c].at("name").get<std::string>(), classes[c]);
    EXPECT_EQ(j["classes"][c].at("num_images").get<int>(), 6);
    expect_unit_or_null(j["classes"][c], classes[c]);
    EXPECT_FALSE(j["classes"][c].at("pixel_auroc").is_null()) << "the synthetic set has defects in every class";
  }
  expect_unit_or_null(j.at("mean"), "mean");
  EXPECT_EQ(j.at("run").at("images").get<int>(), 12);
  EXPECT_TRUE(fs::is_regular_file(out / "metrics.csv"));
  EXPECT_TRUE(fs::is_regular_file(out / "metrics.md"));
  ASSERT_TRUE(res.mean.pixel.auroc.has_value());
  EXPECT_NEAR(*res.mean.pixel.auroc, (*res.report.classes[0].pixel.auroc + *res.report.classes[1].pixel.auroc) / 2,
              1e-12);

  // The saved maps and scores.json reproduce the metrics through `score`.
  const fs::path cfg = out / "score.yaml";
  std::ofstream(cfg) << "eval:\n  data:\n    layout: mvtec\n    root: " << synth_root().string() << "\n";
  app::ScoreRequest sr;
  sr.maps_dir = (out / "maps").string();
  sr.config_path = cfg.string();
  auto scored = app::run_score(sr);
  ASSERT_EQ(scored.report.classes.size(), 2u);
  for (size_t c = 0; c < 2; ++c) {
    const auto& a = res.report.classes[c];
    const auto& b = scored.report.classes[c];
    ASSERT_TRUE(b.error.empty()) << b.error;
    for (const auto& col : eval::metric_columns()) {
      auto va = col.get(a), vb = col.get(b);
      ASSERT_EQ(va.has_value(), vb.has_value()) << classes[c] << " " << col.key;
      if (va) {
        EXPECT_NEAR(*va, *vb, 1e-6) << classes[c] << " " << col.key;
      }
    }
  }
  auto scores = eval::read_scores_json((out / "maps" / "scores.json").string());
  EXPECT_EQ(scores.size(), 12u);

  // PNGs: a strip and a heatmap per image, ROC and PRO curves per class, all decodable.
  for (const auto& [key, score] : scores) {
    for (const std::string suffix : {".png", "_heatmap.png"}) {
      const auto p = out / "imgs" / (key + suffix);
      cv::Mat m = cv::imread(p.string(), cv::IMREAD_UNCHANGED);
      EXPECT_FALSE(m.empty()) << p;
    }
  }
  for (const auto& c : classes)
    for (const std::string f : {"roc.png", "pro.png"}) {
      cv::Mat m = cv::imread((out / "imgs" / c / f).string());
      EXPECT_FALSE(m.empty()) << c << "/" << f;
    }
  fs::remove_all(out);
}

TEST(Evaluate, MapsAndScoresFollowTheReferencePipeline) {
  // The 3 golden images as a folder-layout class: saved maps and scores are the reference's.
  auto root = fresh_dir("golden_data");
  fs::create_directories(root / "fx" / "test" / "good");
  fs::create_directories(root / "fx" / "test" / "bad");
  fs::create_directories(root / "fx" / "ground_truth" / "bad");
  fs::copy_file(fx::path("image_0.png"), root / "fx" / "test" / "good" / "image_0.png");
  for (int i : {1, 2}) {
    const std::string stem = "image_" + std::to_string(i);
    fs::copy_file(fx::path(stem + ".png"), root / "fx" / "test" / "bad" / (stem + ".png"));
    cv::Mat img = cv::imread(fx::path(stem + ".png"));
    cv::Mat mask = cv::Mat::zeros(img.rows, img.cols, CV_8UC1);
    cv::rectangle(mask, cv::Rect(img.cols / 4, img.rows / 4, img.cols / 3, img.rows / 3), cv::Scalar(255), cv::FILLED);
    cv::imwrite((root / "fx" / "ground_truth" / "bad" / (stem + "_mask.png")).string(), mask);
  }
  auto out = fresh_dir("golden_out");
  auto req = request(root, out);
  req.eval.data->layout = "folder";
  req.eval.batch_size = 2;
  req.eval.save_maps = true;
  auto res = app::run_eval(req, model::build_vcp_clip(req.model, c10::Device(c10::kCPU)));
  ASSERT_EQ(res.images, 3);
  auto final_map = fx::load("final_map"), score = fx::load("score");
  auto scores = eval::read_scores_json((out / "maps" / "scores.json").string());
  const char* keys[] = {"fx/good/image_0", "fx/bad/image_1", "fx/bad/image_2"};
  for (int i = 0; i < 3; ++i) {
    auto map = io::read_npy((out / "maps" / (std::string(keys[i]) + ".npy")).string());
    EXPECT_LE(fx::max_abs_diff(map, final_map[i]), 1e-4) << keys[i];
    EXPECT_NEAR(scores.at(keys[i]), score[i].item<double>(), 1e-4) << keys[i];
  }
  fs::remove_all(out);
  fs::remove_all(root);
}

TEST(Evaluate, CorruptImageFailsWithItsNameOrIsSkipped) {
  auto root = fresh_dir("corrupt_data");
  fs::copy(synth_root(), root, fs::copy_options::recursive);
  const auto cls = data::synthetic_class_names("target", 2)[1];
  fs::path bad;
  for (const auto& e : fs::directory_iterator(root / cls / "test" / "good")) {
    bad = e.path();
    break;
  }
  { std::ofstream(bad, std::ios::trunc) << "this is not a png"; }
  auto out = fresh_dir("corrupt_out");
  auto req = request(root, out);
  auto model = model::build_vcp_clip(req.model, c10::Device(c10::kCPU));
  EXPECT_EQ(error_of([&] { app::run_eval(req, model); }),
            "cannot decode image file (not an image or corrupt): " + bad.string());
  EXPECT_FALSE(fs::exists(out / "metrics.json"));

  req.eval.data->skip_bad = true;
  auto res = app::run_eval(req, model);
  EXPECT_EQ(res.skipped, 1);
  EXPECT_EQ(res.images, 11);
  ASSERT_EQ(res.report.classes.size(), 2u);
  EXPECT_EQ(res.report.classes[1].num_images, 5);
  EXPECT_EQ(res.report.classes[1].num_skipped, 1);
  EXPECT_TRUE(fs::is_regular_file(out / "metrics.json"));
  const auto j = read_json(out / "metrics.json");
  EXPECT_EQ(j.at("run").at("skipped").get<int>(), 1);
  EXPECT_FALSE(j.at("complete").get<bool>());  // skipped images are a partial result, labelled so
  EXPECT_EQ(j.at("mean").at("label"), "mean over 11 of 12 images");
  EXPECT_EQ(j.at("incomplete"), "1 of 12 images skipped (unreadable)");
  fs::remove_all(out);
  fs::remove_all(root);
}

TEST(Evaluate, EmptyClassFailsUnlessPartialAllowedAndUntrainedHeadWarns) {
  auto root = fresh_dir("empty_data");
  fs::copy(synth_root(), root, fs::copy_options::recursive);
  fs::create_directories(root / "aaa_empty" / "test" / "good");
  auto out = fresh_dir("empty_out");
  auto req = request(root, out);
  req.checkpoint.clear();  // untrained (seeded) head
  auto model = model::build_vcp_clip(req.model, c10::Device(c10::kCPU));
  // A class that cannot be scored is a failure, found before the model runs ...
  EXPECT_EQ(error_of([&] { app::run_eval(req, model); }),
            "eval: class 'aaa_empty' has no test images in MVTec AD layout at " + root.string() +
                ", so the result would be partial (--allow-partial evaluates the other classes and labels the "
                "mean as partial)");
  EXPECT_FALSE(fs::exists(out / "metrics.json"));
  // ... unless partial results are allowed: then the mean says what it covers.
  req.allow_partial = true;
  auto res = app::run_eval(req, model);
  ASSERT_EQ(res.report.classes.size(), 3u);
  EXPECT_EQ(res.report.classes[0].name, "aaa_empty");
  EXPECT_EQ(res.report.classes[0].error, "no test images");
  EXPECT_EQ(eval::coverage(res.report).mean_label(), "mean over 2 of 3 classes");
  EXPECT_FALSE(res.report.classes[0].pixel.auroc.has_value());
  EXPECT_TRUE(res.report.classes[1].pixel.auroc.has_value());
  auto has = [&](const std::string& part) {
    for (const auto& w : res.report.warnings)
      if (w.find(part) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("UNTRAINED VCP head (initialised with seed 333)"));
  EXPECT_TRUE(has("class 'aaa_empty' not evaluated: no test images"));
  auto j = read_json(out / "metrics.json");
  EXPECT_EQ(j.at("classes").size(), 3u);
  EXPECT_FALSE(j.at("complete").get<bool>());
  EXPECT_EQ(j.at("mean").at("label"), "mean over 2 of 3 classes");
  EXPECT_TRUE(j.at("classes")[0].at("pixel_auroc").is_null());
  EXPECT_TRUE(j.at("run").at("untrained_head").get<bool>());
  expect_unit_or_null(j.at("mean"), "mean");
  fs::remove_all(out);
  fs::remove_all(root);
}

TEST(Evaluate, RequestFromRunConfigNeedsModelAndData) {
  const auto p = fs::temp_directory_path() / ("vcpclip_eval_cfg_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(p) << "model:\n  backbone: configs/models/tiny.json\n";
  auto cfg = app::load_run_config(p.string());
  EXPECT_EQ(error_of([&] { app::make_eval_request(cfg); }), "eval needs an `eval.data` section in " + p.string() +
                                                                " (the test set: eval.data.layout and eval.data.root)");
  auto cfg2 = app::load_run_config(p.string(), {"eval.data.layout=mvtec", "eval.data.root=/x", "eval.out_dir=/o"});
  auto req = app::make_eval_request(cfg2);
  EXPECT_EQ(req.out_dir, "/o");
  EXPECT_EQ(req.eval.data->root, "/x");
  fs::remove(p);
}

// eval's pipelined loop (app/batch_pipeline.h) gives the serial loop's metrics and saved maps, with
// a slow writer (injected delay) behind the model.
TEST(Evaluate, PipelinedMetricsAndMapsEqualTheSerialLoops) {
  auto serial_out = fresh_dir("serial"), piped_out = fresh_dir("piped");
  auto req = request(synth_root(), serial_out);
  req.eval.save_maps = true;
  req.serial = true;
  auto serial = app::run_eval(req, model::build_vcp_clip(req.model, c10::Device(c10::kCPU)));
  req.out_dir = piped_out.string();
  req.serial = false;
  ASSERT_EQ(setenv("VCPCLIP_TEST_WRITER_DELAY_MS", "25", 1), 0);
  app::EvalResult piped;
  try {
    piped = app::run_eval(req, model::build_vcp_clip(req.model, c10::Device(c10::kCPU)));
  } catch (...) {
    unsetenv("VCPCLIP_TEST_WRITER_DELAY_MS");
    throw;
  }
  unsetenv("VCPCLIP_TEST_WRITER_DELAY_MS");
  ASSERT_EQ(piped.images, serial.images);
  ASSERT_EQ(piped.report.classes.size(), serial.report.classes.size());
  EXPECT_EQ(read_json(serial_out / "maps" / "scores.json"), read_json(piped_out / "maps" / "scores.json"));
  auto metrics = [](const fs::path& dir) {
    auto j = read_json(dir / "metrics.json");
    j.erase("run");  // wall times
    return j;
  };
  EXPECT_EQ(metrics(serial_out), metrics(piped_out));
  fs::remove_all(serial_out);
  fs::remove_all(piped_out);
}
