// The unified run config: every section parsed by its area's parser, unknown keys anywhere are
// errors naming key and file, overrides, defaults and "command needs section" messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/test_util.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"

using vcpclip::testing::error_of;

using namespace vcpclip;
namespace fs = std::filesystem;

namespace {

const char* kFull = R"(
runtime:
  device: cpu
  threads: 1
  seed: 7
  log_level: warn
model:
  backbone: configs/models/tiny.json
  image_size: 64
  features_list: [2, 4]
postprocess:
  alpha: 0.3
  sigma: 4
  topk: 100
predict:
  batch_size: 3
train:
  epochs: 2
  lr: 1.0e-4
  data:
    layout: mvtec
    root: runs/synth/aux
  val_data:
    layout: mvtec
    root: runs/synth/val
eval:
  batch_size: 5
  aupro: reference
  save_maps: true
  png_limit: 4
  data:
    layout: visa
    root: data/visa
    classes: [pcb1]
    skip_bad: true
)";

fs::path write_config(const std::string& name, const std::string& text) {
  auto dir = fs::temp_directory_path() / ("vcpclip_run_config_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto p = dir / name;
  std::ofstream(p) << text;
  return p;
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) s.replace(pos, from.size(), to);
  return s;
}

}  // namespace

TEST(RunConfig, ParsesEverySection) {
  auto p = write_config("full.yaml", kFull);
  auto cfg = app::load_run_config(p.string());
  EXPECT_EQ(cfg.path, p.string());
  EXPECT_EQ(cfg.runtime.threads, 1);
  EXPECT_EQ(cfg.runtime.seed, 7u);
  EXPECT_EQ(cfg.runtime.log_level, "warn");
  ASSERT_TRUE(cfg.model.has_value());
  EXPECT_EQ(cfg.model->input_size, 64);
  EXPECT_EQ(cfg.model->features_list, (std::vector<int64_t>{2, 4}));
  EXPECT_DOUBLE_EQ(cfg.postprocess.alpha, 0.3);
  EXPECT_DOUBLE_EQ(cfg.postprocess.sigma, 4.0);
  EXPECT_EQ(cfg.postprocess.topk, 100);
  EXPECT_EQ(cfg.predict.batch_size, 3);
  EXPECT_EQ(cfg.train.options.epochs, 2);
  EXPECT_DOUBLE_EQ(cfg.train.options.lr, 1e-4);
  ASSERT_TRUE(cfg.train.data.has_value());
  EXPECT_EQ(cfg.train.data->layout, "mvtec");
  EXPECT_TRUE(cfg.train.data->augment);  // training defaults for train.data
  EXPECT_DOUBLE_EQ(cfg.train.data->mosaic_p, 0.2);
  ASSERT_TRUE(cfg.train.val_data.has_value());
  EXPECT_FALSE(cfg.train.val_data->augment);  // evaluation defaults for val_data
  ASSERT_TRUE(cfg.eval.data.has_value());
  EXPECT_EQ(cfg.eval.data->layout, "visa");
  EXPECT_EQ(cfg.eval.data->classes, (std::vector<std::string>{"pcb1"}));
  EXPECT_TRUE(cfg.eval.data->skip_bad);
  EXPECT_FALSE(cfg.eval.data->augment);
  EXPECT_EQ(cfg.eval.data->split, "test");
  EXPECT_EQ(cfg.eval.batch_size, 5);
  EXPECT_EQ(cfg.eval.metrics.aupro, eval::AuproMode::kReference);
  EXPECT_TRUE(cfg.eval.save_maps);
  EXPECT_FALSE(cfg.eval.export_png);
  EXPECT_EQ(cfg.eval.png_limit, 4);
}

