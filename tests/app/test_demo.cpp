// `vcpclip demo` in-process: the built-in config is the file, loading/overrides/${out_dir} and
// strictness, and a miniature end-to-end run (synthetic sets, training, untrained + trained
// evaluation, PNGs, summary.json written last, synthetic sets reused on a rerun).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_util.h"
#include "vcpclip/app/demo.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"

using vcpclip::testing::error_of;

namespace fs = std::filesystem;
using namespace vcpclip;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("vcpclip_test_demo_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

/// A miniature demo: 2 + 2 classes of tiny images, one short epoch.
std::vector<std::string> mini_overrides() {
  return {"demo.synthetic.aux.classes=2",
          "demo.synthetic.aux.images=6",
          "demo.synthetic.aux.size=64",
          "demo.synthetic.target.classes=2",
          "demo.synthetic.target.images=5",
          "demo.synthetic.target.size=64",
          "model.image_size=32",
          "train.epochs=1",
          "train.batch_size=4",
          "train.data.workers=1",
          "eval.data.workers=1",
          "eval.png_limit=1",
          "runtime.threads=1"};
}

}  // namespace

TEST(Demo, BuiltInConfigIsTheFileInTheRepository) {
  EXPECT_EQ(app::embedded_demo_config(), read_text(fs::path(VCPCLIP_SOURCE_DIR) / "configs/demo.yaml"))
      << "src/app/demo_config.cpp is out of date: copy configs/demo.yaml verbatim between its R\"vcpclip( markers";
  EXPECT_EQ(app::embedded_tiny_backbone(), read_text(fs::path(VCPCLIP_SOURCE_DIR) / "configs/models/tiny.json"))
      << "src/app/demo_config.cpp is out of date: copy configs/models/tiny.json between its markers";
}

TEST(Demo, LoadsTheBuiltInConfigWithOutDirSubstituted) {
  const auto c = app::load_demo_config("", {}, "/tmp/demo_x");
  EXPECT_EQ(c.path, "<built-in configs/demo.yaml>");
  EXPECT_EQ(c.out_dir, "/tmp/demo_x");
  EXPECT_TRUE(c.untrained_baseline);
  ASSERT_EQ(c.synthetic.size(), 2u);
  EXPECT_EQ(c.synthetic[0].out, "/tmp/demo_x/data/aux");
  EXPECT_EQ(c.synthetic[0].layout, "visa");
  EXPECT_EQ(c.synthetic[0].set, "auxiliary");
  EXPECT_EQ(c.synthetic[1].out, "/tmp/demo_x/data/target");
  EXPECT_EQ(c.synthetic[1].layout, "mvtec");
  EXPECT_EQ(c.synthetic[1].set, "target");
  EXPECT_EQ(c.run.train.data->root, "/tmp/demo_x/data/aux");
  EXPECT_EQ(c.run.train.data->layout, "visa");
  EXPECT_EQ(c.run.eval.data->root, "/tmp/demo_x/data/target");
  EXPECT_EQ(c.run.train.options.out_dir, "/tmp/demo_x/train");
  EXPECT_EQ(c.run.eval.out_dir, "/tmp/demo_x/eval");
  EXPECT_TRUE(c.run.eval.export_png);
  EXPECT_EQ(c.run.model->weights, "");
  // the auxiliary and target class names never overlap
  auto aux = data::synthetic_class_names("auxiliary", c.synthetic[0].classes);
  auto tgt = data::synthetic_class_names("target", c.synthetic[1].classes);
  for (const auto& a : aux) EXPECT_EQ(std::find(tgt.begin(), tgt.end(), a), tgt.end()) << a;
}

TEST(Demo, OverridesReachEverySectionAndDefaultOutDirIsRunsDemo) {
  const auto c = app::load_demo_config(
      "", {"train.epochs=1", "demo.synthetic.aux.classes=2", "demo.out_dir=o2", "demo.untrained_baseline=false"});
  EXPECT_EQ(c.out_dir, "o2");
  EXPECT_FALSE(c.untrained_baseline);
  EXPECT_EQ(c.synthetic[0].classes, 2);
  EXPECT_EQ(c.run.train.options.epochs, 1);
  EXPECT_EQ(c.run.train.data->root, "o2/data/aux");
  EXPECT_EQ(app::load_demo_config("").out_dir, "runs/demo");
}

