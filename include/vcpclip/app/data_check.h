#pragma once
// `vcpclip data check --config C [--section train|eval]`: reads the data section `<section>.data`
// of a run config, prints classes with counts (normal / anomalous / masks) and every problem
// (see data/check.h), and returns the report; the command exits non-zero when problems exist.
#include <ostream>
#include <string>

#include "vcpclip/data/check.h"

namespace vcpclip::app {

struct DataCheckArgs {
  std::string config;             ///< run config (YAML/JSON)
  std::string section = "train";  ///< train | eval (any top-level key holding a `data:` mapping)
  int workers = 2;                ///< decoding threads
  bool decode = true;             ///< decode images and masks (else existence checks only)
  bool progress = true;           ///< progress bar on stderr
};

/// Loads `<section>.data` from the config, checks it, writes DataReport::format() to `out`.
data::DataReport run_data_check(const DataCheckArgs& args, std::ostream& out);

}  // namespace vcpclip::app
