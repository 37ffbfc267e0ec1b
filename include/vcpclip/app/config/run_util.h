#pragma once
// Small helpers shared by the commands that orchestrate runs (demo, ablate).
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <string>

#include "vcpclip/app/config/run_config.h"
#include "vcpclip/train/trainer.h"

namespace vcpclip::app {

/// The placeholder that demo and ablation configs use for their output directory.
inline constexpr const char* kOutDirVar = "${out_dir}";

/// `s` with every "${out_dir}" replaced by `out_dir`.
std::string substitute_out_dir(std::string s, const std::string& out_dir);
/// Deep copy of a YAML tree with "${out_dir}" replaced in every string scalar (quoted scalars
/// keep their quotes, so they stay strings).
YAML::Node substitute_out_dir(const YAML::Node& node, const std::string& out_dir);

/// Current UTC time as ISO 8601 ("2026-11-27T01:02:03Z"), for done-markers and summaries.
std::string now_iso();

/// Seconds elapsed since `t0`.
double seconds_since(std::chrono::steady_clock::time_point t0);

}  // namespace vcpclip::app
