// Few-shot references end to end (docs/design.md §13) on a synthetic MVTec-layout target set with
// the tiny golden VCP fixture: the `few_shot:` section (every key checked), eval's per-class
// memories from the class's own train/good images (never a test image), predict --reference with
// a folder and with eval's saved memory (same maps as eval), predict --calibration reproducing
// eval's F1 confusion with references, and the errors (empty folder, mixed sizes, another model,
// calibration made with / without references).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <sstream>

#include "../model/vcp_fixture.h"
#include "support/synth_set.h"
#include "support/test_util.h"
#include "vcpclip/app/calibrate/calibrate.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/decider.h"
#include "vcpclip/app/evaluate.h"
#include "vcpclip/app/few_shot.h"
#include "vcpclip/app/predict.h"
#include "vcpclip/app/score.h"
#include "vcpclip/eval/ground_truth.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/vcpclip.h"

using namespace vcpclip;
using vcpclip::testing::error_of;
namespace fx = vcp_fixture;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) { return vcpclip::testing::fresh_temp_dir("vcpclip_few_shot_" + name); }

/// 2 target classes × 10 test images + 4 train/good, 64 px; once per process.
const fs::path& synth_root() {
  static const fs::path root = vcpclip::testing::make_synth_target_set("vcpclip_few_shot_synth", 2, 10, 4);
  return root;
}

app::EvalRequest eval_request(const fs::path& out) {
  app::EvalRequest r;
  r.runtime.threads = 1;
  r.model = fx::options();
  r.checkpoint = fx::path("tiny_vcp.pth");
  data::DataOptions d;
  d.layout = "mvtec", d.root = synth_root().string(), d.workers = 1;
  r.eval.data = d;
  r.eval.batch_size = 3;  // batches straddle the two classes: one memory per image
  r.out_dir = out.string();
  r.progress = false;
  r.few_shot.k = 2;
  r.few_shot.seed = 5;
  return r;
}

app::PredictRequest predict_request(const std::vector<std::string>& inputs, const fs::path& out) {
  app::PredictRequest r;
  r.runtime.threads = 1;
  r.model = fx::options();
  r.checkpoint = fx::path("tiny_vcp.pth");
  r.inputs = inputs;
  r.out_dir = out.string();
  r.predict.batch_size = 2;
  r.predict.heatmap = false;
  r.progress = false;
  return r;
}

struct Evaluated {
  fs::path dir;
  app::EvalResult result;
};

/// eval with k = 2 references per class, maps saved, f1 calibration written.
const Evaluated& evaluated() {
  static const Evaluated e = [] {
    Evaluated out;
    out.dir = fresh_dir("eval");
    auto req = eval_request(out.dir);
    req.eval.save_maps = true;
    req.calibration_out = (out.dir / "calibration.json").string();
    out.result = app::run_eval(req);
    return out;
  }();
  return e;
}

std::vector<data::SampleInfo> test_samples(const std::string& cls) {
  std::vector<data::SampleInfo> out;
  for (const auto& s : data::read_index(*eval_request("x").eval.data).samples)
    if (s.cls_name == cls) out.push_back(s);
  return out;
}

app::FewShotOptions parse(const std::string& yaml) {
  return app::parse_run_config("model: {backbone: " + fx::path("tiny_vcp_clip.json") + "}\n" + yaml, "cfg.yaml")
      .few_shot;
}

}  // namespace

