#pragma once
// Dataset validation (`vcpclip data check`; the trainer refuses a broken dataset unless skip_bad).
//
// Problems found (one line each, exact texts):
//   "empty class: <cls> has no images in split '<split>'"
//   "unreadable image: <reason>"                   (reason from read_rgb, names the file)
//   "missing mask: <mask> (for <image>)"           (anomalous image whose mask file is absent)
//   "anomalous image without a mask path: <image>"
//   "unreadable mask: <reason>"
//   "mask size WxH differs from image size WxH: <mask> (for <image>)"
// Warnings (reported, not problems): anomalous image whose mask has no defect pixel.
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "vcpclip/data/datasets.h"

namespace vcpclip::data {

struct ClassCounts {
  std::string cls;
  int64_t normal = 0, anomalous = 0, masks = 0;  ///< masks: anomalous images whose mask file exists
};

struct DataReport {
  std::string source;  ///< what was read (DatasetIndex::source)
  std::string split;
  std::vector<ClassCounts> classes;  ///< dataset order
  std::vector<std::string> problems;
  std::vector<std::string> warnings;
  std::set<std::string> bad_images;  ///< image paths of samples with a problem
  int64_t total() const;
  bool ok() const { return problems.empty(); }
  /// Human-readable table of counts followed by every problem and warning.
  std::string format() const;
};

struct CheckOptions {
  int workers = 2;        ///< decoding threads
  bool decode = true;     ///< decode every image and mask (else only existence checks)
  bool progress = false;  ///< show a progress bar on stderr
};

/// Checks an already-read index.
DataReport check_index(const DatasetIndex& index, const std::string& split, const CheckOptions& opts = {});
/// read_index(opts) + check_index.
DataReport check_dataset(const DataOptions& opts, const CheckOptions& check = {});

/// Drops the samples listed in report.bad_images (for skip_bad); returns how many were dropped.
size_t drop_bad(std::vector<SampleInfo>& samples, const DataReport& report);

}  // namespace vcpclip::data
