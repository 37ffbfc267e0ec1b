// `vcpclip score` end to end on a procedurally generated MVTec-layout set: saved maps and
// scores.json give the same metrics as the accumulator fed directly; broken classes are reported
// with exact errors while the others are still scored; the CLI writes the three reports.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "vcpclip/app/score.h"
#include "vcpclip/build_info.h"
#include "vcpclip/data/datasets.h"
#include "vcpclip/data/synthetic.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/accumulator.h"
#include "vcpclip/eval/ground_truth.h"
#include "vcpclip/io/npy.h"

namespace fs = std::filesystem;
using namespace vcpclip;

namespace {

struct Fixture {
  fs::path dir, maps, config;
  std::vector<data::SampleInfo> samples;
  std::vector<std::string> classes;
  std::map<std::string, double> scores;
};

std::string key_of(const data::SampleInfo& s) {
  return s.cls_name + "/" + s.specie_name + "/" + fs::path(s.image_path).stem().string();
}

Fixture make_fixture(const std::string& name) {
  Fixture f;
  f.dir = fs::temp_directory_path() / ("vcpclip_test_score_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(f.dir);
  data::SynthOptions so;
  so.out = (f.dir / "ds").string();
  so.classes = 2;
  so.images = 6;
  so.size = 48;
  so.set = "target";
  data::generate_synthetic(so);
  f.config = f.dir / "score.yaml";
  std::ofstream(f.config) << "eval:\n  data:\n    layout: mvtec\n    root: " << so.out << "\n";
  data::DataOptions d;
  d.layout = "mvtec";
  d.root = so.out;
  const auto idx = data::read_index(d);
  f.samples = idx.samples;
  f.classes = idx.classes;
  f.maps = f.dir / "maps";
  at::manual_seed(7);
  for (const auto& s : f.samples) {
    at::Tensor mask = data::load_mask(s.mask_path, 32);
    at::Tensor map = (mask * 0.5 + at::rand({32, 32}) * 0.6).to(at::kFloat);
    const std::string key = key_of(s);
    fs::create_directories(f.maps / s.cls_name / s.specie_name);
    io::write_npy((f.maps / (key + ".npy")).string(), map);
    f.scores[key] = map.max().item<double>() + 0.1 * at::rand({1}).item<double>();
  }
  eval::write_scores_json((f.maps / "scores.json").string(), f.scores);
  return f;
}

eval::ClassMetrics direct(const Fixture& f, const std::string& cls) {
  eval::ClassAccumulator acc(cls);
  for (const auto& s : f.samples) {
    if (s.cls_name != cls) continue;
    const std::string key = key_of(s);
    acc.add(key, io::read_npy((f.maps / (key + ".npy")).string()), data::load_mask(s.mask_path, 32), f.scores.at(key),
            s.anomaly);
  }
  acc.normalize();
  return acc.compute(eval::MetricsOptions{});
}

}  // namespace

TEST(Score, SavedMapsGiveTheAccumulatorsMetrics) {
  const auto f = make_fixture("ok");
  app::ScoreRequest req;
  req.maps_dir = f.maps.string();
  req.config_path = f.config.string();
  const auto res = app::run_score(req);
  ASSERT_EQ(res.report.classes.size(), f.classes.size());
  for (const auto& m : res.report.classes) {
    EXPECT_TRUE(m.error.empty()) << m.error;
    const auto d = direct(f, m.name);
    ASSERT_TRUE(m.pixel.auroc && m.pixel.aupro && m.image.auroc) << m.name;
    EXPECT_EQ(*m.pixel.auroc, *d.pixel.auroc);
    EXPECT_EQ(*m.pixel.aupro, *d.pixel.aupro);
    EXPECT_EQ(*m.pixel.ap, *d.pixel.ap);
    EXPECT_EQ(*m.image.auroc, *d.image.auroc);
    EXPECT_GT(*m.pixel.auroc, 0.7);  // the maps are built from the masks
  }
  fs::remove_all(f.dir);
}

TEST(Score, BrokenClassIsAFailureUnlessPartialResultsAreAllowed) {
  const auto f = make_fixture("bad");
  // class 0: one map missing; class 1: NaN in one map
  const data::SampleInfo* first0 = nullptr;
  const data::SampleInfo* first1 = nullptr;
  for (const auto& s : f.samples) {
    if (!first0 && s.cls_name == f.classes[0]) first0 = &s;
    if (!first1 && s.cls_name == f.classes[1]) first1 = &s;
  }
  const std::string missing = (f.maps / (key_of(*first0) + ".npy")).string();
  fs::remove(missing);
  app::ScoreRequest req;
  req.maps_dir = f.maps.string();
  req.config_path = f.config.string();
  req.out_dir = (f.dir / "out").string();
  const std::string why0 = "missing anomaly map " + missing + " for image '" + key_of(*first0) + "'";
  EXPECT_EQ(vcpclip::testing::error_of([&] { app::run_score(req); }),
            "incomplete result, no metrics written: 1 of 2 classes could not be scored (class '" + f.classes[0] +
                "': " + why0 + ") (--allow-partial reports what could be scored, labelled as partial)");
  EXPECT_FALSE(fs::exists(f.dir / "out" / "metrics.json"));

  req.allow_partial = true;
  auto res = app::run_score(req);
  ASSERT_EQ(res.report.classes.size(), 2u);
  EXPECT_EQ(res.report.classes[0].error, why0);
  EXPECT_FALSE(res.report.classes[0].pixel.auroc.has_value());
  EXPECT_TRUE(res.report.classes[1].error.empty());
  EXPECT_TRUE(res.report.classes[1].pixel.auroc.has_value());
  EXPECT_EQ(eval::coverage(res.report).mean_label(), "mean over 1 of 2 classes, 6 of 12 images");
  std::ifstream in(f.dir / "out" / "metrics.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_FALSE(j["complete"].get<bool>());
  EXPECT_EQ(j["mean"]["label"], "mean over 1 of 2 classes, 6 of 12 images");
  EXPECT_EQ(j["mean"]["pixel_auroc"], j["classes"][1]["pixel_auroc"]);

  // --skip-bad: the image without a map is left out, its class scored on the other 5.
  req.allow_partial = false;
  req.skip_bad = true;
  res = app::run_score(req);
  EXPECT_TRUE(res.report.classes[0].error.empty()) << res.report.classes[0].error;
  EXPECT_EQ(res.report.classes[0].num_images, 5);
  EXPECT_EQ(res.report.classes[0].num_skipped, 1);
  EXPECT_EQ(eval::coverage(res.report).mean_label(), "mean over 11 of 12 images");

  at::Tensor bad = at::rand({32, 32});
  bad[3][5] = NAN;
  io::write_npy((f.maps / (key_of(*first1) + ".npy")).string(), bad);
  req.skip_bad = false;
  req.allow_partial = true;
  // Neither class scored (class 0 still lacks a map): an error even with --allow-partial.
  EXPECT_EQ(vcpclip::testing::error_of([&] { app::run_score(req); }),
            "no class could be scored, no metrics written: 2 of 2 classes could not be scored (class '" + f.classes[0] +
                "': " + why0 + "; class '" + f.classes[1] + "': class '" + f.classes[1] + "', image '" +
                key_of(*first1) + "': anomaly map contains NaN (first at row 3, column 5))");
  fs::remove_all(f.dir);
}

TEST(Score, CliWritesReports) {
  const auto f = make_fixture("cli");
  const fs::path out = f.dir / "out";
  const std::string cmd = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip score --maps " + f.maps.string() + " --data " +
                          f.config.string() + " --out " + out.string() + " --aupro reference > " +
                          (f.dir / "stdout.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream j(out / "metrics.json");
  const auto js = nlohmann::json::parse(j);
  EXPECT_EQ(js["aupro_mode"], "reference");
  EXPECT_EQ(js["classes"].size(), 2u);
  EXPECT_TRUE(fs::exists(out / "metrics.csv"));
  EXPECT_TRUE(fs::exists(out / "metrics.md"));
  std::ifstream so(f.dir / "stdout.txt");
  const std::string text((std::istreambuf_iterator<char>(so)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("| objects"), std::string::npos) << text;
  EXPECT_NE(text.find("2 of 2 classes scored"), std::string::npos) << text;
  EXPECT_EQ(text.find("PARTIAL"), std::string::npos) << text;
  EXPECT_TRUE(js["complete"].get<bool>());
  fs::remove_all(f.dir);
}

TEST(Score, CliExitsNonZeroOnAPartialResultUnlessAllowed) {
  // The reported case: one map with a corrupt .npy header used to give exit 0 and a mean over the
  // other class.
  const auto f = make_fixture("cli_partial");
  std::string victim;
  for (const auto& s : f.samples)
    if (s.cls_name == f.classes[1]) victim = (f.maps / (key_of(s) + ".npy")).string();
  {
    std::fstream io(victim, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(12);
    io.write("{'descr': 'XX", 13);
  }
  const fs::path out = f.dir / "out";
  const std::string base = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip score --maps " + f.maps.string() + " -c " +
                           f.config.string() + " --out " + out.string();
  const std::string log = (f.dir / "stdout.txt").string();
  int rc = std::system((base + " > " + log + " 2>&1").c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  std::string text = vcpclip::testing::slurp(log);
  EXPECT_NE(text.find("vcpclip score: error: incomplete result, no metrics written: 1 of 2 classes could not be "
                      "scored (class '" +
                      f.classes[1] + "': cannot read " + victim),
            std::string::npos)
      << text;
  EXPECT_FALSE(fs::exists(out / "metrics.json"));
  EXPECT_FALSE(fs::exists(out / "metrics.md"));

  rc = std::system((base + " --allow-partial > " + log + " 2>&1").c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 0);
  text = vcpclip::testing::slurp(log);
  const std::string label = "mean over 1 of 2 classes, 6 of 12 images";
  EXPECT_NE(text.find("| " + label + " |"), std::string::npos) << text;
  EXPECT_NE(text.find("PARTIAL RESULT: 1 of 2 classes could not be scored"), std::string::npos) << text;
  EXPECT_NE(text.find("1 of 2 classes scored"), std::string::npos) << text;
  const auto js = nlohmann::json::parse(vcpclip::testing::slurp((out / "metrics.json").string()));
  EXPECT_FALSE(js["complete"].get<bool>());
  EXPECT_EQ(js["mean"]["label"], label);
  EXPECT_TRUE(js["classes"][1]["pixel_auroc"].is_null());
  EXPECT_EQ(js["mean"]["pixel_auroc"], js["classes"][0]["pixel_auroc"]);
  EXPECT_NE(vcpclip::testing::slurp((out / "metrics.md").string()).find("**Partial result:** 1 of 2 classes"),
            std::string::npos);
  EXPECT_NE(vcpclip::testing::slurp((out / "metrics.csv").string()).find("\n\"" + label + "\",6,"), std::string::npos);
  fs::remove_all(f.dir);
}
