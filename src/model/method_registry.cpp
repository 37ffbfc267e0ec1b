// The method registry, model.method parsing, building and checkpoint I/O (model/method_registry.h).
#include "vcpclip/model/method_registry.h"

#include <spdlog/spdlog.h>
#include <torch/utils.h>

#include <algorithm>

#include "vcpclip/common/error.h"
#include "vcpclip/io/weights_reader.h"
#include "vcpclip/model/clip_weights.h"

namespace vcpclip::model {

// Defined by the CMake-generated list of src/model/methods/*.cpp (cmake/method_list.cpp.in).
void register_builtin_methods(MethodRegistry& registry);

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

}  // namespace

void MethodRegistry::add(MethodEntry entry) {
  VCP_CHECK(!find(entry.name), "method '", entry.name, "' is registered twice");
  VCP_CHECK(entry.build && entry.recognises, "method '", entry.name, "': its entry needs build and recognises");
  VCP_CHECK(entry.info.name == entry.name, "method '", entry.name, "': its info names '", entry.info.name, "'");
  entries_.push_back(std::move(entry));
}

const MethodEntry* MethodRegistry::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

const MethodRegistry& method_registry() {
  static const MethodRegistry registry = [] {
    MethodRegistry r;
    register_builtin_methods(r);
    return r;
  }();
  return registry;
}

const std::vector<std::string>& known_method_names() {
  static const std::vector<std::string> names{"vcp_clip", "april_gan", "anomaly_clip"};
  return names;
}

const MethodEntry& require_method(const MethodRegistry& registry, const std::string& name, const std::string& where) {
  const auto& known = known_method_names();
  VCP_CHECK(std::find(known.begin(), known.end(), name) != known.end(), "config key ", where, ": unknown method '",
            name, "', expected one of ", join(known));
  const MethodEntry* e = registry.find(name);
  std::vector<std::string> built;
  for (const auto& b : registry.entries()) built.push_back(b.name);
  VCP_CHECK(e, "config key ", where, ": method '", name,
            "' is not built in this version of vcpclip (built: ", join(built), ")");
  return *e;
}

const MethodEntry& require_method(const std::string& name, const std::string& where) {
  return require_method(method_registry(), name, where);
}

const MethodInfo& method_info(const std::string& name) { return require_method(name).info; }

void parse_method_keys(io::ConfigNode& node, ModelOptions& opts) {
  opts.method = node.get<std::string>("method", opts.method);
  const MethodEntry& selected = require_method(opts.method, node.where("method"));
  auto owns = [](const MethodEntry& e, const std::string& key) {
    return std::find(e.keys.begin(), e.keys.end(), key) != e.keys.end();
  };
  for (const auto& other : method_registry().entries()) {
    if (other.name == selected.name) continue;
    for (const auto& key : other.keys)
      VCP_CHECK(!node.has(key) || owns(selected, key), "config key ", node.where(key), " is a key of method ",
                other.name, ", but ", node.where("method"), " is ", selected.name,
                selected.keys.empty() ? std::string(" (it has no keys of its own)")
                                      : " (its own keys: " + join(selected.keys) + ")");
  }
  if (selected.parse) selected.parse(node, opts);
}

Method build_method(const ModelOptions& opts, c10::Device device) {
  const MethodEntry& entry = require_method(opts.method);
  VCP_CHECK(!opts.backbone.empty(), "model options: 'backbone' (the CLIP config JSON) is not set");
  ClipConfig cfg = ClipConfig::from_json_file(opts.backbone);
  cfg.activation = opts.activation;

  torch::manual_seed(opts.init_seed);  // random backbone init (weights empty) is reproducible too
  ClipModel clip(cfg, /*random_init=*/opts.weights.empty());
  if (opts.weights.empty())
    spdlog::warn(
        "model.weights is empty: the CLIP backbone '{}' is RANDOMLY initialised (for tests and tiny "
        "configs only; results are meaningless)",
        cfg.name);
  auto tokenizer = Tokenizer::load(find_vocab(opts.vocab));
  Method model = entry.build(std::move(clip), opts, tokenizer);
  if (!opts.weights.empty()) {
    auto file = io::open_weights(opts.weights);
    load_clip_weights(model->clip, *file);
  }
  model->to(device);
  model->eval();
  return model;
}

std::string recognise_checkpoint(const io::ReferenceCheckpoint& ckpt) {
  for (const auto& e : method_registry().entries())
    if (e.recognises(ckpt)) return e.name;
  return "";
}

void load_method_checkpoint(MethodImpl& model, const std::string& path) {
  // Integer tensors kept: AnomalyCLIP's layout holds int32 token ids (a float-only head's strict
  // load names any integer tensor as "not floating point").
  const auto ckpt = io::read_reference_checkpoint(path, /*keep_integer=*/true);
  const MethodEntry& entry = require_method(model.method_name());
  if (!entry.recognises(ckpt)) {
    const std::string other = recognise_checkpoint(ckpt);
    VCP_CHECK(other.empty(), "checkpoint '", path, "' is a ", other, " checkpoint (its keys have the layout of method ",
              other, "), but model.method is ", model.method_name(), ": set model.method: ", other, " or give a ",
              model.method_name(), " checkpoint");
  }
  model.load_checkpoint(ckpt, path);
}

void save_method_checkpoint(const MethodImpl& model, const std::string& path) {
  io::write_reference_checkpoint(path, model.to_checkpoint());
}

}  // namespace vcpclip::model