TEST(Demo, UnknownKeysAndMissingSectionsAreErrorsNamingThem) {
  auto e = error_of([] { app::load_demo_config("", {"demo.outdir=x"}); });
  EXPECT_NE(e.find("unknown config key 'demo.outdir' in <built-in configs/demo.yaml>"), std::string::npos) << e;
  e = error_of([] { app::load_demo_config("", {"demo.synthetic.aux.clases=2"}); });
  EXPECT_NE(e.find("unknown config key 'demo.synthetic.aux.clases'"), std::string::npos) << e;
  e = error_of([] { app::load_demo_config("", {"train.lrr=1"}); });
  EXPECT_NE(e.find("unknown config key 'train.lrr'"), std::string::npos) << e;
  e = error_of([] { app::load_demo_config("", {"demo.synthetic.target.layout=coco"}); });
  EXPECT_NE(e.find("'demo.synthetic.target.layout'"), std::string::npos) << e;
  EXPECT_NE(e.find("expected mvtec or visa, found 'coco'"), std::string::npos) << e;

  const auto d = temp_dir("cfg");
  std::ofstream(d / "no_eval.yaml") << "model:\n  backbone: x.json\ntrain:\n  data:\n    layout: visa\n    root: r\n";
  e = error_of([&] { app::load_demo_config((d / "no_eval.yaml").string()); });
  EXPECT_NE(e.find("demo needs an `eval.data` section in " + (d / "no_eval.yaml").string()), std::string::npos) << e;
  e = error_of([&] { app::load_demo_config((d / "missing.yaml").string()); });
  EXPECT_NE(e.find("cannot open config file"), std::string::npos) << e;
}

TEST(Demo, ComparisonTableShowsBothColumnsAndTheChange) {
  app::EvalResult u, t;
  u.mean.pixel.auroc = 0.5;
  t.mean.pixel.auroc = 0.75;
  const auto s = app::format_demo_comparison(&u, t);
  EXPECT_NE(s.find("untrained"), std::string::npos) << s;
  EXPECT_NE(s.find("50.00"), std::string::npos) << s;
  EXPECT_NE(s.find("75.00"), std::string::npos) << s;
  EXPECT_NE(s.find("+25.00"), std::string::npos) << s;
}

TEST(Demo, MiniatureRunEndToEnd) {
  const auto dir = temp_dir("run");
  const auto cfg = app::load_demo_config("", mini_overrides(), dir.string());
  std::ostringstream out;
  app::DemoOptions o;
  o.progress = false;
  const auto r = app::run_demo(cfg, out, o);
  const std::string text = out.str();
  EXPECT_NE(text.find("Untrained head (baseline)"), std::string::npos) << text;
  EXPECT_NE(text.find("Trained head"), std::string::npos) << text;
  EXPECT_NE(text.find("demo finished"), std::string::npos) << text;
  EXPECT_EQ(r.generated.size(), 2u);
  for (const char* p :
       {"data/aux/split_csv/1cls.csv", "data/target", "train/last.pth", "train/epochs.jsonl", "eval/metrics.json",
        "eval/metrics.md", "eval/imgs", "eval_untrained/metrics.json", "summary.json"})
    EXPECT_TRUE(fs::exists(dir / p)) << p;
  EXPECT_FALSE(fs::exists(dir / "eval_untrained/imgs"));
  // at least one PNG strip per target class
  int pngs = 0;
  for (auto& e : fs::recursive_directory_iterator(dir / "eval/imgs")) pngs += e.path().extension() == ".png";
  EXPECT_GE(pngs, 2);
  // the built-in backbone is written when configs/models/tiny.json is not reachable
  std::ifstream in(dir / "summary.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("status"), "complete");
  EXPECT_EQ(j.at("train").at("steps").get<int64_t>(), r.train.steps);
  EXPECT_GT(r.train.steps, 0);
  EXPECT_TRUE(j.at("trained").at("pixel_auroc").is_number());
  EXPECT_TRUE(j.at("untrained").at("pixel_auroc").is_number());
  EXPECT_DOUBLE_EQ(j.at("trained").at("pixel_auroc").get<double>(), *r.trained.mean.pixel.auroc);
  EXPECT_DOUBLE_EQ(j.at("untrained").at("pixel_auroc").get<double>(), *r.untrained->mean.pixel.auroc);
  // the two evaluations saw the same target images
  EXPECT_EQ(r.trained.images, r.untrained->images);
  EXPECT_EQ(r.trained.images, 2 * 5);

  // A rerun reuses the (identical) synthetic sets.
  std::ostringstream out2;
  const auto r2 = app::run_demo(app::load_demo_config("", mini_overrides(), dir.string()), out2, o);
  EXPECT_TRUE(r2.generated.empty());
  EXPECT_DOUBLE_EQ(*r2.trained.mean.pixel.auroc, *r.trained.mean.pixel.auroc) << "same seeds, same result";
}

TEST(Demo, FailingRunLeavesNoSummary) {
  const auto dir = temp_dir("fail");
  std::ofstream(dir / "summary.json") << "{\"status\": \"complete\"}";  // stale, from an earlier run
  auto ov = mini_overrides();
  ov.push_back("eval.data.root=" + (dir / "no_such_set").string());
  const auto cfg = app::load_demo_config("", ov, dir.string());
  std::ostringstream out;
  app::DemoOptions o;
  o.progress = false;
  const auto e = error_of([&] { app::run_demo(cfg, out, o); });
  EXPECT_NE(e.find((dir / "no_such_set").string()), std::string::npos) << e;
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dir / "summary.json"));
  EXPECT_FALSE(fs::exists(dir / "data/target")) << "a synthetic set nobody reads is not generated";
}
