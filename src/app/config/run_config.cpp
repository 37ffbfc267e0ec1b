// The unified run config (see include/vcpclip/app/config/run_config.h).
#include "vcpclip/app/config/run_config.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <regex>
#include <sstream>

#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/model/method_registry.h"

namespace vcpclip::app {

namespace fs = std::filesystem;

namespace {

std::string emit_yaml(const YAML::Node& node) {
  YAML::Emitter em;
  em << node;
  return em.c_str();
}

}  // namespace

RuntimeOptions parse_runtime_options(io::ConfigNode& node) {
  RuntimeOptions o;
  o.device = node.get<std::string>("device", o.device);
  static const std::regex device_re(R"(cpu|cuda(:[0-9]+)?)");
  VCP_CHECK(std::regex_match(o.device, device_re), "config key ", node.where("device"),
            ": expected cpu, cuda or cuda:N, found '", o.device, "'");
  o.threads = node.get<int>("threads", o.threads);
  VCP_CHECK(o.threads >= 0, "config key ", node.where("threads"), ": expected 0 (all cores) or more, found ",
            o.threads);
  const int64_t seed = node.get<int64_t>("seed", static_cast<int64_t>(o.seed));
  VCP_CHECK(seed >= 0, "config key ", node.where("seed"), ": expected 0 or more, found ", seed);
  o.seed = static_cast<uint64_t>(seed);
  o.log_level = node.get<std::string>("log_level", o.log_level);
  o.tf32 = node.get<bool>("tf32", o.tf32);
  o.precision = parse_precision(node.get<std::string>("precision", "fp32"), "config key " + node.where("precision"));
  static const std::regex level_re(R"(trace|debug|info|warn|warning|err|error|critical|off)");
  VCP_CHECK(std::regex_match(o.log_level, level_re), "config key ", node.where("log_level"),
            ": expected trace, debug, info, warn, error or off, found '", o.log_level, "'");
  node.finish();
  return o;
}

EvalSection parse_eval_section(io::ConfigNode& node) {
  EvalSection e;
  if (node.has("data")) {
    auto d = node.section("data");
    e.data = data::parse_data_options(d, /*training=*/false);
  } else {
    node.section("data");  // known key, absent
  }
  e.batch_size = node.get<int64_t>("batch_size", e.batch_size);
  VCP_CHECK(e.batch_size >= 1, "config key ", node.where("batch_size"), ": expected at least 1, found ", e.batch_size);
  e.out_dir = node.get_path("out_dir", e.out_dir);
  e.save_maps = node.get<bool>("save_maps", e.save_maps);
  e.export_png = node.get<bool>("export_png", e.export_png);
  e.png_limit = node.get<int64_t>("png_limit", e.png_limit);
  VCP_CHECK(e.png_limit >= 0, "config key ", node.where("png_limit"), ": expected 0 (all) or more, found ",
            e.png_limit);
  e.metrics = eval::parse_metrics_options(node);  // reads the metric keys and calls finish()
  return e;
}

namespace {

/// The `postprocess:` and `train:` defaults of a method (model::MethodInfo), over the structs' own.
PostprocessOptions method_postprocess(const model::MethodInfo& m) {
  PostprocessOptions o;
  o.alpha = m.postprocess.alpha;
  o.sigma = m.postprocess.sigma;
  o.topk = m.postprocess.topk;
  o.method_score = m.postprocess.method_score;
  return o;
}

train::TrainOptions method_train(const model::MethodInfo& m) {
  train::TrainOptions o;
  o.epochs = m.train.epochs;
  o.batch_size = m.train.batch_size;
  o.lr = m.train.lr;
  o.lr_temp = m.train.lr_temp;
  o.betas = {m.train.beta1, m.train.beta2};
  return o;
}

TrainSection parse_train_section(io::ConfigNode& node, const model::MethodInfo& method) {
  TrainSection t;
  if (node.has("data")) {
    auto d = node.section("data");
    t.data = data::parse_data_options(d, /*training=*/true);
  } else {
    node.section("data");
  }
  if (node.has("val_data")) {
    auto d = node.section("val_data");
    t.val_data = data::parse_data_options(d, /*training=*/false);
  } else {
    node.section("val_data");
  }
  t.options = train::parse_train_options(node, method_train(method));  // the remaining keys; finish()
  return t;
}

RunConfig parse_root(io::ConfigNode& root, const std::string& path, const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) root.apply_override(o);
  RunConfig cfg;
  cfg.path = path;
  cfg.overrides = overrides;
  {
    auto s = root.section("runtime");
    cfg.runtime = parse_runtime_options(s);
  }
  if (root.has("model")) {
    auto s = root.section("model");
    cfg.model = model::parse_model_options(s);
  } else {
    root.section("model");
  }
  const model::MethodInfo& method = model::method_info(cfg.model ? cfg.model->method : "vcp_clip");
  {
    auto s = root.section("postprocess");
    cfg.postprocess = eval::parse_postprocess_options(s, method_postprocess(method));
  }
  {
    auto s = root.section("predict");
    cfg.predict = parse_predict_options(s);
  }
  {
    auto s = root.section("train");
    cfg.train = parse_train_section(s, method);
  }
  {
    auto s = root.section("eval");
    cfg.eval = parse_eval_section(s);
  }
  {
    auto s = root.section("serve");
    cfg.serve = parse_serve_options(s);
  }
  {
    auto s = root.section("few_shot");
    cfg.few_shot = parse_few_shot_options(s);
  }
  root.finish();
  cfg.effective = root.effective();
  cfg.text = emit_yaml(cfg.effective);
  return cfg;
}

}  // namespace

