// Strict YAML/JSON configuration reading (see include/vcpclip/io/config_node.h).
#include "vcpclip/io/config_node.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace vcpclip::io {

namespace fs = std::filesystem;

namespace detail {
std::string scalar_text(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : std::string(); }
bool is_integer_text(const std::string& s) {
  static const std::regex re(R"([-+]?(0|[1-9][0-9]*))");
  return std::regex_match(s, re);
}
bool is_number_text(const std::string& s) {
  static const std::regex re(R"([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?)");
  return std::regex_match(s, re) || s == ".inf" || s == "-.inf";
}
bool is_bool_text(const std::string& s) {
  return s == "true" || s == "false" || s == "True" || s == "False" || s == "TRUE" || s == "FALSE";
}
}  // namespace detail

std::string config_key_text(const YAML::Node& key, const std::string& where) {
  if (key.IsScalar()) return key.Scalar();
  const char* kind = key.IsMap() ? "mapping" : key.IsSequence() ? "sequence" : "null";
  fail(where, ": line ", key.Mark().line + 1, ": a config key must be plain text, found a ", kind, " key");
}

ConfigNode::ConfigNode(YAML::Node node, std::string origin, std::string prefix)
    : node_(std::move(node)), origin_(std::move(origin)), prefix_(std::move(prefix)) {}

ConfigNode ConfigNode::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot open config file '", path, "': ", fs::exists(path) ? "not readable" : "no such file");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_string(ss.str(), path);
}

ConfigNode ConfigNode::from_string(const std::string& text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("cannot parse config '", origin, "': line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ", e.msg);
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) fail("config '", origin, "' must be a mapping of keys to values at the top level");
  return ConfigNode(root, origin, "");
}

void ConfigNode::apply_override(const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("override '", assignment, "' must look like key.subkey=value (e.g. train.epochs=3)");
  std::string key = assignment.substr(0, eq);
  std::string value = assignment.substr(eq + 1);
  YAML::Node v;
  try {
    v = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    fail("override '", assignment, "': value is not valid YAML: ", e.msg);
  }
  std::vector<std::string> parts;
  std::stringstream ks(key);
  for (std::string p; std::getline(ks, p, '.');) {
    if (p.empty()) fail("override '", assignment, "': empty key component");
    parts.push_back(p);
  }
  // yaml-cpp's operator[] returns handles; walk with reset-free copies.
  std::vector<YAML::Node> chain{node_};
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node cur = chain.back();
    YAML::Node next = cur[parts[i]];
    if (!next || next.IsNull()) {
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = cur[parts[i]];
    } else if (!next.IsMap()) {
      fail("override '", assignment, "': '", parts[i], "' is not a section in ", origin_);
    }
    chain.push_back(next);
  }
  YAML::Node last = chain.back();
  last[parts.back()] = v;
}

bool ConfigNode::has(const std::string& key) const {
  return node_ && node_.IsMap() && node_[key] && !node_[key].IsNull();
}

ConfigNode ConfigNode::section(const std::string& key, bool required) {
  mark(key);
  std::string child_prefix = prefix_.empty() ? key : prefix_ + "." + key;
  YAML::Node n(YAML::NodeType::Map);
  if (!has(key)) {
    if (required) fail("missing config section ", where(key));
  } else {
    n = node_[key];
    if (!n.IsMap()) fail("config key ", where(key), ": expected a section (a mapping of keys to values)");
  }
  ConfigNode child(n, origin_, child_prefix);
  child.effective_root_ = effective_root_;  // its keys appear in effective() as they are read
  return child;
}

YAML::Node ConfigNode::effective_section() const {
  YAML::Node cur = *effective_root_;
  if (prefix_.empty()) return cur;
  std::stringstream ps(prefix_);
  for (std::string part; std::getline(ps, part, '.');) {
    if (!cur[part].IsMap()) cur[part] = YAML::Node(YAML::NodeType::Map);
    YAML::Node next = cur[part];
    cur.reset(next);
  }
  return cur;
}

void ConfigNode::record(const std::string& key, const YAML::Node& value) const {
  YAML::Node sec = effective_section();
  sec[key] = value;
}

void ConfigNode::mark(const std::string& key) const { read_->insert(key); }

void ConfigNode::finish() const {
  if (!node_ || !node_.IsMap()) return;
  std::vector<std::string> unknown;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    std::string k = config_key_text(it->first, prefix_.empty() ? origin_ : "section '" + prefix_ + "' in " + origin_);
    if (!read_->count(k)) unknown.push_back(k);
  }
  if (unknown.empty()) return;
  std::string known;
  for (const auto& k : *read_) known += (known.empty() ? "" : ", ") + k;
  fail("unknown config key ", where(unknown.front()),
       (unknown.size() > 1 ? msg(" (and ", unknown.size() - 1, " more)") : ""), "; known keys",
       prefix_.empty() ? "" : " of '" + prefix_ + "'", ": ", known.empty() ? "(none)" : known);
}

std::string ConfigNode::where(const std::string& key) const {
  return "'" + (prefix_.empty() ? key : prefix_ + "." + key) + "' in " + origin_;
}

std::string ConfigNode::base_dir() const {
  if (origin_.empty() || origin_[0] == '<') return "";
  return fs::path(origin_).parent_path().string();
}

std::string ConfigNode::resolve_path(const std::string& value) const {
  if (value.empty()) return value;
  fs::path p(value);
  if (p.is_absolute()) return value;
  // Relative paths are relative to the working directory when they exist there, else to the file.
  // (A path the system cannot even look up, e.g. too long, counts as absent: its user names it.)
  std::error_code ec;
  if (fs::exists(p, ec) || base_dir().empty()) return value;
  fs::path alt = fs::path(base_dir()) / p;
  return fs::exists(alt, ec) ? alt.string() : value;
}

std::string ConfigNode::get_path(const std::string& key, const std::string& fallback) {
  const std::string value = resolve_path(get<std::string>(key, fallback));
  std::error_code ec;
  const fs::path abs = value.empty() ? fs::path() : fs::absolute(value, ec).lexically_normal();
  record(key, effective_value(ec ? value : abs.string()));
  return value;
}

YAML::Node effective_value(const std::string& v) { return YAML::Node(v); }
YAML::Node effective_value(bool v) { return YAML::Node(v ? "true" : "false"); }
YAML::Node effective_value(int v) { return YAML::Node(std::to_string(v)); }
YAML::Node effective_value(int64_t v) { return YAML::Node(std::to_string(v)); }
YAML::Node effective_value(float v) { return effective_value(static_cast<double>(v)); }
YAML::Node effective_value(double v) {
  if (std::isinf(v)) return YAML::Node(v > 0 ? ".inf" : "-.inf");
  char buf[40];
  for (int digits = 1; digits <= 17; ++digits) {  // the shortest text that reads back exactly
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string text(buf);
  // "5" would read back as an integer-looking number; configs accept it, but keep doubles visible.
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return YAML::Node(text);
}

std::string yaml_quoted(const std::string& text) {
  YAML::Emitter em;
  em << YAML::DoubleQuoted << text;
  return em.c_str();
}

}  // namespace vcpclip::io
