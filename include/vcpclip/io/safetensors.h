#pragma once
// Minimal safetensors reader/writer (https://github.com/huggingface/safetensors format):
// 8-byte little-endian header length N, N bytes of JSON {"name": {"dtype", "shape",
// "data_offsets": [begin, end]}, "__metadata__": {...}}, then the raw little-endian data.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

namespace vcpclip::io {

/// True if the first bytes of the file look like a safetensors header (length + '{').
bool is_safetensors_file(const std::string& path);

/// Reads every tensor (F32, F16, BF16 → float32 CPU). Bad header, offsets outside the file,
/// size/shape mismatch, unsupported dtype or a truncated file → vcpclip::Error naming the file
/// (and the tensor where one is at fault). "__metadata__" is skipped.
std::map<std::string, at::Tensor> read_safetensors(const std::string& path);

}  // namespace vcpclip::io