void RunConfig::set_effective(const std::string& dotted_key, const YAML::Node& value) {
  std::vector<std::string> parts;
  std::stringstream ks(dotted_key);
  for (std::string p; std::getline(ks, p, '.');) parts.push_back(p);
  VCP_CHECK(!parts.empty(), "RunConfig::set_effective: empty key");
  YAML::Node cur = effective;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    if (!cur[parts[i]].IsMap()) cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
    YAML::Node next = cur[parts[i]];
    cur.reset(next);
  }
  cur[parts.back()] = value;
  text = emit_yaml(effective);
}

std::string find_run_config(const std::string& config, const std::string& checkpoint, const std::string& command) {
  const fs::path beside = checkpoint.empty() ? fs::path() : fs::path(checkpoint).parent_path() / "config.yaml";
  std::error_code ec;
  if (!config.empty()) {
    if (!beside.empty() && fs::is_regular_file(beside, ec))
      spdlog::info("{}: using the run config {} (-c wins over {} beside the checkpoint)", command, config,
                   beside.string());
    else
      spdlog::info("{}: using the run config {}", command, config);
    return config;
  }
  VCP_CHECK(!checkpoint.empty(), command,
            ": no run config: pass -c CONFIG (a run config such as configs/eval_mvtec.yaml)");
  VCP_CHECK(fs::is_regular_file(beside, ec), command,
            ": no run config: pass -c CONFIG (there is no config.yaml beside the checkpoint ", checkpoint,
            "; the runs of vcpclip train and vcpclip demo write one)");
  spdlog::info("{}: using the run config {} (beside the checkpoint)", command, beside.string());
  return beside.string();
}

std::string run_config_file_text(const std::string& yaml) {
  return "# The resolved run config of a vcpclip " VCPCLIP_VERSION
         " run: every key as used, defaults included, paths absolute.\n"
         "# -k with a checkpoint of this folder finds it without -c; -c uses it anywhere.\n" +
         yaml + "\n";
}

std::string write_run_config(const std::string& yaml, const std::string& dir) {
  const fs::path path = fs::path(dir) / "config.yaml";
  fs::create_directories(dir);
  io::write_file_atomically(path.string(), run_config_file_text(yaml));
  return path.string();
}

const model::ModelOptions& RunConfig::require_model(const std::string& command) const {
  VCP_CHECK(model.has_value(), command, " needs a `model` section in ", path,
            " (at least model.backbone; see configs/eval_mvtec.yaml)");
  return *model;
}

const data::DataOptions& RunConfig::require_eval_data(const std::string& command) const {
  VCP_CHECK(eval.data.has_value(), command, " needs an `eval.data` section in ", path,
            " (the test set: eval.data.layout and eval.data.root)");
  return *eval.data;
}

const data::DataOptions& RunConfig::require_train_data(const std::string& command) const {
  VCP_CHECK(train.data.has_value(), command, " needs a `train.data` section in ", path,
            " (the training set: train.data.layout and train.data.root)");
  return *train.data;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  auto root = io::ConfigNode::load_file(path);
  return parse_root(root, path, overrides);
}

RunConfig parse_run_config(const std::string& text, const std::string& origin,
                           const std::vector<std::string>& overrides) {
  auto root = io::ConfigNode::from_string(text, origin);
  return parse_root(root, origin, overrides);
}

}  // namespace vcpclip::app
