// `vcpclip ablate`: config, run loop, resumability (see include/vcpclip/app/ablate/ablate.h).
// The table / chart writers live in report.cpp.
#include "vcpclip/app/ablate/ablate.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/config/run_util.h"
#include "vcpclip/app/evaluate.h"
#include "vcpclip/app/synth.h"
#include "vcpclip/app/train.h"
#include "vcpclip/common/error.h"
#include "vcpclip/eval/report.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/config_node.h"

namespace vcpclip::app {

namespace fs = std::filesystem;

namespace {

void flatten(const YAML::Node& n, const std::string& prefix, const std::string& where, std::vector<std::string>& out) {
  for (const auto& kv : n) {
    const std::string k = io::config_key_text(kv.first, where);
    VCP_CHECK(!k.empty() && k.find('=') == std::string::npos, "config key ", where, ": bad override key '", k, "'");
    const std::string key = prefix.empty() ? k : prefix + "." + k;
    if (kv.second.IsMap() && kv.second.size() > 0) {
      flatten(kv.second, key, where, out);
      continue;
    }
    YAML::Emitter em;
    em.SetSeqFormat(YAML::Flow);
    em.SetMapFormat(YAML::Flow);
    if (kv.second.IsNull())
      em << YAML::Null;
    else if (kv.second.IsScalar() && kv.second.Tag() == "!")  // quoted in the file: stays a string
      em << YAML::DoubleQuoted << kv.second.Scalar();
    else
      em << kv.second;
    out.push_back(key + "=" + em.c_str());
  }
}

/// Top-level / item key check with the message style of io::ConfigNode::finish.
void check_keys(const YAML::Node& n, const std::set<std::string>& known, const std::string& prefix,
                const std::string& origin) {
  for (const auto& kv : n) {
    const std::string k =
        io::config_key_text(kv.first, prefix.empty() ? origin : "section '" + prefix + "' in " + origin);
    if (known.count(k)) continue;
    std::string list;
    for (const auto& x : known) list += (list.empty() ? "" : ", ") + x;
    fail("unknown config key '", prefix.empty() ? k : prefix + "." + k, "' in ", origin, "; known keys",
         prefix.empty() ? "" : " of '" + prefix + "'", ": ", list);
  }
}

template <typename T>
T with_out_dir(T item, const std::string& out_dir) {
  item.out = substitute_out_dir(item.out, out_dir);
  return item;
}

nlohmann::json metric_json(const eval::Metric& m) {
  if (!m || !std::isfinite(*m)) return nullptr;
  return *m;
}

}  // namespace

std::vector<std::string> overrides_from_map(const YAML::Node& map, const std::string& where) {
  std::vector<std::string> out;
  if (!map || map.IsNull()) return out;
  VCP_CHECK(map.IsMap(), "config key ", where, ": expected a mapping of run-config keys to values");
  flatten(map, "", where, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// AblationConfig

const AblationVariant& AblationConfig::variant(const std::string& name) const {
  for (const auto& v : variants)
    if (v.name == name) return v;
  fail("ablation config ", path, ": no variant named '", name, "'");
}

std::vector<std::string> AblationConfig::run_order() const {
  std::vector<std::string> order;
  std::set<std::string> placed;
  std::function<void(const AblationVariant&)> place = [&](const AblationVariant& v) {
    if (placed.count(v.name)) return;
    if (!v.train_from.empty()) place(variant(v.train_from));
    placed.insert(v.name);
    order.push_back(v.name);
  };
  for (const auto& v : variants) place(v);
  return order;
}

std::vector<std::string> AblationConfig::variant_overrides(const std::string& name) const {
  std::vector<const AblationVariant*> chain;
  for (const AblationVariant* v = &variant(name);; v = &variant(v->train_from)) {
    chain.insert(chain.begin(), v);
    if (v->train_from.empty()) break;
  }
  std::vector<std::string> out = overrides;
  for (const auto* v : chain) out.insert(out.end(), v->overrides.begin(), v->overrides.end());
  return out;
}

std::vector<std::string> AblationConfig::run_overrides(const std::string& name, uint64_t seed) const {
  auto out = variant_overrides(name);
  for (const auto& k : seed_keys) out.push_back(k + "=" + std::to_string(seed));
  const std::string dir = run_dir(name, seed);
  out.push_back("train.out_dir=" + (fs::path(dir) / "train").string());
  out.push_back("eval.out_dir=" + (fs::path(dir) / "eval").string());
  return out;
}

std::string AblationConfig::run_dir(const std::string& name, uint64_t seed) const {
  return (fs::path(out_dir) / name / ("seed_" + std::to_string(seed))).string();
}

namespace {

/// base, out_dir, seeds, seed_keys, metrics.
void parse_header(io::ConfigNode& root, const std::string& out_dir_override, AblationConfig& c) {
  const std::string base = root.require<std::string>("base");
  c.base = root.resolve_path(base);
  VCP_CHECK(fs::is_regular_file(c.base), "config key ", root.where("base"), ": base run config '", base,
            "' not found (relative to the working directory or to ", root.base_dir().empty() ? "." : root.base_dir(),
            ")");
  const std::string stem = c.path.empty() || c.path[0] == '<' ? "ablation" : fs::path(c.path).stem().string();
  c.out_dir = out_dir_override.empty() ? root.get<std::string>("out_dir", "runs/ablate/" + stem) : out_dir_override;
  VCP_CHECK(!c.out_dir.empty(), "config key ", root.where("out_dir"), ": must not be empty");
  const auto seeds = root.get<std::vector<int64_t>>("seeds", {333});
  VCP_CHECK(!seeds.empty(), "config key ", root.where("seeds"), ": expected at least one seed");
  for (auto s : seeds) {
    VCP_CHECK(s >= 0, "config key ", root.where("seeds"), ": expected seeds >= 0, found ", s);
    VCP_CHECK(std::find(c.seeds.begin(), c.seeds.end(), static_cast<uint64_t>(s)) == c.seeds.end(), "config key ",
              root.where("seeds"), ": seed ", s, " is listed twice");
    c.seeds.push_back(static_cast<uint64_t>(s));
  }
  c.seed_keys = root.get<std::vector<std::string>>("seed_keys", c.seed_keys);
  c.metrics = root.get<std::vector<std::string>>("metrics", c.metrics);
  VCP_CHECK(!c.metrics.empty(), "config key ", root.where("metrics"), ": expected at least one metric");
  std::string known;
  for (const auto& col : eval::metric_columns()) known += (known.empty() ? "" : ", ") + std::string(col.key);
  for (const auto& m : c.metrics) {
    bool ok = false;
    for (const auto& col : eval::metric_columns()) ok = ok || m == col.key;
    VCP_CHECK(ok, "config key ", root.where("metrics"), ": unknown metric '", m, "'; known: ", known);
  }
}

/// A list of mappings under `key` (synthetic sets, backbone recipes), each read by `parse`.
template <typename T, typename Parse>
std::vector<T> parse_list(const io::ConfigNode& root, const std::string& key, const char* what, Parse&& parse) {
  std::vector<T> out;
  const YAML::Node n = root.node()[key];
  if (!n || n.IsNull()) return out;
  VCP_CHECK(n.IsSequence(), "config key ", root.where(key), ": expected a list of ", what);
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string prefix = key + "[" + std::to_string(i) + "]";
    VCP_CHECK(n[i].IsMap(), "config key '", prefix, "' in ", root.origin(), ": expected a mapping");
    io::ConfigNode item(n[i], root.origin(), prefix);
    out.push_back(parse(item));
  }
  return out;
}

AblationVariant parse_variant(io::ConfigNode& item, const AblationConfig& c, const std::string& prefix) {
  static const std::regex name_re(R"([A-Za-z0-9_.-]+)");
  AblationVariant v;
  v.name = item.require<std::string>("name");
  VCP_CHECK(std::regex_match(v.name, name_re) && v.name != "." && v.name != "..", "config key ", item.where("name"),
            ": variant names are directory names of [A-Za-z0-9_.-], found '", v.name, "'");
  for (const auto& other : c.variants)
    VCP_CHECK(other.name != v.name, "ablation config ", c.path, ": duplicate variant name '", v.name, "' (", prefix,
              ")");
  try {
    v.train_from = item.get<std::string>("train_from", "");
    v.checkpoint = item.get_path("checkpoint", "");
    v.train = item.get<bool>("train", v.train_from.empty() && v.checkpoint.empty());
    VCP_CHECK(!(v.train && !v.train_from.empty()), "train_from '", v.train_from,
              "' reuses another variant's checkpoint, so `train: true` is contradictory (drop `train`)");
    VCP_CHECK(!(v.train && !v.checkpoint.empty()), "`checkpoint` is for evaluation-only variants (train: false)");
    VCP_CHECK(v.train_from.empty() || v.checkpoint.empty(), "give either train_from or checkpoint, not both");
    auto s = item.section("set");
    if (item.has("set")) v.overrides = overrides_from_map(substitute_out_dir(s.node(), c.out_dir), item.where("set"));
    item.finish();
  } catch (const Error& e) {
    throw Error(msg("ablation config ", c.path, ", variant '", v.name, "': ", e.what()));
  }
  return v;
}

/// train_from targets exist and form no cycle.
void check_train_from(const AblationConfig& c) {
  for (const auto& v : c.variants) {
    if (v.train_from.empty()) continue;
    bool found = false;
    for (const auto& o : c.variants) found = found || o.name == v.train_from;
    VCP_CHECK(found, "ablation config ", c.path, ", variant '", v.name, "': train_from names an unknown variant '",
              v.train_from, "'");
  }
  for (const auto& v : c.variants) {
    std::vector<std::string> seen{v.name};
    for (const AblationVariant* p = &v; !p->train_from.empty();) {
      p = &c.variant(p->train_from);
      const bool cycle = std::find(seen.begin(), seen.end(), p->name) != seen.end();
      seen.push_back(p->name);
      if (cycle) {
        std::string path;
        for (const auto& s : seen) path += (path.empty() ? "" : " -> ") + s;
        fail("ablation config ", c.path, ", variant '", v.name, "': train_from cycle ", path);
      }
    }
  }
}

/// Every variant against the base run config, before anything runs.
void validate_variants(const AblationConfig& c) {
  for (const auto& v : c.variants) {
    try {
      const auto cfg = load_run_config(c.base, c.run_overrides(v.name, c.seeds.front()));
      cfg.require_model("ablate");
      cfg.require_eval_data("ablate");
      if (v.train) cfg.require_train_data("ablate");
    } catch (const Error& e) {
      throw Error(msg("ablation config ", c.path, ", variant '", v.name, "': ", e.what()));
    }
  }
}

}  // namespace

AblationConfig parse_ablation_config(io::ConfigNode& root, const std::string& out_dir_override,
                                     const std::vector<std::string>& extra_overrides) {
  AblationConfig c;
  c.path = root.origin();
  const YAML::Node& n = root.node();
  check_keys(n, {"base", "out_dir", "seeds", "seed_keys", "metrics", "set", "synthetic", "backbones", "variants"}, "",
             c.path);
  parse_header(root, out_dir_override, c);
  if (n["set"]) c.overrides = overrides_from_map(substitute_out_dir(n["set"], c.out_dir), root.where("set"));
  for (const auto& o : extra_overrides) c.overrides.push_back(substitute_out_dir(o, c.out_dir));
  c.synthetic = parse_list<data::SynthOptions>(
      root, "synthetic", "synthetic sets ({out, layout, set, classes, images, size, ...})",
      [&](io::ConfigNode& item) { return with_out_dir(data::parse_synth_options(item), c.out_dir); });
  c.backbones = parse_list<BackboneRecipe>(
      root, "backbones", "backbone recipes ({out, patches, whiten_eps, token_offset, seed})",
      [&](io::ConfigNode& item) { return with_out_dir(parse_backbone_recipe(item), c.out_dir); });
  const YAML::Node vs = n["variants"];
  VCP_CHECK(vs && vs.IsSequence() && vs.size() > 0, "config key ", root.where("variants"),
            ": expected a non-empty list of variants ({name, set, train, train_from, checkpoint})");
  for (size_t i = 0; i < vs.size(); ++i) {
    const std::string prefix = "variants[" + std::to_string(i) + "]";
    VCP_CHECK(vs[i].IsMap(), "config key '", prefix, "' in ", c.path, ": expected a mapping with at least `name`");
    io::ConfigNode item(vs[i], c.path, prefix);
    c.variants.push_back(parse_variant(item, c, prefix));
  }
  check_train_from(c);
  validate_variants(c);
  return c;
}

AblationConfig load_ablation_config(const std::string& path, const std::string& out_dir_override,
                                    const std::vector<std::string>& extra_overrides) {
  auto root = io::ConfigNode::load_file(path);
  return parse_ablation_config(root, out_dir_override, extra_overrides);
}

// ---------------------------------------------------------------------------------------------
// Running

namespace {

std::string checkpoint_of(const AblationConfig& c, const std::string& name, uint64_t seed) {
  const auto& v = c.variant(name);
  if (v.train) return (fs::path(c.run_dir(name, seed)) / "train" / "last.pth").string();
  if (!v.train_from.empty()) return checkpoint_of(c, v.train_from, seed);
  return v.checkpoint;
}

/// The variant whose training produces `name`'s checkpoint ("" if none).
std::string trainer_of(const AblationConfig& c, const std::string& name) {
  const auto& v = c.variant(name);
  if (v.train) return name;
  if (!v.train_from.empty()) return trainer_of(c, v.train_from);
  return "";
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  VCP_CHECK(in.good(), "cannot read ", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail("cannot parse ", path, ": ", e.what());
  }
}

/// Trains (or resumes) variant v's run unless train/done.json says it finished; fills res.
void train_run(const RunConfig& cfg, const AblationVariant& v, uint64_t seed, const std::string& dir,
               const std::string& checkpoint, bool progress, nlohmann::json& res) {
  const fs::path tdir = fs::path(dir) / "train";
  const fs::path done = tdir / "done.json";
  if (fs::exists(done)) {
    spdlog::info("ablate: {} seed {}: training already finished ({})", v.name, seed, done.string());
    const auto d = read_json_file(done.string());
    res["train_steps"] = d.value("steps", 0);
    res["train_seconds"] = d.value("seconds", 0.0);
    return;
  }
  TrainFlags flags;
  flags.progress = progress;
  auto req = make_train_request(cfg, flags);
  req.resume = fs::exists(tdir / "resume.pt");
  if (req.resume)
    spdlog::info("ablate: {} seed {}: resuming training from {}", v.name, seed, (tdir / "resume.pt").string());
  const auto t0 = std::chrono::steady_clock::now();
  const auto summary = train::run_training(req);
  const double secs = seconds_since(t0);
  VCP_CHECK(fs::exists(checkpoint), "training of variant '", v.name, "' seed ", seed, " wrote no ", checkpoint);
  const nlohmann::json d = {{"steps", summary.steps},
                            {"epochs", summary.epochs_done},
                            {"seconds", secs},
                            {"checkpoint", checkpoint},
                            {"finished_at", now_iso()}};
  io::write_file_atomically(done.string(), d.dump(2) + "\n");
  res["train_steps"] = summary.steps;
  res["train_seconds"] = secs;
}

/// The backbone recipe whose `out` is the run's model.weights, made (or reused) from train.data.
void prepare_backbone(const AblationConfig& c, const RunConfig& cfg) {
  const auto& mo = *cfg.model;
  for (const auto& r : c.backbones) {
    if (mo.weights.empty() || fs::absolute(mo.weights).lexically_normal() != fs::absolute(r.out).lexically_normal())
      continue;
    VCP_CHECK(cfg.train.data.has_value(), "ablation config ", c.path, ": backbone ", r.out,
              " is made from the training images, but the run has no train.data section");
    ensure_backbone(r, mo, *cfg.train.data);
  }
}

nlohmann::json run_one(const AblationConfig& c, const AblationVariant& v, uint64_t seed, bool progress) {
  const std::string dir = c.run_dir(v.name, seed);
  fs::create_directories(dir);
  const RunConfig cfg = load_run_config(c.base, c.run_overrides(v.name, seed));  // parsed once per run
  write_run_config(cfg.text, dir);
  prepare_backbone(c, cfg);

  nlohmann::json res = {{"variant", v.name},
                        {"seed", seed},
                        {"train", v.train},
                        {"train_from", v.train_from},
                        {"overrides", c.variant_overrides(v.name)},
                        {"train_seconds", 0.0}};
  const std::string checkpoint = checkpoint_of(c, v.name, seed);
  if (v.train) {
    train_run(cfg, v, seed, dir, checkpoint, progress, res);
  } else if (!checkpoint.empty()) {
    VCP_CHECK(fs::exists(checkpoint), "variant '", v.name, "' seed ", seed, ": checkpoint ", checkpoint, " is missing",
              v.train_from.empty() ? "" : msg(" (variant '", trainer_of(c, v.name), "' trains it)"));
  } else {
    spdlog::warn("ablate: variant {} has no checkpoint: evaluating the untrained (seeded) head", v.name);
  }
  res["checkpoint"] = checkpoint;

  auto ereq = make_eval_request(cfg);
  ereq.checkpoint = checkpoint;
  ereq.out_dir = (fs::path(dir) / "eval").string();
  ereq.config_path = c.base;
  ereq.progress = progress;
  const auto result = run_eval(ereq);
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& col : eval::metric_columns()) metrics[col.key] = metric_json(col.get(result.mean));
  res["metrics"] = metrics;
  res["classes"] = eval::report_json(result.report)["classes"];
  res["images"] = result.images;
  res["eval_seconds"] = result.seconds;
  res["finished_at"] = now_iso();
  io::write_file_atomically((fs::path(dir) / "results.json").string(), res.dump(2) + "\n");
  return res;
}

}  // namespace

AblationSummary run_ablation(const AblationConfig& c, const AblateOptions& opts) {
  // Which variants: --only plus everything they train_from.
  std::set<std::string> wanted;
  for (const auto& name : opts.only) {
    for (const AblationVariant* v = &c.variant(name);; v = &c.variant(v->train_from)) {
      wanted.insert(v->name);
      if (v->train_from.empty()) break;
    }
  }
  std::vector<std::pair<std::string, uint64_t>> todo;
  for (const auto& name : c.run_order())
    if (wanted.empty() || wanted.count(name))
      for (auto s : c.seeds) todo.emplace_back(name, s);

  // Finished runs first: a results.json of other overrides is an error before anything runs.
  std::vector<AblationRun> runs;
  for (const auto& [name, seed] : todo) {
    AblationRun r;
    r.variant = name;
    r.seed = seed;
    r.state = "pending";
    const std::string path = (fs::path(c.run_dir(name, seed)) / "results.json").string();
    if (fs::exists(path)) {
      r.results = read_json_file(path);
      const auto expect = c.variant_overrides(name);
      VCP_CHECK(r.results.contains("overrides") && r.results["overrides"].get<std::vector<std::string>>() == expect,
                path, " was written with other settings than variant '", name, "' of ", c.path, " has now; remove ",
                c.run_dir(name, seed), " to rerun it, or use another out_dir");
      VCP_CHECK(r.results.contains("metrics") && r.results["metrics"].is_object(), path, " has no \"metrics\"");
      r.state = "skipped";
    }
    runs.push_back(std::move(r));
  }
  if (opts.dry_run) return summarize_runs(c, std::move(runs));

  for (const auto& s : c.synthetic) ensure_synthetic(s, "ablate");
  fs::create_directories(c.out_dir);

  std::map<std::pair<std::string, uint64_t>, std::string> failed;
  size_t index = 0;
  for (auto& r : runs) {
    ++index;
    if (r.state == "skipped") {
      spdlog::info("ablate: [{}/{}] {} seed {}: done earlier, skipped", index, runs.size(), r.variant, r.seed);
      continue;
    }
    const auto& v = c.variant(r.variant);
    const std::string trainer = trainer_of(c, v.name);
    if (!trainer.empty() && trainer != v.name && failed.count({trainer, r.seed})) {
      r.state = "failed";
      r.error = msg("not run: variant '", trainer, "' seed ", r.seed, " (whose checkpoint it evaluates) failed");
      failed[{r.variant, r.seed}] = r.error;
      spdlog::error("ablate: [{}/{}] {} seed {}: {}", index, runs.size(), r.variant, r.seed, r.error);
      continue;
    }
    spdlog::info("ablate: [{}/{}] {} seed {}: {}", index, runs.size(), r.variant, r.seed,
                 v.train ? "train + eval" : "eval");
    try {
      r.results = run_one(c, v, r.seed, opts.progress);
      r.state = "ran";
    } catch (const std::exception& e) {
      r.state = "failed";
      r.error = e.what();
      failed[{r.variant, r.seed}] = r.error;
      spdlog::error("ablate: {} seed {} failed: {}", r.variant, r.seed, r.error);
    }
  }
  auto summary = summarize_runs(c, std::move(runs));
  write_summary(c, summary);
  if (!failed.empty()) {
    std::string list;
    for (const auto& [k, e] : failed) list += msg("\n  ", k.first, " seed ", k.second, ": ", e);
    fail(failed.size(), " ablation run(s) failed (the summary in ", c.out_dir,
         " has the others; rerun to retry only these):", list);
  }
  return summary;
}

}  // namespace vcpclip::app