TEST(FewShot, SectionKeysAreChecked) {
  const auto o = parse("few_shot: {k: 4, seed: 3, folder: /tmp, layers: [1, 3], fusion: add, weight: 0.5}");
  EXPECT_EQ(o.k, 4);
  EXPECT_EQ(o.seed, 3u);
  EXPECT_EQ(o.folder, "/tmp");
  EXPECT_EQ(o.layers, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(o.weight, 0.5);
  EXPECT_FALSE(parse("").enabled());
  EXPECT_EQ(error_of([] { parse("few_shot: {k: 2, shots: 3}"); }),
            "unknown config key 'few_shot.shots' in cfg.yaml; known keys of 'few_shot': center, data, folder, fusion, "
            "k, layers, margin, seed, threshold, weight");
  EXPECT_EQ(error_of([] { parse("few_shot: {k: -1}"); }),
            "config key 'few_shot.k' in cfg.yaml: expected ≥ 0 (0 = zero-shot), found -1");
  EXPECT_EQ(
      error_of([] { parse("few_shot: {k: 1, fusion: mean}"); }),
      "config key 'few_shot.fusion' in cfg.yaml: expected relative (D̂ in the map, the score's part scaled by the "
      "zero-shot map's range), add (APRIL-GAN's: pixel map + weight·D) or normalized (D scaled by the references' "
      "normal variation), found 'mean'");
  const auto n = parse("few_shot: {k: 1, fusion: normalized, margin: 2.5}");
  EXPECT_EQ(n.fusion, "normalized");
  EXPECT_EQ(n.margin, 2.5);
  // relative is the default fusion (issue 30, docs/few_shot.md); its margin defaults to 1, normalized's to 3
  EXPECT_EQ(parse("few_shot: {k: 1}").fusion, "relative");
  EXPECT_EQ(parse("few_shot: {k: 1}").margin, 1.0);
  EXPECT_EQ(parse("few_shot: {k: 1, fusion: normalized}").margin, 3.0);
  EXPECT_EQ(parse("few_shot: {k: 1, fusion: add}").margin, 1.0);
  EXPECT_EQ(parse("few_shot: {k: 1}").threshold, "fixed");
  EXPECT_FALSE(parse("few_shot: {k: 1}").center);
  EXPECT_EQ(error_of([] { parse("few_shot: {k: 1, threshold: max}"); }),
            "config key 'few_shot.threshold' in cfg.yaml: expected fixed (margin) or references (the references' "
            "largest normal D̂ + margin), found 'max'");
  EXPECT_EQ(error_of([] { parse("few_shot: {k: 1, fusion: normalized, margin: -1}"); }),
            "config key 'few_shot.margin' in cfg.yaml: expected ≥ 0, found -1");
  EXPECT_EQ(error_of([] { parse("few_shot: {k: 1, layers: [3, 2]}"); }),
            "config key 'few_shot.layers' in cfg.yaml: expected strictly increasing layers");
  EXPECT_EQ(error_of([] { parse("few_shot: {k: 1, folder: /tmp, data: {layout: mvtec, root: /tmp}}"); }),
            "config keys 'few_shot.folder' in cfg.yaml and 'few_shot.data' in cfg.yaml: give one source of reference "
            "images, not both");
}

TEST(FewShot, SamplingIsSeededWithoutReplacement) {
  const std::vector<std::string> c{"a", "b", "c", "d", "e", "f"};
  const auto s1 = app::sample_references(c, 3, 7, "x");
  EXPECT_EQ(s1, app::sample_references(c, 3, 7, "x"));
  EXPECT_EQ(s1.size(), 3u);
  EXPECT_TRUE(std::is_sorted(s1.begin(), s1.end()));
  EXPECT_EQ(std::set<std::string>(s1.begin(), s1.end()).size(), 3u);
  bool differs = false;
  for (uint64_t seed = 0; seed < 8 && !differs; ++seed) differs = app::sample_references(c, 3, seed, "x") != s1;
  EXPECT_TRUE(differs);
  EXPECT_EQ(app::sample_references(c, 0, 7, "x"), c);
  EXPECT_EQ(error_of([&] { app::sample_references(c, 7, 0, "folder F"); }),
            "few-shot: k = 7 reference images asked for, but folder F has only 6");
}

TEST(FewShot, EvalUsesEachClassesOwnTrainImagesNeverATestImage) {
  const auto& e = evaluated();
  ASSERT_TRUE(e.result.few_shot.is_object());
  EXPECT_EQ(e.result.few_shot.at("k").get<int64_t>(), 2);
  EXPECT_EQ(e.result.few_shot.at("layers"), nlohmann::json({2, 3, 4}));
  std::ifstream in(e.dir / "metrics.json");
  const auto metrics = nlohmann::json::parse(in);
  EXPECT_EQ(metrics.at("run").at("few_shot"), e.result.few_shot);
  for (const auto& cls : e.result.report.classes) {
    const auto mem = model::load_reference_memory((e.dir / "references" / (cls.name + ".safetensors")).string());
    ASSERT_EQ(mem.shots(), 2);
    EXPECT_EQ(e.result.few_shot.at("references").at(cls.name).get<std::string>(), mem.fingerprint());
    std::set<std::string> tests;
    for (const auto& s : test_samples(cls.name)) tests.insert(s.image_path);
    for (const auto& f : mem.images) {
      EXPECT_NE(f.find("/" + cls.name + "/train/good/"), std::string::npos) << f;
      EXPECT_FALSE(tests.count(f)) << f;
    }
  }
  // A folder source that holds a test image is refused before anything is evaluated.
  const auto one = test_samples(e.result.report.classes[0].name).front().image_path;
  auto req = eval_request(fresh_dir("eval_bad"));
  req.few_shot.folder = fs::path(one).parent_path().string();
  req.few_shot.k = static_cast<int64_t>(std::distance(fs::directory_iterator(req.few_shot.folder), {}));
  const std::string err = error_of([&] { app::run_eval(req); });
  EXPECT_NE(err.find("is also a test image; references must come from other images (e.g. the train split)"),
            std::string::npos)
      << err;
}

TEST(FewShot, PredictWithSavedMemoryOrFolderGivesEvalsMaps) {
  const auto& e = evaluated();
  const std::string cls = e.result.report.classes[1].name;
  const auto samples = test_samples(cls);
  std::vector<std::string> paths;
  for (const auto& s : samples) paths.push_back(s.image_path);
  const auto saved = eval::read_scores_json((e.dir / "maps" / "scores.json").string());

  auto req = predict_request(paths, fresh_dir("predict_mem"));
  req.few_shot.k = 2;
  req.reference = (e.dir / "references" / (cls + ".safetensors")).string();
  const auto from_memory = app::run_predict(req);
  ASSERT_EQ(from_memory.images.size(), samples.size());
  // The same references as a folder: the same memory, the same maps.
  const auto mem = model::load_reference_memory(req.reference);
  const auto folder = fresh_dir("ref_folder");
  for (const auto& f : mem.images) fs::copy_file(f, folder / fs::path(f).filename());
  auto req2 = predict_request(paths, fresh_dir("predict_folder"));
  req2.reference = folder.string();
  req2.save_reference = (folder.parent_path() / "saved_again.safetensors").string();
  const auto from_folder = app::run_predict(req2);
  int raised = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto item = app::ground_truth_item(samples[i]);
    const auto eval_map = io::read_npy(eval::saved_map_path((e.dir / "maps").string(), item));
    const auto a = io::read_npy((fs::path(req.out_dir) / (from_memory.images[i].stem + "_map.npy")).string());
    const auto b = io::read_npy((fs::path(req2.out_dir) / (from_folder.images[i].stem + "_map.npy")).string());
    // Other batch sizes than eval's: the BLAS blocking differs, the last bits may too.
    EXPECT_LT((a - eval_map).abs().max().item<double>(), 1e-5) << paths[i];
    EXPECT_TRUE(at::equal(a, b)) << paths[i];
    // relative (the default) adds to the score only where max D̂ goes beyond the references' normal_max
    EXPECT_GE(from_memory.images[i].score_few_shot, 0.0);
    raised += from_memory.images[i].score_few_shot > 0.0;
    EXPECT_NEAR(app::Decider::eval_score(from_memory.images[i].score_raw, from_memory.images[i].score_post,
                                         from_memory.images[i].score_few_shot),
                saved.at(item.key()), 1e-5);
  }
  EXPECT_GT(raised, 0) << "the references raised no image's score";
  EXPECT_EQ(model::load_reference_memory(req2.save_reference).fingerprint(), mem.fingerprint());
}

