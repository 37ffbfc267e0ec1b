#pragma once
// Dataset readers (docs/design.md §9): they list SampleInfo records; nothing is decoded here.
//
//   layout mvtec : original MVTec AD  <root>/<class>/{train/good, test/<defect>/NNN.png,
//                  ground_truth/<defect>/NNN_mask.png}
//   layout visa  : original VisA      <root>/<class>/Data/{Images,Masks}/..., listed by
//                  <root>/split_csv/1cls.csv (columns object,split,label,image,mask)
//   layout meta  : the reference's meta_<name>.json {"train"|"test": {class: [{img_path,
//                  mask_path, cls_name, specie_name, anomaly}]}}, paths relative to the root
//   layout folder: any folder laid out like MVTec AD (any image extension; masks found as
//                  <stem>_mask.<ext> or <stem>.<ext> in ground_truth/<defect>/)
//
// Config section (e.g. `train.data` / `eval.data`), parsed by parse_data_options:
//   layout: mvtec|visa|meta|folder   (required)
//   root: DIR                        (required; a relative path is taken from the working
//                                     directory if it exists there, else from the config file)
//   meta: FILE                       (meta layout; default: the single meta_*.json in root)
//   csv: FILE                        (visa layout; default <root>/split_csv/1cls.csv)
//   split: test                      (train|test; training and evaluation both use test)
//   classes: []                      (empty = all classes, in the dataset's order)
//   workers: 2, prefetch: 2          (loader threads; batches decoded ahead)
//   skip_bad: false                  (warn and skip unreadable samples instead of failing)
//   augment: <training>              (docs/design.md §7 augmentations; default on for training only)
//   mosaic_p: <0.2 | 0>              (2×2 same-class mosaic probability; default 0.2 when
//                                     training on an MVTec-style set: layout mvtec/folder or a
//                                     meta file whose name contains "mvtec"; else 0)
#include <string>
#include <vector>

#include "vcpclip/data/sample.h"
#include "vcpclip/io/config_node.h"

namespace vcpclip::data {

struct DataOptions {
  std::string layout;                ///< mvtec | visa | meta | folder
  std::string root;                  ///< dataset root directory
  std::string meta;                  ///< meta layout: meta json ("" = the single meta_*.json in root)
  std::string csv;                   ///< visa layout: split csv ("" = <root>/split_csv/1cls.csv)
  std::string split = "test";        ///< train | test
  std::vector<std::string> classes;  ///< class filter, empty = all
  int workers = 2;                   ///< loader worker threads
  int prefetch = 2;                  ///< batches decoded ahead of the consumer
  bool skip_bad = false;             ///< skip unreadable samples with a warning
  bool augment = false;              ///< docs/design.md §7 augmentations (training only)
  double mosaic_p = 0.0;             ///< 2×2 same-class mosaic probability (training only)
};

/// Reads a data section (see above) and calls finish(). `training` sets the defaults of
/// augment / mosaic_p. Unknown layout or split, missing root: vcpclip::Error naming the key.
DataOptions parse_data_options(io::ConfigNode& node, bool training = false);

/// Whether `opts` describes an MVTec-style set (mosaic default applies).
bool is_mvtec_style(const DataOptions& opts);

/// Classes of a dataset (all of them, or the filtered ones, in dataset order) and the samples
/// of the chosen split. A class listed in the dataset but without samples stays in `classes`.
struct DatasetIndex {
  std::vector<std::string> classes;
  std::vector<SampleInfo> samples;
  std::string source;  ///< what was read, for messages ("MVTec AD layout at /data/mvtec")
};

/// Reads the dataset that `opts` describes. Errors: missing root / meta / csv, malformed file
/// (with file and line), unknown class in the filter (lists the available ones).
DatasetIndex read_index(const DataOptions& opts);
/// read_index(opts).samples
std::vector<SampleInfo> read_samples(const DataOptions& opts);

DatasetIndex read_mvtec(const std::string& root, const std::string& split, const std::vector<std::string>& classes);
DatasetIndex read_folder(const std::string& root, const std::string& split, const std::vector<std::string>& classes);
DatasetIndex read_visa(const std::string& root, const std::string& csv, const std::string& split,
                       const std::vector<std::string>& classes);
DatasetIndex read_meta(const std::string& root, const std::string& meta_file, const std::string& split,
                       const std::vector<std::string>& classes);

/// Class names in order of first appearance.
std::vector<std::string> class_names(const std::vector<SampleInfo>& samples);

}  // namespace vcpclip::data
