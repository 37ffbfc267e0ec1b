// Saved-maps layout helpers for `vcpclip score` (see ground_truth.h).
#include "vcpclip/eval/ground_truth.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "vcpclip/common/error.h"
#include "vcpclip/io/atomic_file.h"

namespace vcpclip::eval {

std::string saved_map_path(const std::string& maps_dir, const GroundTruthItem& item) {
  return maps_dir + "/" + item.key() + ".npy";
}

std::map<std::string, double> read_scores_json(const std::string& path) {
  std::ifstream f(path);
  VCP_CHECK(f.good(), "cannot read image scores: ", path, " does not exist or is not readable");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    fail("cannot parse image scores ", path, ": ", e.what());
  }
  VCP_CHECK(j.is_object(), "image scores ", path, ": expected a JSON object {\"<class>/<defect>/<stem>\": score}");
  std::map<std::string, double> out;
  for (const auto& [k, v] : j.items()) {
    VCP_CHECK(v.is_number() && std::isfinite(v.get<double>()), "image scores ", path, ": value of '", k,
              "' must be a finite number, found ", v.dump());
    out[k] = v.get<double>();
  }
  return out;
}

void write_scores_json(const std::string& path, const std::map<std::string, double>& scores) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : scores) j[k] = v;
  io::write_file_atomically(path, j.dump(1) + "\n");
}

}  // namespace vcpclip::eval
