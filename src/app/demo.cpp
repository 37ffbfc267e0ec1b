// `vcpclip demo`: synthetic data → train → untrained/trained zero-shot eval (see app/demo.h).
#include "vcpclip/app/demo.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "vcpclip/app/run_util.h"
#include "vcpclip/app/train.h"
#include "vcpclip/common/error.h"
#include "vcpclip/eval/report.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/config_node.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

namespace {

constexpr const char* kBuiltin = "<built-in configs/demo.yaml>";

using Clock = std::chrono::steady_clock;

std::string substitute(const std::string& s, const std::string& out_dir) { return substitute_out_dir(s, out_dir); }

/// Replaces "${out_dir}" in every string scalar below `n` (in place).
void substitute_tree(YAML::Node n, const std::string& out_dir) {
  if (n.IsScalar()) {
    const std::string v = n.Scalar();
    if (v.find(kOutDirVar) != std::string::npos) n = substitute(v, out_dir);
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) substitute_tree(n[i], out_dir);
  } else if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) substitute_tree(it->second, out_dir);
  }
}

data::SynthOptions parse_synth(io::ConfigNode node, const std::string& out_dir) {
  data::SynthOptions o = data::parse_synth_options(node);
  o.out = substitute(o.out, out_dir);
  return o;
}

std::string normal(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

nlohmann::json synth_json(const data::SynthOptions& o) {
  return {{"layout", o.layout},
          {"set", o.set},
          {"classes", o.classes},
          {"images", o.images},
          {"train_images", o.train_images},
          {"size", o.size},
          {"seed", o.seed}};
}

/// Writes the set unless the same one is already complete (marker <out>.synth.json, written last).
bool ensure_synthetic(const data::SynthOptions& o) {
  const std::string marker = o.out + ".synth.json";
  const auto want = synth_json(o);
  if (fs::exists(o.out) && fs::exists(marker)) {
    std::ifstream in(marker);
    nlohmann::json have = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (have == want) {
      spdlog::info("demo: reusing the synthetic {} set {}", o.set, o.out);
      return false;
    }
  }
  fs::remove(marker);
  fs::remove_all(o.out);
  data::SynthOptions tmp = o;
  tmp.out = o.out + ".partial";
  fs::remove_all(tmp.out);
  spdlog::info("demo: generating the synthetic {} set {} ({} layout, {} classes x {} images, {} px)", o.set, o.out,
               o.layout, o.classes, o.images, o.size);
  data::generate_synthetic(tmp);
  fs::rename(tmp.out, o.out);
  io::write_file_atomically(marker, want.dump(2) + "\n");
  return true;
}

nlohmann::json metrics_json(const eval::ClassMetrics& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& c : eval::metric_columns()) {
    const auto v = c.get(m);
    j[c.key] = v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  }
  return j;
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
    const std::string name = it->first.as<std::string>();
    VCP_CHECK(it->second.IsMap(), "config key ", synth.where(name),
              ": expected a synthetic set {out, layout, set, classes, images, train_images, size, seed}");
    c.synthetic.push_back(parse_synth(synth.section(name), c.out_dir));
  }
  synth.finish();
  demo.finish();

  // The rest is a run config: substitute ${out_dir}, parse strictly (overrides already applied).
  YAML::Node rest = YAML::Clone(root.node());
  rest.remove("demo");
  substitute_tree(rest, c.out_dir);
  YAML::Emitter em;
  em << rest;
  c.run = parse_run_config(em.c_str(), c.path);
  c.run.overrides = overrides;
  c.run.require_model("demo");
  c.run.require_train_data("demo");
  c.run.require_eval_data("demo");
  return c;
}

std::string format_demo_comparison(const EvalResult* untrained, const EvalResult& trained) {
  std::ostringstream s;
  char line[160];
  std::snprintf(line, sizeof line, "%-22s %12s %12s %10s\n", "class mean (%)", untrained ? "untrained" : "", "trained",
                untrained ? "change" : "");
  s << line;
  for (const auto& c : eval::metric_columns()) {
    const auto t = c.get(trained.mean);
    eval::Metric u;
    if (untrained) u = c.get(untrained->mean);
    const double k = c.percent ? 100.0 : 1.0;
    auto show = [&](const eval::Metric& m) {
      char b[32];
      if (m)
        std::snprintf(b, sizeof b, "%.2f", *m * k);
      else
        std::snprintf(b, sizeof b, "-");
      return std::string(b);
    };
    std::string change;
    if (t && u) {
      char b[32];
      std::snprintf(b, sizeof b, "%+.2f", (*t - *u) * k);
      change = b;
    }
    std::snprintf(line, sizeof line, "%-22s %12s %12s %10s\n", c.header, untrained ? show(u).c_str() : "",
                  show(t).c_str(), change.c_str());
    s << line;
  }
  return s.str();
}

