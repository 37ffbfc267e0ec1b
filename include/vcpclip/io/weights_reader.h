#pragma once
// Streaming access to a weights file: the tensors' names, dtypes and shapes are listed without
// reading any data, and each tensor is read on demand straight into a destination tensor
// (converting its dtype, e.g. fp16 records into fp32 parameters). Only the record being read is
// held in memory, so loading a model needs about its own size, not twice it. io knows the file
// formats only; loading into a model lives in model/ (model/clip_weights.h).
//
//   auto file = vcpclip::io::open_weights("ViT-L-14-336px.pt");   // TorchScript or safetensors
//   for (const auto& e : file->entries()) ...                       // name, dtype, shape
//   file->read_into("visual.proj", param);                          // fp16 → param's dtype
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vcpclip::io {

/// One tensor of a weights file, described without reading its data.
struct WeightEntry {
  std::string name;            ///< e.g. "visual.transformer.resblocks.7.attn.in_proj_weight"
  at::ScalarType dtype;        ///< as stored (OpenAI archives: Half)
  std::vector<int64_t> shape;  ///< as stored
};

class WeightsReader {
 public:
  virtual ~WeightsReader() = default;
  /// The file, for messages.
  const std::string& path() const { return path_; }
  /// Every tensor of the file, in file order.
  const std::vector<WeightEntry>& entries() const { return entries_; }
  /// The entry called `name`, or nullptr.
  const WeightEntry* find(const std::string& name) const;
  /// Reads tensor `name` into `dst` (same shape; any dtype and device: the values are converted).
  /// Unknown name, a truncated or corrupt record → vcpclip::Error naming the file and tensor.
  virtual void read_into(const std::string& name, at::Tensor dst) = 0;
  /// Reads tensor `name` as a new CPU tensor of `dtype`.
  at::Tensor read(const std::string& name, at::ScalarType dtype);

 protected:
  explicit WeightsReader(std::string path) : path_(std::move(path)) {}
  std::string path_;
  std::vector<WeightEntry> entries_;
};

/// Opens a CLIP weights file by content: an OpenAI TorchScript archive (a zip: .pt) or a
/// .safetensors file. A missing file, a directory or anything else is a vcpclip::Error.
std::unique_ptr<WeightsReader> open_weights(const std::string& path);

/// Every tensor of a weights file as float32 CPU tensors keyed by name (small files, tests,
/// conversion to safetensors).
std::map<std::string, at::Tensor> read_clip_tensors(const std::string& path);

}  // namespace vcpclip::io
