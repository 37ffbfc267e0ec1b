// eval --save-maps with references (docs/design.md §13, README "Few-shot: reference images"):
// beside each fused map, what the fusion combined — the zero-shot map before the fusion, D and D̂
// (maps/<key>.zero_shot.npy, .few_shot_raw.npy, .few_shot_normalized.npy) and the scalars in
// maps/few_shot.json. On the 3 golden images of the tiny VCP fixture with image 0 as the one
// reference (the fixture's images differ in size, and the references of one memory may not), D
// and D̂ are the Python restatement's (scripts/golden/make_golden_few_shot_fusion.py, K = 1), the
// zero-shot map is an eval without references', and the
// fused map and score are rebuilt from the saved parts. Fusion "relative" (the default) against
// scripts/golden/make_golden_few_shot_fusion.py.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "../model/vcp_fixture.h"
#include "support/test_util.h"
#include "vcpclip/app/evaluate.h"
#include "vcpclip/eval/ground_truth.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/npy.h"

using namespace vcpclip;
namespace fx = vcp_fixture;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  return vcpclip::testing::fresh_temp_dir("vcpclip_few_shot_maps_" + name);
}

const char* const kKeys[] = {"fx/good/image_0", "fx/bad/image_1", "fx/bad/image_2"};

/// The 3 golden images as a folder-layout class (image_0 good, 1 and 2 defective with a square
/// mask) and a reference folder holding a copy of image 0 (another file: allowed).
struct GoldenSet {
  fs::path root, references;
};

const GoldenSet& golden_set() {
  static const GoldenSet s = [] {
    GoldenSet g{fresh_dir("data"), fresh_dir("refs")};
    for (const char* d : {"fx/test/good", "fx/test/bad", "fx/ground_truth/bad"}) fs::create_directories(g.root / d);
    fs::copy_file(fx::path("image_0.png"), g.root / "fx/test/good/image_0.png");
    for (int i : {1, 2}) {
      const std::string stem = "image_" + std::to_string(i);
      fs::copy_file(fx::path(stem + ".png"), g.root / "fx/test/bad" / (stem + ".png"));
      const cv::Mat img = cv::imread(fx::path(stem + ".png"));
      cv::Mat mask = cv::Mat::zeros(img.rows, img.cols, CV_8UC1);
      cv::rectangle(mask, cv::Rect(img.cols / 4, img.rows / 4, img.cols / 3, img.rows / 3), cv::Scalar(255),
                    cv::FILLED);
      cv::imwrite((g.root / "fx/ground_truth/bad" / (stem + "_mask.png")).string(), mask);
    }
    fs::copy_file(fx::path("image_0.png"), g.references / "image_0.png");
    return g;
  }();
  return s;
}

