// `vcpclip demo`: synthetic data → backbone → untrained/trained zero-shot eval (see app/demo/demo.h).
#include "vcpclip/app/demo/demo.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "vcpclip/app/config/run_util.h"
#include "vcpclip/app/demo/html.h"
#include "vcpclip/app/synth.h"
#include "vcpclip/app/train.h"
#include "vcpclip/common/error.h"
#include "vcpclip/eval/report.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/config_node.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

namespace {

constexpr const char* kBuiltin = "<built-in configs/demo.yaml>";
constexpr const char* kBuiltinBackbone = "demo.json";  ///< configs/models/demo.json, embedded

using Clock = std::chrono::steady_clock;

std::string normal(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

nlohmann::json metrics_json(const eval::ClassMetrics& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& c : eval::metric_columns()) {
    const auto v = c.get(m);
    j[c.key] = v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  }
  return j;
}

/// Stage 1: the synthetic sets that a data section uses.
void prepare_data(const DemoConfig& cfg, DemoResult& result) {
  const RunConfig& run = cfg.run;
  std::vector<std::string> roots;
  for (const auto* d : {&run.train.data, &run.train.val_data, &run.eval.data})
    if (d->has_value()) roots.push_back(normal((*d)->root));
  for (const auto& s : cfg.synthetic) {
    if (std::find(roots.begin(), roots.end(), normal(s.out)) == roots.end()) {
      spdlog::info("demo: synthetic set {} is not used by any data section; not generated", s.out);
      continue;
    }
    if (ensure_synthetic(s, "demo")) result.generated.push_back(s.out);
  }
  for (const auto* d : {&run.train.data, &run.eval.data})
    VCP_CHECK(fs::exists((*d)->root), "demo: dataset root ", (*d)->root,
              " does not exist (and no demo.synthetic set has it as `out`)");
}

/// Stage 2: the built-in backbone config when its file is not at hand; the demo backbone.
void prepare_model(RunConfig& run, const std::optional<BackboneRecipe>& recipe, const fs::path& dir) {
  model::ModelOptions& mo = *run.model;
  if (!fs::exists(mo.backbone) && fs::path(mo.backbone).filename() == kBuiltinBackbone) {
    const fs::path p = dir / "model" / kBuiltinBackbone;
    fs::create_directories(p.parent_path());
    io::write_file_atomically(p.string(), embedded_demo_backbone());
    spdlog::info("demo: {} not found; using the built-in backbone config ({})", mo.backbone, p.string());
    mo.backbone = p.string();
    run.set_effective("model.backbone", YAML::Node(fs::absolute(p).lexically_normal().string()));
  }
  if (recipe && !mo.weights.empty() && normal(mo.weights) == normal(recipe->out))
    ensure_backbone(*recipe, mo, *run.train.data);
}

nlohmann::json train_json(const train::TrainRequest& req, const train::TrainSummary& s) {
  auto loss = [&](bool first) {
    if (s.epochs.empty()) return nlohmann::json(nullptr);
    return nlohmann::json(first ? s.epochs.front().loss : s.epochs.back().loss);
  };
  return {{"data", req.data.root},    {"out_dir", req.train.out_dir},         {"steps", s.steps},
          {"epochs", s.epochs_done},  {"last_checkpoint", s.last_checkpoint}, {"first_loss", loss(true)},
          {"final_loss", loss(false)}};
}

nlohmann::json summary_json(const DemoConfig& cfg, const DemoResult& r, const train::TrainRequest& treq,
                            const EvalRequest& ereq, const nlohmann::json& stages) {
  const model::ModelOptions& mo = *cfg.run.model;
  nlohmann::json j;
  j["status"] = "complete";
  j["finished_at"] = now_iso();
  j["config"] = cfg.path;
  j["overrides"] = cfg.run.overrides;
  j["out_dir"] = cfg.out_dir;
  j["seconds"] = r.seconds;
  j["stages"] = stages;
  j["device"] = cfg.run.runtime.device;
  j["backbone"] = mo.backbone;
  j["weights"] = mo.weights.empty() ? nlohmann::json(nullptr) : nlohmann::json(mo.weights);
  j["generated"] = r.generated;
  j["train"] = train_json(treq, r.train);
  j["eval"] = {{"data", ereq.eval.data->root},
               {"out_dir", ereq.out_dir},
               {"images", r.trained.images},
               {"classes", r.trained.report.classes.size()}};
  j["trained"] = metrics_json(r.trained.mean);
  j["untrained"] = r.untrained ? metrics_json(r.untrained->mean) : nlohmann::json(nullptr);
  if (r.untrained) j["untrained_out_dir"] = ereq.out_dir + "_untrained";
  j["few_shot"] = few_shot_json(r.trained, r.few_shot, cfg.few_shot.seed);
  return j;
}

/// Stage 3: the untrained (seeded) head on the same target set, without PNGs.
EvalResult eval_untrained(const EvalRequest& ereq, std::ostream& out) {
  EvalRequest u = ereq;
  u.checkpoint.clear();
  u.out_dir = ereq.out_dir + "_untrained";
  u.eval.save_maps = false;  // PNGs as for the trained head: report.html shows both side by side
  spdlog::info("demo: evaluating the UNTRAINED head on {} (baseline) -> {}", u.eval.data->root, u.out_dir);
  EvalResult r = run_eval(u);
  out << "\nUntrained head (baseline), zero-shot on " << u.eval.data->root << ":\n"
      << format_eval_table(r) << std::flush;
  return r;
}

}  // namespace

