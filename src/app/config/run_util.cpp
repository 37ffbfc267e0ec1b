// Helpers shared by demo and ablate (see include/vcpclip/app/config/run_util.h).
#include "vcpclip/app/config/run_util.h"

#include <ctime>

#include "vcpclip/io/config_node.h"

namespace vcpclip::app {

std::string substitute_out_dir(std::string s, const std::string& out_dir) {
  const std::string var(kOutDirVar);
  for (size_t p = s.find(var); p != std::string::npos; p = s.find(var, p + out_dir.size()))
    s.replace(p, var.size(), out_dir);
  return s;
}

YAML::Node substitute_out_dir(const YAML::Node& n, const std::string& out_dir) {
  if (n.IsScalar()) {
    YAML::Node out(substitute_out_dir(n.Scalar(), out_dir));
    if (n.Tag() == "!") out.SetTag("!");  // keep quoted scalars strings
    return out;
  }
  if (n.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& e : n) out.push_back(substitute_out_dir(e, out_dir));
    return out;
  }
  if (n.IsMap()) {
    YAML::Node out(YAML::NodeType::Map);
    for (const auto& kv : n) out[io::config_key_text(kv.first, "config")] = substitute_out_dir(kv.second, out_dir);
    return out;
  }
  return YAML::Clone(n);
}

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace vcpclip::app