TEST(FewShot, PredictDecisionsWithReferencesEqualEvalsF1Confusion) {
  const auto& e = evaluated();
  const auto cal = eval::read_calibration((e.dir / "calibration.json").string());
  ASSERT_EQ(cal.classes.size(), 2u);
  ASSERT_TRUE(cal.settings.contains("few_shot"));
  for (const auto& cls : cal.classes) {
    const auto samples = test_samples(cls.name);
    std::vector<std::string> paths;
    for (const auto& s : samples) paths.push_back(s.image_path);
    auto req = predict_request(paths, fresh_dir("decide_" + cls.name));
    req.calibration = (e.dir / "calibration.json").string();
    req.class_name = cls.name;
    req.reference = (e.dir / "references" / (cls.name + ".safetensors")).string();
    const auto summary = app::run_predict(req);
    eval::Confusion images;
    for (size_t i = 0; i < samples.size(); ++i) {
      ASSERT_TRUE(summary.images[i].decision);
      const bool ng = summary.images[i].decision->anomalous;
      (samples[i].anomaly ? (ng ? images.tp : images.fn) : (ng ? images.fp : images.tn))++;
    }
    EXPECT_EQ(images, *cls.image_confusion) << cls.name;
  }
}

TEST(FewShot, ClearErrors) {
  const auto& e = evaluated();
  const std::string cls = e.result.report.classes[0].name;
  const std::vector<std::string> one{test_samples(cls).front().image_path};
  // A reference folder without images.
  const auto empty = fresh_dir("empty");
  auto req = predict_request(one, fresh_dir("err1"));
  req.reference = empty.string();
  EXPECT_EQ(error_of([&] { app::run_predict(req); }),
            "few-shot: no images (.png .jpg .jpeg .bmp .tif .tiff) in reference folder " + empty.string());
  // References of different sizes / channel counts.
  const auto mixed = fresh_dir("mixed");
  cv::imwrite((mixed / "a.png").string(), cv::Mat(64, 64, CV_8UC3, cv::Scalar(10, 20, 30)));
  cv::imwrite((mixed / "b.png").string(), cv::Mat(32, 48, CV_8UC1, cv::Scalar(7)));
  req.reference = mixed.string();
  EXPECT_EQ(error_of([&] { app::run_predict(req); }),
            "few-shot: reference image " + (mixed / "b.png").string() + " is 48x32 with 1 channel(s), but " +
                (mixed / "a.png").string() +
                " is 64x64 with 3 channel(s): the references of one product must be taken the same way");
  // A memory made with another model (here: another backbone config file, same numbers).
  const auto other = fresh_dir("other_model");
  fs::copy_file(fx::path("tiny_vcp_clip.json"), other / "tiny_vcp_clip.json");
  std::ofstream(other / "tiny_vcp_clip.json", std::ios::app) << "\n";
  req.model.backbone = (other / "tiny_vcp_clip.json").string();
  const auto memory = (e.dir / "references" / (cls + ".safetensors")).string();
  req.reference = memory;
  const std::string err = error_of([&] { app::run_predict(req); });
  EXPECT_EQ(err.rfind("reference memory " + memory + " was made with another model: backbone SHA-256 ", 0), 0u) << err;
  // Calibration made with references, run without them, and the other way round.
  auto plain = predict_request(one, fresh_dir("err2"));
  plain.calibration = (e.dir / "calibration.json").string();
  plain.class_name = cls;
  const std::string without = error_of([&] { app::run_predict(plain); });
  EXPECT_EQ(without.rfind("calibration " + plain.calibration + " was made for another config: few_shot: {", 0), 0u)
      << without;
  EXPECT_NE(without.find("} in the calibration, absent in this run; calibrate again with this config"),
            std::string::npos)
      << without;
  // Another class's references against this class's calibration.
  auto swapped = plain;
  swapped.reference = (e.dir / "references" / (e.result.report.classes[1].name + ".safetensors")).string();
  const std::string other_refs = error_of([&] { app::run_predict(swapped); });
  EXPECT_NE(other_refs.find("few_shot.references: \""), std::string::npos) << other_refs;
  // k > 0 in the config but no references for predict.
  auto none = predict_request(one, fresh_dir("err3"));
  none.few_shot.k = 3;
  EXPECT_EQ(error_of([&] { app::run_predict(none); }),
            "predict: few_shot.k is 3 but no reference images were given: pass --reference DIR (normal images of the "
            "product) or set few_shot.folder");
}