TEST(RunConfig, AbsentSectionsGetDefaultsAndRequireSaysWhatIsMissing) {
  auto p = write_config("empty.yaml", "# nothing\n");
  auto cfg = app::load_run_config(p.string());
  EXPECT_EQ(cfg.runtime.device, "cpu");
  EXPECT_EQ(cfg.runtime.seed, 333u);
  EXPECT_DOUBLE_EQ(cfg.postprocess.alpha, 0.2);
  EXPECT_DOUBLE_EQ(cfg.postprocess.sigma, 8.0);
  EXPECT_EQ(cfg.postprocess.topk, 2000);
  EXPECT_EQ(cfg.eval.batch_size, 8);
  EXPECT_EQ(cfg.eval.metrics.aupro, eval::AuproMode::kExact);
  EXPECT_DOUBLE_EQ(cfg.eval.metrics.aupro_fpr_limit, 0.3);
  EXPECT_EQ(cfg.train.options.epochs, 10);
  EXPECT_FALSE(cfg.model.has_value());
  EXPECT_FALSE(cfg.eval.data.has_value());
  EXPECT_FALSE(cfg.train.data.has_value());
  EXPECT_EQ(
      error_of([&] { cfg.require_model("eval"); }),
      "eval needs a `model` section in " + p.string() + " (at least model.backbone; see configs/eval_mvtec.yaml)");
  EXPECT_EQ(
      error_of([&] { cfg.require_eval_data("eval"); }),
      "eval needs an `eval.data` section in " + p.string() + " (the test set: eval.data.layout and eval.data.root)");
  EXPECT_EQ(error_of([&] { cfg.require_train_data("train"); }),
            "train needs a `train.data` section in " + p.string() +
                " (the training set: train.data.layout and train.data.root)");
}

TEST(RunConfig, UnknownKeyAnywhereNamesKeyAndFile) {
  struct Case {
    std::string from, to, key;
  };
  const std::vector<Case> cases{
      {"runtime:\n", "runtime:\n  treads: 2\n", "runtime.treads"},
      {"  image_size: 64\n", "  image_size: 64\n  imagesize: 64\n", "model.imagesize"},
      {"  topk: 100\n", "  topk: 100\n  top_k: 5\n", "postprocess.top_k"},
      {"  batch_size: 3\n", "  batch_size: 3\n  heatmaps: true\n", "predict.heatmaps"},
      {"  epochs: 2\n", "  epochs: 2\n  epoch: 2\n", "train.epoch"},
      {"    root: runs/synth/aux\n", "    root: runs/synth/aux\n    workrs: 1\n", "train.data.workrs"},
      {"    root: runs/synth/val\n", "    root: runs/synth/val\n    clases: [a]\n", "train.val_data.clases"},
      {"  aupro: reference\n", "  aupro: reference\n  auproo: exact\n", "eval.auproo"},
      {"    root: data/visa\n", "    root: data/visa\n    skipbad: true\n", "eval.data.skipbad"},
  };
  for (const auto& c : cases) {
    auto p = write_config("unknown.yaml", replace(kFull, c.from, c.to));
    const std::string err = error_of([&] { app::load_run_config(p.string()); });
    const std::string expected = "unknown config key '" + c.key + "' in " + p.string() + "; known keys of '" +
                                 c.key.substr(0, c.key.rfind('.')) + "': ";
    EXPECT_EQ(err.substr(0, expected.size()), expected) << err;
  }
  // A misspelt section at the top level: the full message, with the list of sections.
  auto p = write_config("unknown_top.yaml", std::string(kFull) + "evaluation:\n  batch_size: 2\n");
  EXPECT_EQ(error_of([&] { app::load_run_config(p.string()); }),
            "unknown config key 'evaluation' in " + p.string() +
                "; known keys: eval, few_shot, model, postprocess, predict, runtime, serve, train");
}

