#pragma once
// Minimal safetensors reader/writer (https://github.com/huggingface/safetensors format):
// 8-byte little-endian header length N, N bytes of JSON {"name": {"dtype", "shape",
// "data_offsets": [begin, end]}, "__metadata__": {...}}, then the raw little-endian data.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "vcpclip/io/weights_reader.h"

namespace vcpclip::io {

/// True if the first bytes of the file look like a safetensors header (length + '{').
bool is_safetensors_file(const std::string& path);

/// Opens a safetensors file for streaming reads (F32, F16, BF16). The header is checked when the
/// file is opened: bad JSON, offsets outside the file, size/shape mismatch, unsupported dtype or
/// a truncated file → vcpclip::Error naming the file (and the tensor at fault). "__metadata__"
/// is skipped.
std::unique_ptr<WeightsReader> open_safetensors(const std::string& path);

/// Reads every tensor as float32 CPU tensors (errors as open_safetensors).
std::map<std::string, at::Tensor> read_safetensors(const std::string& path);

/// Tensors (float32, CPU) and the string entries of "__metadata__".
struct SafetensorsContents {
  std::map<std::string, at::Tensor> tensors;
  std::map<std::string, std::string> metadata;
};
/// read_safetensors plus the "__metadata__" strings (a non-string value is an error naming the file).
SafetensorsContents read_safetensors_with_metadata(const std::string& path);

/// Writes tensors as a .safetensors file (F32), e.g. to convert an OpenAI archive once.
/// `metadata` entries go into "__metadata__" (after "format": "pt").
void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace vcpclip::io
