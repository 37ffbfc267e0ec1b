// `ablate`: config parsing and errors (variant and key named), override flattening, summary maths
// on hand-made results, a 2-variant × 2-seed ablation end to end on the tiny backbone and 32 px
// synthetic sets (tables, PNG), resumption (finished runs skipped by their results.json),
// the shipped configs, and the CLI.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "support/test_util.h"
#include "vcpclip/app/ablate/ablate.h"
#include "vcpclip/app/ablate/html.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"

using vcpclip::testing::error_of;

using namespace vcpclip;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("vcpclip_ablate_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(read(p)); }

/// A tiny base run config: tiny backbone at 32 px, 1 epoch of at most 2 steps, 1 thread.
std::string base_config(const fs::path& dir) {
  const std::string tiny = std::string(VCPCLIP_SOURCE_DIR) + "/configs/models/tiny.json";
  return "runtime: {device: cpu, threads: 1, seed: 1}\n"
         "model:\n  backbone: " +
         tiny +
         "\n  weights: \"\"\n  image_size: 32\n  features_list: [2, 4]\n"
         "  post_heads: 8\n"
         "postprocess: {alpha: 0.2, sigma: 2, topk: 50}\n"
         "train:\n  epochs: 1\n  batch_size: 4\n  lr: 1.0e-3\n  max_steps: 2\n  log_every: 1\n"
         "  data: {layout: visa, workers: 1, root: " +
         (dir / "none").string() +
         "}\n"
         "eval:\n  batch_size: 4\n  data: {layout: mvtec, root: " +
         (dir / "none").string() + ", workers: 1}\n";
}

/// An ablation config over base_config: `variants` is the YAML list body.
fs::path make_ablation(const fs::path& dir, const std::string& variants, const std::string& extra = "",
                       const std::string& seeds = "[5, 6]") {
  write(dir / "base.yaml", base_config(dir));
  const std::string text =
      "base: base.yaml\n"
      "out_dir: " +
      (dir / "out").string() +
      "\n"
      "seeds: " +
      seeds + "\n" + extra +
      "synthetic:\n"
      "  - {out: \"${out_dir}/data/aux\", layout: visa, set: auxiliary, classes: 2, images: 4, train_images: 0,"
      " size: 32, seed: 1}\n"
      "  - {out: \"${out_dir}/data/target\", layout: mvtec, set: target, classes: 2, images: 4, train_images: 0,"
      " size: 32, seed: 2}\n"
      "set:\n"
      "  train.data.root: \"${out_dir}/data/aux\"\n"
      "  eval.data.root: \"${out_dir}/data/target\"\n"
      "variants:\n" +
      variants;
  write(dir / "ablation.yaml", text);
  return dir / "ablation.yaml";
}

const char* kTwoVariants =
    "  - name: full\n"
    "    set: {}\n"
    "  - name: words\n"
    "    train_from: full\n"
    "    set:\n"
    "      model.templates_normal: [\"a photo of a flawless <|class|>\"]\n"
    "      model: {templates_abnormal: [\"a photo of a flawed <|class|>\"]}\n";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Summary maths

TEST(AblateSummary, MeanAndSampleStd) {
  auto s = app::summarize({0.8, 0.9, std::nullopt, 1.0});
  EXPECT_EQ(s.n, 3);
  ASSERT_TRUE(s.mean && s.std);
  EXPECT_NEAR(*s.mean, 0.9, 1e-12);
  EXPECT_NEAR(*s.std, 0.1, 1e-12);  // sqrt((0.01 + 0 + 0.01) / (3 - 1))

  s = app::summarize({0.2, 0.4, 0.9});
  EXPECT_NEAR(*s.mean, 0.5, 1e-12);
  EXPECT_NEAR(*s.std, std::sqrt((0.09 + 0.01 + 0.16) / 2.0), 1e-12);

  s = app::summarize({0.5});
  EXPECT_EQ(s.n, 1);
  EXPECT_NEAR(*s.mean, 0.5, 1e-12);
  EXPECT_FALSE(s.std.has_value());  // one value: no sample std

  s = app::summarize({std::nullopt, std::nullopt});
  EXPECT_EQ(s.n, 0);
  EXPECT_FALSE(s.mean.has_value());
}

TEST(AblateSummary, TablesFromHandMadeResults) {
  app::AblationConfig cfg;
  cfg.path = "hand.yaml";
  cfg.base = "base.yaml";
  cfg.out_dir = "out";
  cfg.seeds = {1, 2};
  app::AblationVariant a, b;
  a.name = "a";
  b.name = "b";
  b.train = false;
  b.train_from = "a";
  cfg.variants = {a, b};
  auto run = [](const std::string& v, uint64_t seed, nlohmann::json metrics, const std::string& state = "ran") {
    app::AblationRun r;
    r.variant = v;
    r.seed = seed;
    r.state = state;
    if (!metrics.is_null()) r.results["metrics"] = metrics;
    if (state == "failed") r.error = "boom";
    return r;
  };
  std::vector<app::AblationRun> runs = {
      run("a", 1, {{"pixel_auroc", 0.9}, {"pixel_aupro", 0.5}, {"image_auroc", nullptr}}),
      run("a", 2, {{"pixel_auroc", 0.8}, {"pixel_aupro", 0.7}, {"image_auroc", 0.6}}, "skipped"),
      run("b", 1, {{"pixel_auroc", 0.75}}),
      run("b", 2, nullptr, "failed"),
  };
  const auto s = app::summarize_runs(cfg, runs);
  ASSERT_EQ(s.rows.size(), 2u);
  EXPECT_EQ(s.rows[0].runs, 2);
  EXPECT_EQ(s.rows[1].runs, 1);
  EXPECT_EQ(s.rows[1].failed, 1);
  const auto& pa = s.rows[0].metrics[0];
  EXPECT_EQ(pa.first, "pixel_auroc");
  EXPECT_NEAR(*pa.second.mean, 0.85, 1e-12);
  EXPECT_NEAR(*pa.second.std, std::sqrt(0.005), 1e-12);

  const std::string md = app::summary_markdown(cfg, s);
  // pixel AUROC 85 ± 7.07 (sample std), AUPRO 60 ± 14.14, image AUROC one value (no std), n/a elsewhere
  EXPECT_NE(md.find("| a       | train     | 2/2            | 85.00 ± 7.07 | 60.00 ± 14.14 |   n/a |   n/a | n/a |"
                    "    60.00 |   n/a |   n/a |       n/a |\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| b       | eval of a | 1/2 (1 failed) |        75.00 |           n/a |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("|:--------|:----------|:---------------|-------------:|"), std::string::npos) << md;
  EXPECT_NE(md.find("- b seed 2: boom"), std::string::npos) << md;

  const std::string csv = app::summary_csv(s);
  std::istringstream lines(csv);
  std::string head, row_a, row_b;
  std::getline(lines, head);
  std::getline(lines, row_a);
  std::getline(lines, row_b);
  EXPECT_EQ(head.rfind("variant,runs,failed,pixel_auroc_mean,pixel_auroc_std,pixel_auroc_n,pixel_aupro_mean,", 0), 0u);
  EXPECT_EQ(row_a.rfind("a,2,0,0.85,0.07071067812,2,0.6,0.1414213562,2,", 0), 0u) << row_a;
  EXPECT_EQ(row_b.rfind("b,1,1,0.75,,1,,,0,", 0), 0u) << row_b;

  const auto j = app::summary_json(cfg, s);
  EXPECT_EQ(j["variants"][0]["summary"]["pixel_auroc"]["n"], 2);
  EXPECT_NEAR(j["variants"][0]["summary"]["pixel_aupro"]["std"].get<double>(), std::sqrt(0.02), 1e-12);
  EXPECT_TRUE(j["variants"][1]["summary"]["pixel_auroc"]["std"].is_null());
  EXPECT_EQ(j["runs"][3]["state"], "failed");
  EXPECT_EQ(j["runs"][3]["error"], "boom");

  const auto png = app::summary_png(cfg, s);
  const cv::Mat img = cv::imdecode(png, cv::IMREAD_COLOR);
  ASSERT_FALSE(img.empty());
  EXPECT_GE(img.cols, 360);
  EXPECT_GE(img.rows, 300);
  // Bars in the legend colours: pixel_auroc (blue, 2 bars + legend), image_auroc (red, 1 bar + legend).
  auto count = [&](cv::Vec3b c) {
    int n = 0;
    for (int y = 0; y < img.rows; ++y)
      for (int x = 0; x < img.cols; ++x) n += img.at<cv::Vec3b>(y, x) == c;
    return n;
  };
  const int blue = count({180, 119, 31}), red = count({40, 39, 214});
  EXPECT_GT(blue, red);      // a: 85 %, b: 75 % vs a: 60 % only
  EXPECT_GT(red, 16 * 100);  // a 60 % bar of 300 px × 16 px, roughly
}

// ---------------------------------------------------------------------------------------------
// Config

TEST(AblateConfig, OverridesAreFlattenedAndRoundTrip) {
  const auto node = YAML::Load(
      "{model: {use_global: false, templates_normal: [\"a photo of a normal <|class|>\", 'x, y <|class|>']},"
      " train.epochs: 3, 'train.lr': 1.0e-3}");
  const auto o = app::overrides_from_map(node, "'set' in test");
  ASSERT_EQ(o.size(), 4u);
  EXPECT_EQ(o[0], "model.use_global=false");
  EXPECT_EQ(o[2], "train.epochs=3");
  const auto dir = fresh_dir("flatten");
  write(dir / "base.yaml", base_config(dir));
  const auto cfg = app::load_run_config((dir / "base.yaml").string(), o);
  EXPECT_FALSE(cfg.model->use_global);
  EXPECT_EQ(cfg.model->templates_normal, (std::vector<std::string>{"a photo of a normal <|class|>", "x, y <|class|>"}));
  EXPECT_EQ(cfg.train.options.epochs, 3);
  EXPECT_DOUBLE_EQ(cfg.train.options.lr, 1e-3);
}

TEST(AblateConfig, ParsesVariantsChainsAndRunOverrides) {
  const auto dir = fresh_dir("parse");
  const auto path = make_ablation(dir, kTwoVariants, "metrics: [pixel_auroc, image_ap]\n");
  const auto c = app::load_ablation_config(path.string());
  EXPECT_EQ(c.base, (dir / "base.yaml").string());  // relative to the ablation config
  EXPECT_EQ(c.seeds, (std::vector<uint64_t>{5, 6}));
  EXPECT_EQ(c.metrics, (std::vector<std::string>{"pixel_auroc", "image_ap"}));
  ASSERT_EQ(c.variants.size(), 2u);
  EXPECT_TRUE(c.variants[0].train);
  EXPECT_FALSE(c.variants[1].train);
  EXPECT_EQ(c.variants[1].train_from, "full");
  ASSERT_EQ(c.synthetic.size(), 2u);
  EXPECT_EQ(c.synthetic[0].out, (dir / "out").string() + "/data/aux");
  EXPECT_EQ(c.synthetic[1].layout, "mvtec");
  const auto ro = c.run_overrides("words", 6);
  const std::string out = (dir / "out").string();
  EXPECT_EQ(ro, (std::vector<std::string>{
                    "train.data.root=\"" + out + "/data/aux\"", "eval.data.root=\"" + out + "/data/target\"",
                    "model.templates_normal=[a photo of a flawless <|class|>]",
                    "model.templates_abnormal=[a photo of a flawed <|class|>]", "runtime.seed=6", "model.init_seed=6",
                    "train.out_dir=" + out + "/words/seed_6/train", "eval.out_dir=" + out + "/words/seed_6/eval"}));
  const auto rc = app::load_run_config(c.base, ro);
  EXPECT_EQ(rc.model->templates_normal, (std::vector<std::string>{"a photo of a flawless <|class|>"}));
  EXPECT_EQ(rc.runtime.seed, 6u);
  EXPECT_EQ(rc.model->init_seed, 6u);
  // --out replaces out_dir everywhere (${out_dir} included).
  const auto c2 = app::load_ablation_config(path.string(), (dir / "elsewhere").string());
  EXPECT_EQ(c2.run_dir("full", 5), (dir / "elsewhere" / "full" / "seed_5").string());
  EXPECT_EQ(c2.synthetic[0].out, (dir / "elsewhere").string() + "/data/aux");
}

TEST(AblateConfig, ErrorsNameVariantAndKey) {
  const auto dir = fresh_dir("errors");
  const std::string p = (dir / "ablation.yaml").string();
  auto load = [&](const std::string& variants, const std::string& extra = "", const std::string& seeds = "[5, 6]") {
    make_ablation(dir, variants, extra, seeds);
    return error_of([&] { app::load_ablation_config(p); });
  };
  // Unknown run-config key inside a variant's set: variant, key and base file named.
  std::string e = load("  - name: full\n  - name: nope\n    set: {model.use_globl: false}\n");
  EXPECT_EQ(e.rfind("ablation config " + p + ", variant 'nope': unknown config key 'model.use_globl' in " +
                        (dir / "base.yaml").string(),
                    0),
            0u)
      << e;
  // Bad value type.
  e = load("  - name: r\n    set: {model.prompt_len: many}\n");
  EXPECT_NE(e.find("variant 'r': config key 'model.prompt_len' in "), std::string::npos) << e;
  EXPECT_NE(e.find("expected an integer, found 'many'"), std::string::npos) << e;
  // Unknown key of a variant itself.
  e = load("  - name: full\n    sett: {}\n");
  EXPECT_EQ(e.rfind("ablation config " + p + ", variant 'full': unknown config key 'variants[0].sett' in " + p, 0), 0u)
      << e;
  // Unknown top-level key.
  e = load("  - name: full\n", "seed: [1]\n");
  EXPECT_EQ(e.rfind("unknown config key 'seed' in " + p +
                        "; known keys: backbones, base, metrics, out_dir, seed_keys, seeds,",
                    0),
            0u)
      << e;
  e = load("  - name: a\n    train_from: ghost\n");
  EXPECT_EQ(e, "ablation config " + p + ", variant 'a': train_from names an unknown variant 'ghost'");
  e = load("  - name: a\n  - name: a\n");
  EXPECT_EQ(e, "ablation config " + p + ": duplicate variant name 'a' (variants[1])");
  e = load("  - name: a\n    train_from: b\n  - name: b\n    train_from: a\n");
  EXPECT_EQ(e, "ablation config " + p + ", variant 'a': train_from cycle a -> b -> a");
  e = load("  - name: a\n  - name: b\n    train: true\n    train_from: a\n");
  EXPECT_NE(
      e.find("variant 'b': train_from 'a' reuses another variant's checkpoint, so `train: true` is contradictory"),
      std::string::npos)
      << e;
  e = load("  - name: a b\n");
  EXPECT_NE(e.find("variant names are directory names of [A-Za-z0-9_.-], found 'a b'"), std::string::npos) << e;
  e = load("  - name: a\n", "metrics: [pixel_aurok]\n");
  EXPECT_NE(e.find("unknown metric 'pixel_aurok'; known: pixel_auroc, "), std::string::npos) << e;
  e = load("  - name: a\n", "", "[3, 3]");
  EXPECT_NE(e.find("seed 3 is listed twice"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------
// End to end: 2 variants × 2 seeds, then resumption.

TEST(AblateRun, TwoVariantsTwoSeedsThenResume) {
  const auto dir = fresh_dir("run");
  const auto path = make_ablation(dir, kTwoVariants);
  const auto cfg = app::load_ablation_config(path.string());
  app::AblateOptions opts;
  opts.progress = false;

  // Dry run: everything pending, nothing written.
  opts.dry_run = true;
  auto s = app::run_ablation(cfg, opts);
  ASSERT_EQ(s.runs.size(), 4u);
  for (const auto& r : s.runs) EXPECT_EQ(r.state, "pending");
  EXPECT_FALSE(fs::exists(dir / "out"));
  opts.dry_run = false;

  s = app::run_ablation(cfg, opts);
  ASSERT_EQ(s.runs.size(), 4u);
  // Training variant first (its seeds), then the evaluation-only one.
  EXPECT_EQ(s.runs[0].variant, "full");
  EXPECT_EQ(s.runs[2].variant, "words");
  for (const auto& r : s.runs) EXPECT_EQ(r.state, "ran") << r.variant << " " << r.seed << ": " << r.error;
  const fs::path out = dir / "out";
  for (const char* v : {"full", "words"})
    for (int seed : {5, 6}) {
      const fs::path rd = out / v / ("seed_" + std::to_string(seed));
      ASSERT_TRUE(fs::exists(rd / "results.json")) << rd;
      EXPECT_TRUE(fs::exists(rd / "eval" / "metrics.json"));
      EXPECT_TRUE(fs::exists(rd / "config.yaml"));
      const auto j = read_json(rd / "results.json");
      EXPECT_EQ(j["variant"], v);
      EXPECT_EQ(j["seed"], seed);
      EXPECT_TRUE(j["metrics"]["pixel_auroc"].is_number());
      EXPECT_EQ(j["images"], 8);  // 2 target classes × 4 images
    }
  EXPECT_TRUE(fs::exists(out / "full" / "seed_5" / "train" / "last.pth"));
  EXPECT_TRUE(fs::exists(out / "full" / "seed_5" / "train" / "done.json"));
  EXPECT_FALSE(fs::exists(out / "words" / "seed_5" / "train"));  // evaluation only
  // The evaluation-only variant used full's checkpoint of the same seed and its own words.
  const auto w6 = read_json(out / "words" / "seed_6" / "results.json");
  EXPECT_EQ(w6["checkpoint"], (out / "full" / "seed_6" / "train" / "last.pth").string());
  EXPECT_NE(read(out / "words" / "seed_6" / "config.yaml").find("a photo of a flawless <|class|>"), std::string::npos);
  // Different seeds → different trained heads → different numbers.
  EXPECT_NE(read_json(out / "full" / "seed_5" / "results.json")["metrics"].dump(),
            read_json(out / "full" / "seed_6" / "results.json")["metrics"].dump());

  // Summary files.
  for (const char* f : {"summary.md", "summary.csv", "summary.json", "summary.png"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  const auto sj = read_json(out / "summary.json");
  ASSERT_EQ(sj["variants"].size(), 2u);
  for (const auto& v : sj["variants"]) {
    EXPECT_EQ(v["runs"], 2);
    EXPECT_EQ(v["summary"]["pixel_auroc"]["n"], 2);
    EXPECT_TRUE(v["summary"]["pixel_auroc"]["std"].is_number());
    // mean ± std agree with the per-run results
    std::vector<eval::Metric> vals;
    for (int seed : {5, 6})
      vals.emplace_back(read_json(out / v["name"].get<std::string>() / ("seed_" + std::to_string(seed)) /
                                  "results.json")["metrics"]["pixel_auroc"]
                            .get<double>());
    const auto m = app::summarize(vals);
    EXPECT_DOUBLE_EQ(v["summary"]["pixel_auroc"]["mean"].get<double>(), *m.mean);
    EXPECT_DOUBLE_EQ(v["summary"]["pixel_auroc"]["std"].get<double>(), *m.std);
  }
  EXPECT_NE(read(out / "summary.md").find(" ± "), std::string::npos);
  EXPECT_EQ(read(out / "summary.csv").rfind("variant,runs,failed,pixel_auroc_mean,", 0), 0u);
  const cv::Mat png = cv::imread((out / "summary.png").string());
  ASSERT_FALSE(png.empty());

  // Rerun: every run skipped; results.json untouched (same finished_at and mtime).
  const auto r5 = out / "full" / "seed_5" / "results.json";
  const auto before_text = read(r5);
  const auto before_time = fs::last_write_time(r5);
  const auto ckpt_time = fs::last_write_time(out / "full" / "seed_5" / "train" / "last.pth");
  s = app::run_ablation(cfg, opts);
  for (const auto& r : s.runs) EXPECT_EQ(r.state, "skipped") << r.variant << " " << r.seed;
  EXPECT_EQ(read(r5), before_text);
  EXPECT_EQ(fs::last_write_time(r5), before_time);

  // A run whose results.json is gone (killed after training) reruns its evaluation only: the
  // finished training (train/done.json) is kept.
  fs::remove(r5);
  s = app::run_ablation(cfg, opts);
  int ran = 0;
  for (const auto& r : s.runs) {
    if (r.variant == "full" && r.seed == 5)
      EXPECT_EQ(r.state, "ran");
    else
      EXPECT_EQ(r.state, "skipped");
    ran += r.state == "ran";
  }
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(fs::last_write_time(out / "full" / "seed_5" / "train" / "last.pth"), ckpt_time);
  EXPECT_EQ(read_json(r5)["metrics"], nlohmann::json::parse(before_text)["metrics"]);  // same checkpoint, same numbers

  // The config changed under finished results: a clear error, nothing rerun.
  make_ablation(dir, "  - name: full\n    set: {model.prompt_len: 3}\n  - name: words\n    train_from: full\n");
  const auto changed = app::load_ablation_config(path.string());
  const auto e = error_of([&] { app::run_ablation(changed, opts); });
  EXPECT_EQ(e.rfind(r5.string() + " was written with other settings than variant 'full' of " + path.string(), 0), 0u)
      << e;
}

// report.html's pictures: each class's worst, best and first normal image of the first variant,
// under every variant (first seed), as relative links; a variant that exported none says so.
TEST(AblateSummary, ReportShowsTheSameImagesUnderEveryVariant) {
  const auto dir = fresh_dir("strips");
  const nlohmann::json summary = {
      {"config", "hand.yaml"},
      {"base", "base.yaml"},
      {"seeds", {7, 8}},
      {"variants",
       {{{"name", "a"}, {"train", true}, {"runs", 1}, {"summary", nlohmann::json::object()}},
        {{"name", "b"}, {"train", true}, {"runs", 1}, {"summary", nlohmann::json::object()}},
        {{"name", "c"}, {"runs", 0}, {"summary", nlohmann::json::object()}}}},
      {"runs", nlohmann::json::array()}};
  const nlohmann::json index = {{"classes",
                                 {{{"name", "bottle"},
                                   {"worst", {{"strip", "imgs/bottle/crack/003.png"}, {"pixel_auroc", 0.5}}},
                                   {"best", {{"strip", "imgs/bottle/crack/001.png"}, {"pixel_auroc", 0.9}}},
                                   {"strips",
                                    {{{"strip", "imgs/bottle/crack/001.png"}, {"anomalous", true}},
                                     {{"strip", "imgs/bottle/crack/002.png"}, {"anomalous", true}},
                                     {{"strip", "imgs/bottle/crack/003.png"}, {"anomalous", true}},
                                     {{"strip", "imgs/bottle/good/000.png"}, {"anomalous", false}},
                                     {{"strip", "imgs/bottle/good/004.png"}, {"anomalous", false}}}}}}}};
  for (const char* v : {"a", "b"}) {  // c exported nothing
    const fs::path eval = dir / v / "seed_7" / "eval";
    fs::create_directories(eval / "imgs" / "bottle" / "crack");
    fs::create_directories(eval / "imgs" / "bottle" / "good");
    std::ofstream(eval / "imgs" / "index.json") << index.dump();
    for (const char* f : {"crack/001.png", "crack/002.png", "crack/003.png", "good/000.png", "good/004.png"})
      std::ofstream(eval / "imgs" / "bottle" / f) << "png";
  }
  const std::string html = app::ablate_report_html(summary, dir.string());
  const auto count = [&](const std::string& what) {
    size_t n = 0;
    for (auto at = html.find(what); at != std::string::npos; at = html.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_NE(html.find("Pictures, side by side"), std::string::npos);
  for (const char* v : {"a", "b"}) {
    const std::string pre = std::string("src=\"") + v + "/seed_7/eval/imgs/bottle/";
    EXPECT_EQ(count(pre + "crack/003.png\""), 1u) << v;  // the worst
    EXPECT_EQ(count(pre + "crack/001.png\""), 1u) << v;  // the best
    EXPECT_EQ(count(pre + "good/000.png\""), 1u) << v;   // the first normal image
    EXPECT_EQ(count(pre + "crack/002.png\""), 0u) << v;
    EXPECT_EQ(count(pre + "good/004.png\""), 0u) << v;
  }
  EXPECT_EQ(count("seed_8"), 0u);
  EXPECT_EQ(count("not exported"), 3u);  // c, on each of the three rows
  // Without the runs' folder (or exported pictures) the page has no such section.
  EXPECT_EQ(app::ablate_report_html(summary).find("Pictures, side by side"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Shipped configs and the CLI

TEST(AblateConfigs, ShippedConfigsLoad) {
  const fs::path dir = fs::path(VCPCLIP_SOURCE_DIR) / "configs" / "ablations";
  int n = 0;
  for (const auto& name : {"components", "state_words", "prompt_len", "deep_prompts", "features_list", "backbone"}) {
    for (const std::string prefix : {"", "synthetic_"}) {
      const auto p = dir / (prefix + name + ".yaml");
      SCOPED_TRACE(p.string());
      app::AblationConfig c;
      ASSERT_NO_THROW(c = app::load_ablation_config(p.string()))
          << error_of([&] { app::load_ablation_config(p.string()); });
      EXPECT_GE(c.variants.size(), 3u);
      EXPECT_GE(c.seeds.size(), 2u);
      EXPECT_EQ(c.synthetic.size(), prefix.empty() ? 0u : 2u);
      ++n;
    }
  }
  EXPECT_EQ(n, 12);
  const auto sw = app::load_ablation_config((dir / "state_words.yaml").string());
  EXPECT_EQ(sw.variant("perfect_flawed").train_from, "good_damaged");
  const auto comp = app::load_ablation_config((dir / "components.yaml").string());
  const auto base = app::load_run_config(comp.base, comp.run_overrides("baseline", 333));
  EXPECT_FALSE(base.model->use_global);
  EXPECT_FALSE(base.model->post_vcp);
  EXPECT_EQ(base.model->input_size, 518);
}

TEST(AblateCli, DryRunAndConfigError) {
  const auto dir = fresh_dir("cli");
  const auto path = make_ablation(dir, kTwoVariants);
  auto run = [](const std::string& args, int* status) {
    const std::string cmd = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip " + args + " 2>&1";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
    std::string out;
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, pipe.get())) > 0) out.append(buf, k);
    *status = pclose(pipe.release());
    return out;
  };
  int st = 0;
  std::string out = run("ablate --dry-run --config " + path.string(), &st);
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find("2 variant(s) x 2 seed(s)"), std::string::npos) << out;
  EXPECT_NE(out.find("words"), std::string::npos) << out;
  EXPECT_NE(out.find("eval of full"), std::string::npos) << out;
  make_ablation(dir, "  - name: v1\n    set: {train.epoch: 2}\n");
  out = run("ablate --config " + path.string(), &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("variant 'v1': unknown config key 'train.epoch'"), std::string::npos) << out;
}