TEST(FewShot, InferencerWithReferencesEqualsPredict) {
  const auto& e = evaluated();
  const std::string cls = e.result.report.classes[1].name;
  const auto samples = test_samples(cls);
  std::vector<std::string> paths;
  for (const auto& s : samples) paths.push_back(s.image_path);
  const std::string memory = (e.dir / "references" / (cls + ".safetensors")).string();
  auto req = predict_request(paths, fresh_dir("inferencer_predict"));
  req.predict.batch_size = 1;  // the Inferencer runs one image at a time: the same BLAS paths
  req.few_shot.k = 2;
  req.reference = memory;
  req.calibration = (e.dir / "calibration.json").string();
  req.class_name = cls;
  const auto summary = app::run_predict(req);

  std::ostringstream config;
  config << "runtime: {threads: 1}\nmodel: {backbone: " << fx::path("tiny_vcp_clip.json")
         << ", weights: " << fx::path("tiny_vcp_clip.pt") << ", vocab: " << fx::vocab_path()
         << ", image_size: 64, features_list: [2, 3, 4]}\nfew_shot: {k: 2}\n";
  InferencerOptions o;
  o.config_text = config.str();
  o.checkpoint = fx::path("tiny_vcp.pth");
  o.calibration = req.calibration;
  o.class_name = cls;
  o.reference = memory;
  const Inferencer inf(o);
  EXPECT_EQ(inf.reference_shots(), 2);
  ASSERT_EQ(summary.images.size(), samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& r = summary.images[i];
    const Prediction p = inf.predict(cv::imread(r.path, cv::IMREAD_COLOR));
    const auto map = io::read_npy((fs::path(req.out_dir) / (r.stem + "_map.npy")).string());
    ASSERT_EQ(p.map.rows, map.size(0));  // the synthetic images are S × S: no resize
    const at::Tensor inf_map = at::from_blob(p.map.data, {p.map.rows, p.map.cols}, at::kFloat);
    EXPECT_LT((inf_map - map).abs().max().item<double>(), 1e-5) << r.path;
    ASSERT_TRUE(p.decision && r.decision);
    EXPECT_EQ(p.decision->anomalous, r.decision->anomalous) << r.path;
    EXPECT_NEAR(p.decision->normalized_score, r.decision->normalized_score, 1e-5) << r.path;
  }
  // The calibration was made with references: an Inferencer without them is refused, as predict is.
  o.reference.clear();
  o.config_text.replace(o.config_text.find("few_shot: {k: 2}"), 16, "few_shot: {k: 0}");
  const std::string err = error_of([&] { Inferencer refused(o); });
  EXPECT_EQ(err.rfind("calibration " + o.calibration + " was made for another config: few_shot: {", 0), 0u) << err;
}