app::EvalRequest request(const fs::path& out, int64_t k) {
  app::EvalRequest r;
  r.runtime.threads = 1;
  r.model = fx::options();
  r.checkpoint = fx::path("tiny_vcp.pth");
  data::DataOptions d;
  d.layout = "folder", d.root = golden_set().root.string(), d.workers = 1;
  r.eval.data = d;
  r.eval.batch_size = 2;
  r.eval.save_maps = true;
  r.out_dir = out.string();
  r.progress = false;
  r.few_shot.k = k;
  r.few_shot.folder = k > 0 ? golden_set().references.string() : "";
  return r;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

at::Tensor saved(const fs::path& out, const std::string& key, const std::string& part) {
  return io::read_npy((out / "maps" / (key + part + ".npy")).string());
}

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(FewShotMaps, SavedPartsAreTheGoldenMapsAndRebuildTheFusion) {
  const auto zero_out = fresh_dir("zero");
  app::run_eval(request(zero_out, 0));
  EXPECT_FALSE(fs::exists(zero_out / "maps" / "few_shot.json")) << "zero-shot: nothing was fused";
  EXPECT_FALSE(fs::exists(zero_out / "maps" / (std::string(kKeys[0]) + ".zero_shot.npy")));

  const auto fusion = read_json(fx::path("few_shot_fusion.json"));
  const auto& k1 = fusion.at("sets").at(1);
  ASSERT_EQ(k1.at("references"), nlohmann::json({0}));
  const auto final_map = fx::load("final_map");
  // The restatement's add_pixel is final_map + weight·D: D is recovered from it.
  const double weight = fusion.at("weight").get<double>();
  const auto golden_d = (io::read_npy(fx::path(k1.at("add_pixel").get<std::string>())) - final_map) / weight;
  const auto golden_dn = io::read_npy(fx::path(k1.at("normalized_map").get<std::string>()));
  const double normal_max = k1.at("normal_max").get<double>();

  const auto out = fresh_dir("k1");
  auto req = request(out, 1);
  req.few_shot.fusion = "normalized", req.few_shot.threshold = "references";
  req.few_shot.weight = 0.5, req.few_shot.margin = 1.0;
  app::run_eval(req);
  const auto parts = read_json(out / "maps" / "few_shot.json");
  const auto scores = eval::read_scores_json((out / "maps" / "scores.json").string());
  const auto zero_scores = eval::read_scores_json((zero_out / "maps" / "scores.json").string());
  ASSERT_EQ(parts.at("few_shot").at("fusion"), "normalized");
  const auto& cls = parts.at("classes").at("fx");
  EXPECT_EQ(cls.at("k"), 1);
  EXPECT_EQ(cls.at("layers"), nlohmann::json({2, 3, 4}));
  EXPECT_NEAR(cls.at("normal_max").get<double>(), normal_max, 1e-4 * normal_max);
  for (size_t l = 0; l < 3; ++l)
    EXPECT_NEAR(cls.at("normal_scale").at(l).get<double>(), k1.at("normal_scale").at(l).get<double>(),
                1e-4 * k1.at("normal_scale").at(l).get<double>());
  for (int i = 0; i < 3; ++i) {
    const std::string key = kKeys[i];
    SCOPED_TRACE(key);
    const auto zero = saved(out, key, ".zero_shot"), d = saved(out, key, ".few_shot_raw");
    const auto dn = saved(out, key, ".few_shot_normalized"), fused = saved(out, key, "");
    // The zero-shot map before the fusion is an eval without references' (and the reference pipeline's).
    EXPECT_LT(max_abs(zero, saved(zero_out, key, "")), 1e-6);
    EXPECT_LE(max_abs(zero, final_map[i]), 1e-4);
    // D and D̂ are the Python restatements'.
    EXPECT_LT(max_abs(d, golden_d[i]), 1e-4);  // recovered through final_map (float32) and the weight
    EXPECT_LT(max_abs(dn, golden_dn[i]) / std::max(1.0, golden_dn[i].abs().max().item<double>()), 1e-4);
    // The fused map and score are rebuilt from the parts: T = weight·max(0, D̂ − margin − normal_max).
    const auto& p = parts.at("images").at(key);
    const auto t = (dn - 1.0 - p.at("normal_max").get<double>()).clamp_min(0) * 0.5;
    EXPECT_LT(max_abs(fused, zero + t), 1e-5);
    EXPECT_NEAR(p.at("zero_shot_score").get<double>(), zero_scores.at(key), 1e-6);
    EXPECT_NEAR(p.at("score").get<double>(), scores.at(key), 1e-12);
    EXPECT_NEAR(scores.at(key), p.at("zero_shot_score").get<double>() + t.max().item<double>(), 1e-5);
    EXPECT_NEAR(p.at("few_shot_raw_max").get<double>(), d.max().item<double>(), 1e-6);
    EXPECT_NEAR(p.at("few_shot_normalized_max").get<double>(), dn.max().item<double>(), 1e-6);
    EXPECT_NEAR(p.at("normal_max").get<double>(), normal_max, 1e-4 * normal_max);
  }
  // Image 0 is the reference: D is ~0 on it, not on image 2.
  EXPECT_LT(parts.at("images").at(kKeys[0]).at("few_shot_raw_max").get<double>(), 1e-3);
  EXPECT_GT(parts.at("images").at(kKeys[2]).at("few_shot_raw_max").get<double>(), 1e-2);
  fs::remove_all(out);
  fs::remove_all(zero_out);
}

TEST(FewShotFusion, RelativeMatchesThePythonRestatement) {
  // scripts/golden/make_golden_few_shot_fusion.py, few_shot_fusion_relative.json: the map gets
  // weight·max(0, D̂ − margin), the score weight·(max Z − median Z)·max(0, max D̂ − normal_max).
  auto model = model::build_vcp_clip(fx::options(), c10::Device(c10::kCPU));
  model::load_vcp_checkpoint(*model, fx::path("tiny_vcp.pth"));
  model->eval();
  const auto images = fx::load("images");
  const auto manifest = read_json(fx::path("few_shot_fusion_relative.json"));
  ASSERT_EQ(manifest.at("sets").size(), 2u);
  app::FewShotOptions o;
  o.fusion = "relative";
  o.weight = manifest.at("weight").get<double>();
  o.margin = manifest.at("margin").get<double>();
  for (const auto& set : manifest.at("sets")) {
    const auto refs = set.at("references").get<std::vector<int64_t>>();
    SCOPED_TRACE(::testing::Message() << "K = " << refs.size());
    o.k = static_cast<int64_t>(refs.size());
    auto mem = model::build_reference_memory(*model, images.index_select(0, at::tensor(refs)),
                                             manifest.at("layers").get<std::vector<int64_t>>(), 1);
    const auto want = io::read_npy(fx::path(set.at("pixel").get<std::string>()));
    // As built, and with normal_max 0 (then every image that is no reference goes beyond it).
    for (const char* key : {"score", "score_normal_max_0"}) {
      SCOPED_TRACE(key);
      if (std::string(key) == "score_normal_max_0") mem.normal_max = 0;
      const auto maps = model->predict_maps(images, nullptr, {&mem, &mem, &mem});
      auto out = eval::postprocess_maps(maps.raw, maps.post, eval::PostprocessOptions{});
      app::fuse_references(out, maps, o);
      const auto scores = set.at(key).get<std::vector<double>>();
      EXPECT_LT((out.pixel - want).abs().max().item<double>() / std::max(1.0, want.abs().max().item<double>()), 1e-4);
      for (int i = 0; i < 3; ++i) EXPECT_NEAR(out.score[i].item<double>(), scores[i], 1e-4 * std::max(1.0, scores[i]));
    }
  }
  // The image score's part is 0 where no image goes beyond normal_max, and positive for some with normal_max 0.
  const auto& k2 = manifest.at("sets").at(0);
  EXPECT_GT(k2.at("score_normal_max_0").at(2).get<double>(), k2.at("score").at(2).get<double>() + 1e-3);
}