DemoConfig load_demo_config(const std::string& path, const std::vector<std::string>& overrides,
                            const std::string& out_dir_override) {
  DemoConfig c;
  c.path = path.empty() ? kBuiltin : path;
  io::ConfigNode root =
      path.empty() ? io::ConfigNode::from_string(embedded_demo_config(), kBuiltin) : io::ConfigNode::load_file(path);
  for (const auto& o : overrides) root.apply_override(o);

  auto demo = root.section("demo");
  c.out_dir = demo.get<std::string>("out_dir", c.out_dir);
  if (!out_dir_override.empty()) c.out_dir = out_dir_override;
  VCP_CHECK(!c.out_dir.empty(), "config key ", demo.where("out_dir"), " is empty (the demo's output directory)");
  c.untrained_baseline = demo.get<bool>("untrained_baseline", c.untrained_baseline);
  auto synth = demo.section("synthetic");
  for (auto it = synth.node().begin(); it != synth.node().end(); ++it) {
    const std::string name = io::config_key_text(it->first, "section 'demo.synthetic' in " + synth.origin());
    VCP_CHECK(it->second.IsMap(), "config key ", synth.where(name),
              ": expected a synthetic set {out, layout, set, classes, images, train_images, size, seed, kinds}");
    auto node = synth.section(name);
    c.synthetic.push_back(data::parse_synth_options(node));
    c.synthetic.back().out = substitute_out_dir(c.synthetic.back().out, c.out_dir);
  }
  synth.finish();
  if (demo.has("backbone")) {
    auto node = demo.section("backbone");
    c.backbone = parse_backbone_recipe(node);
    c.backbone->out = substitute_out_dir(c.backbone->out, c.out_dir);
  }
  if (demo.has("few_shot")) {
    auto node = demo.section("few_shot");
    c.few_shot = parse_demo_few_shot(node);
  } else {
    demo.section("few_shot");
  }
  demo.finish();
  c.demo_effective = YAML::Clone(root.effective()["demo"]);
  c.demo_effective["out_dir"] = fs::absolute(c.out_dir).lexically_normal().string();

  // The rest is a run config: substitute ${out_dir}, parse strictly (overrides already applied).
  YAML::Node rest = substitute_out_dir(root.node(), c.out_dir);
  rest.remove("demo");
  YAML::Emitter em;
  em << rest;
  c.run = parse_run_config(em.c_str(), c.path);
  c.run.overrides = overrides;
  c.run.require_model("demo");
  c.run.require_train_data("demo");
  c.run.require_eval_data("demo");
  return c;
}

std::string demo_config_text(const DemoConfig& cfg) {
  YAML::Node all(YAML::NodeType::Map);
  all["demo"] = cfg.demo_effective;
  for (const auto& kv : cfg.run.effective) all[kv.first.Scalar()] = kv.second;
  YAML::Emitter em;
  em << all;
  return em.c_str();
}

