#pragma once
// `vcpclip data check -c C [--section train|eval] [--set k=v]`: checks the data section
// `<section>.data` of a run config (loaded and validated like every command's, app::load_run_config),
// prints classes with counts (normal / anomalous / masks) and every problem (see data/check.h), and
// returns the report; the command exits with status 2 when problems exist.
#include <ostream>
#include <string>

#include "vcpclip/app/config/run_config.h"
#include "vcpclip/data/check.h"

namespace vcpclip::app {

/// What the command line adds to the config.
struct DataCheckFlags {
  std::string section = "train";  ///< train | eval: which data section is checked
  int workers = 2;                ///< decoding threads
  bool decode = true;             ///< decode images and masks (else existence checks only)
  bool progress = true;           ///< progress bar on stderr
};

/// Everything a data check needs.
struct DataCheckRequest {
  data::DataOptions data;  ///< the data section to check
  data::CheckOptions check;
};

/// The request for `cfg` and the flags. Errors: an unknown section ("expected train or eval"), a
/// config without that data section (RunConfig::require_*_data's message).
DataCheckRequest make_data_check_request(const RunConfig& cfg, const DataCheckFlags& flags);

/// Checks the data set and writes DataReport::format() to `out`.
data::DataReport run_data_check(const DataCheckRequest& req, std::ostream& out);

}  // namespace vcpclip::app
