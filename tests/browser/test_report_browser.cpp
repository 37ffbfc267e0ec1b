// The HTML reports (README "Reports"): escaping and number formats of the page builder, the
// predict page from a hand-made scores.json, and, in headless Chromium
// (tests/browser/check_report.mjs), the report.html of real eval, predict, ablate and demo runs
// on tiny synthetic data: the numbers shown equal the JSON files, every image loads, nothing is
// fetched from outside the report's folder (each folder is moved before it is opened, so the
// links must be relative), predict's table sorts; a screenshot per report goes to
// <build>/artifacts/report_<kind>.png. Without chromium or playwright-core the browser tests
// skip with the reason, except under CI=true, where they fail.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../model/vcp_fixture.h"
#include "support/run_binary.h"
#include "support/synth_set.h"
#include "support/test_util.h"
#include "vcpclip/app/ablate/ablate.h"
#include "vcpclip/app/demo/demo.h"
#include "vcpclip/app/evaluate.h"
#include "vcpclip/app/predict.h"
#include "vcpclip/app/report/predict_html.h"
#include "vcpclip/eval/html.h"

using namespace vcpclip;
namespace fx = vcp_fixture;
namespace fs = std::filesystem;
namespace h = eval::html;

namespace {

fs::path fresh_dir(const std::string& name) { return vcpclip::testing::fresh_temp_dir("vcpclip_report_" + name); }

std::string read(const fs::path& p) { return vcpclip::testing::slurp(p.string()); }

/// Moves a finished run folder elsewhere (a report with absolute links would break) and returns
/// its report.html there.
fs::path moved_report(const fs::path& run_dir, const std::string& kind) {
  const fs::path to = fresh_dir("moved_" + kind) / "copied run";
  fs::copy(run_dir, to, fs::copy_options::recursive);
  fs::remove_all(run_dir);
  return to / "report.html";
}

/// Opens the report in Chromium (tests/browser/check_report.mjs); skips (fails under CI=true)
/// when the browser or node cannot run here.
void browse(const std::string& kind, const fs::path& report) {
  ASSERT_TRUE(fs::exists(report)) << report;
  const char* ci = std::getenv("CI");
  const bool in_ci = ci && std::string(ci) == "true";
  if (vcpclip::testing::run_command("command -v node").status != 0) {
    if (in_ci) FAIL() << "node is not installed (scripts/test_deps.sh installs it)";
    GTEST_SKIP() << "node is not installed (scripts/test_deps.sh installs it)";
  }
  const fs::path script = fs::path(VCPCLIP_SOURCE_DIR) / "tests/browser/check_report.mjs";
  const fs::path shot = fs::path(VCPCLIP_BINARY_DIR) / "artifacts" / ("report_" + kind + ".png");
  const auto r = vcpclip::testing::run_command("node '" + script.string() + "' " + kind + " '" + report.string() +
                                               "' '" + shot.string() + "'");
  if (r.status == 77) GTEST_SKIP() << r.out;
  EXPECT_EQ(r.status, 0) << r.out;
  std::printf("%s", r.out.c_str());
  EXPECT_TRUE(fs::exists(shot)) << shot;
}

/// 2 target classes × 6 test images (64 px) and the tiny golden VCP fixture (as test_calibrate).
const fs::path& synth_root() {
  static const fs::path root = vcpclip::testing::make_synth_target_set("vcpclip_report_synth", 2, 6, 0);
  return root;
}

app::EvalRequest eval_request(const fs::path& out) {
  app::EvalRequest r;
  r.runtime.threads = 1;
  r.model = fx::options();
  r.checkpoint = fx::path("tiny_vcp.pth");
  data::DataOptions d;
  d.layout = "mvtec", d.root = synth_root().string(), d.split = "test", d.workers = 1;
  r.eval.data = d;
  r.eval.batch_size = 4;
  r.eval.export_png = true;
  r.eval.png_limit = 4;
  r.out_dir = out.string();
  r.progress = false;
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The page builder

TEST(ReportHtml, EscapesTextAndEncodesLinks) {
  EXPECT_EQ(h::escape("<b class=\"x\">Tom & Jerry's</b>"),
            "&lt;b class=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/b&gt;");
  EXPECT_EQ(h::url_path("good/a b#1?.png"), "good/a%20b%231%3F.png");
  EXPECT_EQ(h::url_path("\xC3\xA9/x\"y'.png"), "%C3%A9/x%22y%27.png");
}

TEST(ReportHtml, NumbersAsInMetricsMd) {
  EXPECT_EQ(h::format_number(0.5, h::Format::pct2), "50.00");
  EXPECT_EQ(h::format_number(0.923456, h::Format::pct2), "92.35");
  EXPECT_EQ(h::format_number(0.1234567, h::Format::f3), "0.123");
  EXPECT_EQ(h::format_number(1.23456, h::Format::f4), "1.2346");
  EXPECT_EQ(h::format_number(std::nullopt, h::Format::pct2), "n/a");
  EXPECT_EQ(h::format_number(std::nan(""), h::Format::f3), "n/a");
  // the metrics.md cell of the same value is the same text
  eval::EvaluationReport r;
  r.classes.emplace_back();
  r.classes[0].name = "c";
  r.classes[0].pixel.auroc = 0.923456;
  EXPECT_NE(eval::report_markdown(r).find(" 92.35 |"), std::string::npos) << eval::report_markdown(r);
  EXPECT_EQ(h::number_cell(0.923456, h::Format::pct2, "metrics.json", "/classes/0/pixel_auroc"),
            "<td class=\"num\" data-src=\"metrics.json\" data-ptr=\"/classes/0/pixel_auroc\" data-fmt=\"pct2\" "
            "data-sort=\"0.923456\">92.35</td>");
}

TEST(ReportHtml, PredictPageEscapesEveryStringAndLinksTheEntriesFiles) {
  const auto scores = nlohmann::json::parse(R"({
    "checkpoint": "a<b>.pth", "image_size": 64, "alpha": 0.2, "sigma": 1, "topk": 64,
    "calibration": {"path": "c.json", "class": "<script>x</script>", "method": "quantile",
                    "image_threshold": 1.5, "pixel_threshold": 0.25},
    "images": [{"path": "in/<script>alert(1)</script>.png", "stem": "s", "score": 1.23456, "heatmap": "good/a b.png",
                "decision": "ng", "normalized_score": 0.75, "mask": "good/a b_mask.png", "mask_area": 12,
                "regions": []},
               {"path": "in/ok.png", "stem": "ok", "score": 0.5, "decision": "ok", "normalized_score": 0.25,
                "mask": "ok_mask.png", "mask_area": 0, "regions": []}],
    "skipped": [{"path": "bad&.png", "error": "cannot decode <it>"}]})");
  const std::string html = app::predict_report_html(scores);
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("<script>x"), std::string::npos);
  EXPECT_NE(html.find("in/&lt;script&gt;alert(1)&lt;/script&gt;.png"), std::string::npos);
  EXPECT_NE(html.find("a&lt;b&gt;.pth"), std::string::npos);
  EXPECT_NE(html.find("bad&amp;.png: cannot decode &lt;it&gt;"), std::string::npos);
  EXPECT_NE(html.find("src=\"good/a%20b.png\""), std::string::npos);
  EXPECT_NE(html.find("src=\"good/a%20b_mask.png\""), std::string::npos);
  EXPECT_NE(html.find("data-ptr=\"/images/0/score\" data-fmt=\"f4\" data-sort=\"1.23456\">1.2346<"), std::string::npos);
  EXPECT_NE(html.find("data-ptr=\"/images/0/decision\" data-fmt=\"upper\">NG<"), std::string::npos);
  EXPECT_NE(html.find("data-ptr=\"/images/1/decision\" data-fmt=\"upper\">OK<"), std::string::npos);
  EXPECT_NE(html.find("1 NG"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos) << "no network reference";
}

// ---------------------------------------------------------------------------------------------
// Real runs, opened in Chromium

TEST(ReportBrowser, EvalReport) {
  const fs::path out = fresh_dir("eval") / "eval";
  app::run_eval(eval_request(out));
  const std::string html = read(out / "report.html");
  EXPECT_NE(html.find("Evaluation report"), std::string::npos);
  EXPECT_EQ(html.find(out.string()), std::string::npos) << "links must be relative";
  browse("eval", moved_report(out, "eval"));
}

TEST(ReportBrowser, PredictReportWithCalibration) {
  const fs::path dir = fresh_dir("predict");
  auto ereq = eval_request(dir / "eval");
  ereq.eval.export_png = false;
  ereq.calibration_out = (dir / "calibration.json").string();
  app::run_eval(ereq);
  app::PredictRequest r;
  r.runtime.threads = 1;
  r.model = fx::options();
  r.checkpoint = fx::path("tiny_vcp.pth");
  for (const auto& cls : fs::directory_iterator(synth_root()))
    if (fs::is_directory(cls.path() / "test")) {
      for (const auto& d : fs::directory_iterator(cls.path() / "test")) r.inputs.push_back(d.path().string());
      r.class_name = cls.path().filename().string();
      break;
    }
  std::sort(r.inputs.begin(), r.inputs.end());
  ASSERT_GE(r.inputs.size(), 2u);
  r.out_dir = (dir / "out").string();
  r.predict.batch_size = 4;
  r.calibration = ereq.calibration_out;
  r.progress = false;
  const auto summary = app::run_predict(r);
  ASSERT_GE(summary.images.size(), 4u);
  browse("predict", moved_report(dir / "out", "predict"));
}

TEST(ReportBrowser, AblateReport) {
  const fs::path dir = fresh_dir("ablate");
  const std::string tiny = std::string(VCPCLIP_SOURCE_DIR) + "/configs/models/tiny.json";
  std::ofstream(dir / "base.yaml") << "runtime: {device: cpu, threads: 1, seed: 1}\n"
                                      "model: {backbone: " +
                                          tiny +
                                          ", weights: \"\", image_size: 32, "
                                          "features_list: [2, 4], post_heads: 8}\n"
                                          "postprocess: {alpha: 0.2, sigma: 2, topk: 50}\n"
                                          "eval: {batch_size: 4, data: {layout: mvtec, root: none, workers: 1}}\n";
  std::ofstream(dir / "ablation.yaml")
      << "base: base.yaml\nout_dir: " << (dir / "out").string() << "\nseeds: [5, 6]\n"
      << "synthetic:\n  - {out: \"${out_dir}/data/target\", layout: mvtec, set: target, classes: 2, images: 4,"
         " train_images: 0, size: 32, seed: 2}\n"
         "set: {eval.data.root: \"${out_dir}/data/target\"}\n"
         "variants:\n  - name: zero_shot\n    train: false\n"
         "  - name: words\n    train: false\n    set: {model.templates_normal: [\"a photo of a flawless "
         "<|class|>\"]}\n";
  app::AblateOptions opts;
  opts.progress = false;
  app::run_ablation(app::load_ablation_config((dir / "ablation.yaml").string()), opts);
  browse("ablate", moved_report(dir / "out", "ablate"));
}

TEST(ReportBrowser, DemoReportSideBySide) {
  const fs::path dir = fresh_dir("demo") / "demo";
  const auto cfg = app::load_demo_config(
      "",
      {"demo.synthetic.aux.classes=2", "demo.synthetic.aux.images=6", "demo.synthetic.aux.size=64",
       "demo.synthetic.target.classes=2", "demo.synthetic.target.images=5", "demo.synthetic.target.size=64",
       "model.image_size=32", "demo.backbone.patches=500", "train.epochs=1", "train.batch_size=4",
       "train.data.workers=1", "eval.data.workers=1", "eval.png_limit=2", "runtime.threads=1"},
      dir.string());
  std::ostringstream out;
  app::DemoOptions o;
  o.progress = false;
  app::run_demo(cfg, out, o);
  // the demo ends by naming the one file to open
  const std::string text = out.str();
  const std::string last = "Open " + (dir / "report.html").string() + "\n";
  ASSERT_GE(text.size(), last.size());
  EXPECT_EQ(text.substr(text.size() - last.size()), last) << text;
  EXPECT_TRUE(fs::exists(dir / "eval_untrained" / "imgs" / "index.json"));
  browse("demo", moved_report(dir, "demo"));
}
