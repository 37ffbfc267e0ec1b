#pragma once
// What `vcpclip score` needs to know about each test image, independent of the dataset reader
// (app/score.cpp fills it from data::read_index), and the saved-maps layout it reads:
//
//   MAPS/<class>/<defect>/<stem>.npy   float32 (or float64) [S,S] or [1,S,S] pixel map: the
//                                      post-processed map before per-class min-max
//   MAPS/scores.json                   {"<class>/<defect>/<stem>": score, ...}: the image score
//                                      before per-class min-max (mean top-k M_raw + mean top-k
//                                      M_post); extra keys are ignored
// <stem> is the image file name without its extension; <defect> is "good" for normal images.
#include <map>
#include <string>
#include <vector>

namespace vcpclip::eval {

struct GroundTruthItem {
  std::string cls;        ///< product class
  std::string defect;     ///< defect type ("good" when normal)
  std::string stem;       ///< image file name without extension
  std::string mask_path;  ///< "" = all normal
  int label = 0;          ///< 0 normal, 1 anomalous
  std::string key() const { return cls + "/" + defect + "/" + stem; }
};

/// MAPS/<class>/<defect>/<stem>.npy
std::string saved_map_path(const std::string& maps_dir, const GroundTruthItem& item);

/// Reads MAPS/scores.json. Errors (vcpclip::Error naming the file): missing or unparsable file,
/// not an object, a value that is not a finite number (naming the key).
std::map<std::string, double> read_scores_json(const std::string& path);

/// Writes {"key": score, ...} (sorted keys) atomically.
void write_scores_json(const std::string& path, const std::map<std::string, double>& scores);

}  // namespace vcpclip::eval