TEST(RunConfig, OverridesApplyBeforeParsing) {
  auto p = write_config("over.yaml", kFull);
  auto cfg = app::load_run_config(p.string(), {"eval.batch_size=2", "eval.data.classes=[pcb2, pcb3]",
                                               "runtime.device=cuda:1", "postprocess.alpha=0.5"});
  EXPECT_EQ(cfg.eval.batch_size, 2);
  EXPECT_EQ(cfg.eval.data->classes, (std::vector<std::string>{"pcb2", "pcb3"}));
  EXPECT_EQ(cfg.runtime.device, "cuda:1");
  EXPECT_DOUBLE_EQ(cfg.postprocess.alpha, 0.5);
  EXPECT_NE(cfg.text.find("batch_size: 2"), std::string::npos) << cfg.text;
  // An override can create a section that the file lacks.
  auto e = write_config("over_empty.yaml", "runtime:\n  threads: 1\n");
  auto cfg2 = app::load_run_config(e.string(), {"eval.data.layout=mvtec", "eval.data.root=/x"});
  ASSERT_TRUE(cfg2.eval.data.has_value());
  EXPECT_EQ(cfg2.eval.data->root, "/x");
  // A mistyped override is checked like a key in the file.
  const std::string err = error_of([&] { app::load_run_config(p.string(), {"eval.batchsize=2"}); });
  const std::string expected = "unknown config key 'eval.batchsize' in " + p.string() + "; known keys of 'eval': ";
  EXPECT_EQ(err.substr(0, expected.size()), expected);
  EXPECT_EQ(error_of([&] { app::load_run_config(p.string(), {"batch_size"}); }),
            "override 'batch_size' must look like key.subkey=value (e.g. train.epochs=3)");
}

TEST(RunConfig, BadValuesNameKeyAndFile) {
  auto p = write_config("bad.yaml", kFull);
  EXPECT_EQ(error_of([&] { app::load_run_config(p.string(), {"runtime.device=gpu"}); }),
            "config key 'runtime.device' in " + p.string() + ": expected cpu, cuda or cuda:N, found 'gpu'");
  EXPECT_EQ(error_of([&] { app::load_run_config(p.string(), {"eval.batch_size=0"}); }),
            "config key 'eval.batch_size' in " + p.string() + ": expected at least 1, found 0");
  EXPECT_EQ(error_of([&] { app::load_run_config(p.string(), {"runtime.log_level=loud"}); }),
            "config key 'runtime.log_level' in " + p.string() +
                ": expected trace, debug, info, warn, error or off, found 'loud'");
  EXPECT_EQ(error_of([&] { app::load_run_config("/nonexistent/x.yaml"); }),
            "cannot open config file '/nonexistent/x.yaml': no such file");
}

TEST(RunConfig, ShippedConfigsLoad) {
  // Every run config of the repository passes the file-wide check (whichever command reads it).
  int n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(VCPCLIP_SOURCE_DIR) / "configs")) {
    if (e.path().extension() != ".yaml") continue;
    // demo.yaml adds a `demo:` section and ${out_dir} that app/demo/demo.cpp resolves before it hands
    // the rest to parse_run_config (its own tests load it).
    if (e.path().filename() == "demo.yaml") continue;
    SCOPED_TRACE(e.path().string());
    EXPECT_NO_THROW(app::load_run_config(e.path().string()));
    ++n;
  }
  EXPECT_GE(n, 3);
  auto cfg = app::load_run_config(std::string(VCPCLIP_SOURCE_DIR) + "/configs/eval_mvtec.yaml");
  EXPECT_EQ(cfg.require_model("eval").input_size, 518);
  EXPECT_EQ(cfg.require_model("eval").features_list, (std::vector<int64_t>{6, 12, 18, 24}));
  EXPECT_EQ(cfg.require_eval_data("eval").layout, "mvtec");
  auto visa = app::load_run_config(std::string(VCPCLIP_SOURCE_DIR) + "/configs/eval_visa.yaml");
  EXPECT_EQ(visa.require_eval_data("eval").layout, "visa");
}

TEST(RunConfig, Tf32IsOffByDefaultAndConfigurable) {
  auto off = vcpclip::app::parse_run_config("runtime: {device: cpu}\n", "<tf32>");
  EXPECT_FALSE(off.runtime.tf32);
  auto on = vcpclip::app::parse_run_config("runtime: {tf32: true}\n", "<tf32>");
  EXPECT_TRUE(on.runtime.tf32);
  try {
    vcpclip::app::parse_run_config("runtime: {tf32: maybe}\n", "<tf32>");
    FAIL() << "expected an error";
  } catch (const vcpclip::Error& e) {
    EXPECT_EQ(std::string(e.what()), "config key 'runtime.tf32' in <tf32>: expected true or false, found 'maybe'");
  }
}