std::string format_demo_comparison(const EvalResult* untrained, const EvalResult& trained) {
  std::ostringstream s;
  char line[160];
  std::snprintf(line, sizeof line, "%-22s %12s %12s %10s\n", "class mean (%)", untrained ? "untrained" : "", "trained",
                untrained ? "change" : "");
  s << line;
  auto show = [](const eval::Metric& m, double k) {
    char b[32];
    if (m)
      std::snprintf(b, sizeof b, "%.2f", *m * k);
    else
      std::snprintf(b, sizeof b, "-");
    return std::string(b);
  };
  for (const auto& c : eval::metric_columns()) {
    const auto t = c.get(trained.mean);
    const eval::Metric u = untrained ? c.get(untrained->mean) : eval::Metric{};
    const double k = c.percent ? 100.0 : 1.0;
    char change[32] = "";
    if (t && u) std::snprintf(change, sizeof change, "%+.2f", (*t - *u) * k);
    std::snprintf(line, sizeof line, "%-22s %12s %12s %10s\n", c.header, untrained ? show(u, k).c_str() : "",
                  show(t, k).c_str(), change);
    s << line;
  }
  return s.str();
}

DemoResult run_demo(const DemoConfig& cfg_in, std::ostream& out, const DemoOptions& opts) {
  DemoConfig cfg = cfg_in;
  DemoResult result;
  const auto start = Clock::now();
  const fs::path dir(cfg.out_dir);
  fs::create_directories(dir);
  const fs::path summary_path = dir / "summary.json";
  fs::remove(summary_path);  // a stale summary must never vouch for this (possibly failing) run
  nlohmann::json stages = nlohmann::json::object();
  auto timed = [&](const char* stage, auto&& fn) {
    const auto t0 = Clock::now();
    fn();
    stages[stage] = seconds_since(t0);
  };

  timed("data_seconds", [&] { prepare_data(cfg, result); });
  timed("model_seconds", [&] { prepare_model(cfg.run, cfg.backbone, dir); });
  write_run_config(demo_config_text(cfg), dir.string());
  EvalRequest ereq = make_eval_request(cfg.run);
  ereq.progress = opts.progress;
  ereq.config_path = cfg.path;
  if (cfg.untrained_baseline) timed("eval_untrained_seconds", [&] { result.untrained = eval_untrained(ereq, out); });

  TrainFlags tflags;
  tflags.progress = opts.progress;
  const train::TrainRequest treq = make_train_request(cfg.run, tflags);
  timed("train_seconds", [&] {
    spdlog::info("demo: training on {} -> {}", treq.data.root, treq.train.out_dir);
    result.train = train::run_training(treq);
  });
  VCP_CHECK(!result.train.last_checkpoint.empty() && fs::exists(result.train.last_checkpoint),
            "demo: training finished without writing ", treq.train.out_dir, "/last.pth");

  ereq.checkpoint = result.train.last_checkpoint;
  timed("eval_seconds", [&] {
    spdlog::info("demo: evaluating the trained head {} on {} -> {}", ereq.checkpoint, ereq.eval.data->root,
                 ereq.out_dir);
    result.trained = run_eval(ereq);
  });
  timed("eval_few_shot_seconds", [&] { result.few_shot = run_demo_few_shot(ereq, cfg.few_shot); });
  out << "\nTrained head (" << result.train.steps << " steps on " << treq.data.root << "), zero-shot on "
      << ereq.eval.data->root << ":\n"
      << format_eval_table(result.trained) << "\n"
      << format_demo_comparison(result.untrained ? &*result.untrained : nullptr, result.trained)
      << format_few_shot_comparison(result.trained, result.few_shot) << std::flush;
  const std::string report =
      write_demo_report_html(cfg.out_dir, msg("head trained for ", result.train.steps, " steps on ", treq.data.root,
                                              ", evaluated zero-shot on ", ereq.eval.data->root, " (",
                                              result.trained.report.classes.size(), " unseen classes)"));

  // summary.json last: its presence marks a finished demo
  result.seconds = seconds_since(start);
  result.summary = summary_json(cfg, result, treq, ereq, stages);
  io::write_file_atomically(summary_path.string(), result.summary.dump(2) + "\n");
  char line[64];
  std::snprintf(line, sizeof line, "\ndemo finished in %.1f s. Open ", result.seconds);
  out << line << report << "\n" << std::flush;
  return result;
}

}  // namespace vcpclip::app
