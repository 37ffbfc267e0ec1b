#pragma once
// Strict configuration reading for YAML run configs and JSON model configs (JSON is read as YAML).
//
// Every key is checked: a section parser reads the keys it knows with get()/require(), then calls
// finish(), which rejects any key that was never read ("unknown key 'train.lrr' in
// configs/train.yaml; known keys: ..."). Type errors name key, expected type, found value and file.
//
//   auto root = ConfigNode::load_file("configs/train_visa.yaml");
//   auto train = root.section("train");
//   int epochs = train.get<int>("epochs", 10);
//   train.finish();
//   root.finish();
//
// Every value read is also recorded, as used, in the node's *effective* tree (shared by a root and
// its sections): defaults included, path values made absolute. `root.effective()` is then the
// resolved config that a run writes beside its outputs (config.yaml), which reads back to the same
// values from any working directory.
#include <yaml-cpp/yaml.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "vcpclip/common/error.h"

namespace vcpclip::io {

/// The text of a mapping key. YAML allows any node as a key (`? {a: 1}: x`); a key that is not
/// plain text is a vcpclip::Error: "<where>: line L: a config key must be plain text, found a
/// mapping|sequence|null key".
std::string config_key_text(const YAML::Node& key, const std::string& where);

class ConfigNode {
 public:
  ConfigNode() = default;
  /// Reads a YAML or JSON file; a missing file or syntax error is a vcpclip::Error naming the file.
  static ConfigNode load_file(const std::string& path);
  /// Parses text; `origin` names it in messages (e.g. "<embedded default>").
  static ConfigNode from_string(const std::string& text, const std::string& origin);
  /// Wraps an existing node.
  ConfigNode(YAML::Node node, std::string origin, std::string prefix = "");

  /// Applies a command-line override "a.b.c=value" (value parsed as YAML: 3, 1e-4, [6,12], text).
  void apply_override(const std::string& assignment);

  bool has(const std::string& key) const;
  /// A mapping below this one. Missing → empty section (all defaults), unless required.
  ConfigNode section(const std::string& key, bool required = false);

  template <typename T>
  T get(const std::string& key, const T& fallback);
  template <typename T>
  T require(const std::string& key);

  /// Rejects keys of this mapping that no get/require/section call has read.
  void finish() const;

  /// "'train.lr' in configs/x.yaml"
  std::string where(const std::string& key) const;
  const std::string& origin() const { return origin_; }
  const std::string& prefix() const { return prefix_; }
  const YAML::Node& node() const { return node_; }
  /// Directory of the file this node came from (for resolving relative paths), or "".
  std::string base_dir() const;
  /// Resolves a path value relative to the config file's directory unless absolute / empty.
  std::string resolve_path(const std::string& value) const;
  /// Reads a path-valued key and resolves it relative to the config file (see resolve_path);
  /// the effective tree records it as an absolute path.
  std::string get_path(const std::string& key, const std::string& fallback);

  /// The resolved config read so far through this node's root: every key read, as used (defaults
  /// included, paths absolute), in read order. A section appears once a key of it is read, so an
  /// optional section that was absent (train.val_data) stays absent.
  YAML::Node effective() const { return *effective_root_; }
  /// Records `value` as the effective value of `key` in this section (get/require/get_path call it).
  void record(const std::string& key, const YAML::Node& value) const;

 private:
  template <typename T>
  T convert(const YAML::Node& n, const std::string& key) const;
  void mark(const std::string& key) const;

  YAML::Node node_;
  std::string origin_;
  std::string prefix_;
  /// This section's map in the effective tree (created on first use).
  YAML::Node effective_section() const;

  std::shared_ptr<std::set<std::string>> read_ = std::make_shared<std::set<std::string>>();
  std::shared_ptr<YAML::Node> effective_root_ = std::make_shared<YAML::Node>(YAML::NodeType::Map);
};

/// A config value as a YAML scalar or sequence for the effective tree: numbers in the shortest text
/// that reads back to the same double, strings as they are.
YAML::Node effective_value(const std::string& v);
YAML::Node effective_value(bool v);
YAML::Node effective_value(int v);
YAML::Node effective_value(int64_t v);
YAML::Node effective_value(double v);
YAML::Node effective_value(float v);
template <typename E>
YAML::Node effective_value(const std::vector<E>& v) {
  YAML::Node seq(YAML::NodeType::Sequence);
  for (const auto& e : v) seq.push_back(effective_value(e));
  seq.SetStyle(YAML::EmitterStyle::Flow);  // features_list: [6, 12, 18, 24]
  return seq;
}

/// `text` as a double-quoted YAML scalar, for building `key=value` overrides from arbitrary text
/// (a path with ': ' or '#' stays one string).
std::string yaml_quoted(const std::string& text);

/// Name of a type for messages ("an integer", "a list of numbers", ...).
template <typename T>
std::string type_name();

}  // namespace vcpclip::io

#include "vcpclip/io/config_node_inl.h"