TEST(FewShotFusion, BothFusionsMatchThePythonRestatement) {
  // scripts/golden/make_golden_few_shot_fusion.py: final_map + T and score + max T for fusion add
  // (T = weight·D) and normalized (T = weight·max(0, D̂ [− its median] − margin [− normal_max])),
  // K = 2 and K = 1.
  auto model = model::build_vcp_clip(fx::options(), c10::Device(c10::kCPU));
  model::load_vcp_checkpoint(*model, fx::path("tiny_vcp.pth"));
  model->eval();
  const auto images = fx::load("images");
  std::ifstream in(fx::path("few_shot_fusion.json"));
  const auto manifest = nlohmann::json::parse(in);
  for (const auto& set : manifest.at("sets")) {
    const auto refs = set.at("references").get<std::vector<int64_t>>();
    const auto mem = model::build_reference_memory(*model, images.index_select(0, at::tensor(refs)),
                                                   manifest.at("layers").get<std::vector<int64_t>>(), 1);
    const auto maps = model->predict_maps(images, nullptr, {&mem, &mem, &mem});
    // add, then normalized in its variants (threshold fixed / references, center false / true)
    std::vector<nlohmann::json> cases = {
        {{"fusion", "add"}, {"pixel", set.at("add_pixel")}, {"score", set.at("add_score")}}};
    for (auto v : set.at("normalized")) {
      v["fusion"] = "normalized";
      cases.push_back(v);
    }
    for (const auto& c : cases) {
      SCOPED_TRACE(::testing::Message() << "K = " << refs.size() << ", " << c.dump());
      app::FewShotOptions o;
      o.k = static_cast<int64_t>(refs.size());
      o.fusion = c.at("fusion").get<std::string>();
      o.threshold = c.value("threshold", std::string("fixed"));
      o.center = c.value("center", false);
      o.weight = manifest.at("weight").get<double>();
      o.margin = manifest.at("margin").get<double>();
      auto out = eval::postprocess_maps(maps.raw, maps.post, eval::PostprocessOptions{});
      eval::fuse_few_shot(out, app::few_shot_term(maps, o), 1.0);
      const auto want = io::read_npy(fx::path(c.at("pixel").get<std::string>()));
      const auto scores = c.at("score").get<std::vector<double>>();
      EXPECT_LT((out.pixel - want).abs().max().item<double>() / std::max(1.0, want.abs().max().item<double>()), 1e-4);
      for (int i = 0; i < 3; ++i) EXPECT_NEAR(out.score[i].item<double>(), scores[i], 1e-4 * std::max(1.0, scores[i]));
    }
  }
  // The normalized fusion needs the statistics: a memory without them (a version 1 file) is refused.
  auto old = model::build_reference_memory(*model, images.slice(0, 0, 2), {2, 3, 4}, 1);
  old.normal_level.clear();
  old.normal_scale.clear();
  app::FewShotOptions o;
  o.k = 2;
  o.fusion = "normalized";
  const auto maps = model->predict_maps(images, nullptr, {&old, &old, &old});
  EXPECT_EQ(error_of([&] { app::few_shot_term(maps, o); }),
            "few-shot: fusion 'normalized' needs the normal level and scale of the reference memory, and this memory "
            "has none (a memory file of version 1, written before them); build it again from the reference images");
  o.fusion = "add";
  EXPECT_TRUE(app::few_shot_term(maps, o).defined());
}

