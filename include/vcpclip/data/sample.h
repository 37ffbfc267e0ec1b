#pragma once
// One dataset item: where it lives (SampleInfo) and, once loaded, its preprocessed tensors (Sample).
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace vcpclip::data {

/// What a dataset reader returns for one image. Paths are absolute or relative to the process
/// working directory (readers resolve them against the dataset root).
struct SampleInfo {
  std::string image_path;
  std::string mask_path;    ///< "" for a normal image (no mask file)
  std::string cls_name;     ///< product class, e.g. "bottle", "pcb1"
  std::string specie_name;  ///< defect type, "good" for normal images
  int anomaly = 0;          ///< 0 normal, 1 anomalous
};

/// A loaded, preprocessed item.
struct Sample {
  at::Tensor image;  ///< [3,S,S] float32, CLIP-normalised
  at::Tensor mask;   ///< [S,S] float32, values 0/1 (all zeros for normal images)
  SampleInfo info;
};

/// A collated batch of Samples.
struct Batch {
  at::Tensor images;  ///< [B,3,S,S] float32
  at::Tensor masks;   ///< [B,S,S] float32 0/1
  std::vector<SampleInfo> infos;
  int64_t size() const { return static_cast<int64_t>(infos.size()); }
  /// The product class of each image, in batch order (the class folder's name, as written there):
  /// what a method whose prompts name the product receives (model::ClassNames).
  std::vector<std::string> classes() const {
    std::vector<std::string> out;
    for (const auto& i : infos) out.push_back(i.cls_name);
    return out;
  }
};

}  // namespace vcpclip::data