DemoResult run_demo(const DemoConfig& cfg_in, std::ostream& out, const DemoOptions& opts) {
  DemoConfig cfg = cfg_in;
  RunConfig& run = cfg.run;
  DemoResult result;
  const auto start = Clock::now();
  const fs::path dir(cfg.out_dir);
  fs::create_directories(dir);
  const fs::path summary_path = dir / "summary.json";
  fs::remove(summary_path);  // a stale summary must never vouch for this (possibly failing) run
  nlohmann::json stages = nlohmann::json::object();

  // 1. synthetic data, only where a data section points at it
  auto t0 = Clock::now();
  std::vector<std::string> roots;
  for (const auto* d : {&run.train.data, &run.train.val_data, &run.eval.data})
    if (d->has_value()) roots.push_back(normal((*d)->root));
  for (const auto& s : cfg.synthetic) {
    if (std::find(roots.begin(), roots.end(), normal(s.out)) == roots.end()) {
      spdlog::info("demo: synthetic set {} is not used by any data section; not generated", s.out);
      continue;
    }
    if (ensure_synthetic(s)) result.generated.push_back(s.out);
  }
  stages["data_seconds"] = seconds_since(t0);
  for (const auto* d : {&run.train.data, &run.eval.data})
    VCP_CHECK(fs::exists((*d)->root), "demo: dataset root ", (*d)->root,
              " does not exist (and no demo.synthetic set has it as `out`)");

  // 2. model: the built-in tiny backbone when its file is not at hand
  model::ModelOptions& mo = *run.model;
  if (!fs::exists(mo.backbone) && fs::path(mo.backbone).filename() == "tiny.json") {
    const fs::path p = dir / "model" / "tiny.json";
    fs::create_directories(p.parent_path());
    io::write_file_atomically(p.string(), embedded_tiny_backbone());
    spdlog::info("demo: {} not found; using the built-in tiny backbone config ({})", mo.backbone, p.string());
    mo.backbone = p.string();
  }

  // 3. untrained baseline (same seeded head initialisation the training starts from)
  EvalRequest ereq = make_eval_request(run);
  ereq.model = mo;
  ereq.progress = opts.progress;
  ereq.config_path = cfg.path;
  const fs::path eval_dir = fs::path(run.eval.out_dir);
  const fs::path untrained_dir = eval_dir.parent_path() / (eval_dir.filename().string() + "_untrained");
  if (cfg.untrained_baseline) {
    t0 = Clock::now();
    EvalRequest ureq = ereq;
    ureq.checkpoint.clear();
    ureq.out_dir = untrained_dir.string();
    ureq.eval.export_png = false;
    ureq.eval.save_maps = false;
    spdlog::info("demo: evaluating the UNTRAINED head on {} (baseline) -> {}", run.eval.data->root, ureq.out_dir);
    result.untrained = run_eval(ureq);
    stages["eval_untrained_seconds"] = seconds_since(t0);
    out << "\nUntrained head (baseline), zero-shot on " << run.eval.data->root << ":\n"
        << format_eval_table(*result.untrained) << std::flush;
  }

  // 4. training on the auxiliary set
  t0 = Clock::now();
  TrainFlags tflags;
  tflags.progress = opts.progress;
  train::TrainRequest treq = make_train_request(run, tflags);
  treq.model = mo;
  spdlog::info("demo: training on {} -> {}", treq.data.root, treq.train.out_dir);
  result.train = train::run_training(treq);
  stages["train_seconds"] = seconds_since(t0);
  VCP_CHECK(!result.train.last_checkpoint.empty() && fs::exists(result.train.last_checkpoint),
            "demo: training finished without writing ", treq.train.out_dir, "/last.pth");

  // 5. the trained head, zero-shot on the target classes
  t0 = Clock::now();
  ereq.checkpoint = result.train.last_checkpoint;
  spdlog::info("demo: evaluating the trained head {} on {} -> {}", ereq.checkpoint, run.eval.data->root, ereq.out_dir);
  result.trained = run_eval(ereq);
  stages["eval_seconds"] = seconds_since(t0);
  out << "\nTrained head (" << result.train.steps << " steps on " << treq.data.root << "), zero-shot on "
      << run.eval.data->root << ":\n"
      << format_eval_table(result.trained) << "\n"
      << format_demo_comparison(result.untrained ? &*result.untrained : nullptr, result.trained) << std::flush;

  // 6. summary.json last: its presence marks a finished demo
  result.seconds = seconds_since(start);
  nlohmann::json j;
  j["status"] = "complete";
  j["finished_at"] = now_iso();
  j["config"] = cfg.path;
  j["overrides"] = run.overrides;
  j["out_dir"] = cfg.out_dir;
  j["seconds"] = result.seconds;
  j["stages"] = stages;
  j["device"] = run.runtime.device;
  j["backbone"] = mo.backbone;
  j["weights"] = mo.weights.empty() ? nlohmann::json(nullptr) : nlohmann::json(mo.weights);
  j["generated"] = result.generated;
  j["train"] = {{"data", treq.data.root},
                {"out_dir", treq.train.out_dir},
                {"steps", result.train.steps},
                {"epochs", result.train.epochs_done},
                {"last_checkpoint", result.train.last_checkpoint},
                {"final_loss", result.train.epochs.empty() ? nlohmann::json(nullptr)
                                                           : nlohmann::json(result.train.epochs.back().loss)},
                {"first_loss", result.train.epochs.empty() ? nlohmann::json(nullptr)
                                                           : nlohmann::json(result.train.epochs.front().loss)}};
  j["eval"] = {{"data", run.eval.data->root},
               {"out_dir", ereq.out_dir},
               {"images", result.trained.images},
               {"classes", result.trained.report.classes.size()}};
  j["trained"] = metrics_json(result.trained.mean);
  if (result.untrained) {
    j["untrained"] = metrics_json(result.untrained->mean);
    j["untrained_out_dir"] = untrained_dir.string();
  } else {
    j["untrained"] = nullptr;
  }
  io::write_file_atomically(summary_path.string(), j.dump(2) + "\n");
  result.summary = j;
  char line[200];
  std::snprintf(line, sizeof line, "\ndemo finished in %.1f s -> %s (summary.json, eval/metrics.md, eval/imgs/)\n",
                result.seconds, cfg.out_dir.c_str());
  out << line << std::flush;
  return result;
}

}  // namespace vcpclip::app