TEST(FewShotFusion, EvalComparesEveryClassWithZeroShot) {
  // eval with references scores the same images without them: those numbers are a zero-shot eval's.
  const auto& e = evaluated();
  auto req = eval_request(fresh_dir("eval_zero"));
  req.few_shot.k = 0;
  const auto zero = app::run_eval(req);
  EXPECT_TRUE(zero.report.references.empty());
  ASSERT_EQ(e.result.report.references.size(), zero.report.classes.size());
  std::ifstream in(e.dir / "metrics.json");
  const auto metrics = nlohmann::json::parse(in);
  const auto& rows = metrics.at("references_vs_zero_shot");
  ASSERT_EQ(rows.size(), zero.report.classes.size());
  for (size_t i = 0; i < zero.report.classes.size(); ++i) {
    const auto& z = zero.report.classes[i];
    const auto& r = e.result.report.references[i];
    EXPECT_EQ(r.name, z.name);
    EXPECT_EQ(r.k, 2);
    EXPECT_DOUBLE_EQ(*r.pixel_zero_shot, *z.pixel.auroc) << z.name;
    EXPECT_DOUBLE_EQ(*r.image_zero_shot, *z.image.auroc) << z.name;
    EXPECT_DOUBLE_EQ(*r.pixel_references, *e.result.report.classes[i].pixel.auroc) << z.name;
    EXPECT_EQ(rows[i].at("name"), z.name);
    EXPECT_DOUBLE_EQ(rows[i].at("pixel_auroc_zero_shot").get<double>(), *z.pixel.auroc);
    EXPECT_EQ(rows[i].at("worse").get<bool>(), r.worse());
    // A class made worse says so in the run's warnings, in plain words.
    const auto& warns = e.result.report.warnings;
    const bool warned = std::any_of(warns.begin(), warns.end(), [&](const std::string& w) {
      return w.rfind("references made class '" + z.name + "' WORSE", 0) == 0;
    });
    EXPECT_EQ(warned, r.worse()) << z.name;
  }
  EXPECT_NE(app::format_eval_table(e.result).find("references vs zero-shot"), std::string::npos);
}
