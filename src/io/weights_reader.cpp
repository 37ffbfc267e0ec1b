// Streaming weights reader: format detection and the shared helpers (see weights_reader.h).
#include "vcpclip/io/weights_reader.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "vcpclip/common/error.h"
#include "vcpclip/io/openai_weights.h"
#include "vcpclip/io/safetensors.h"

namespace vcpclip::io {

const WeightEntry* WeightsReader::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

at::Tensor WeightsReader::read(const std::string& name, at::ScalarType dtype) {
  const WeightEntry* e = find(name);
  VCP_CHECK(e, "weights file '", path_, "' has no tensor '", name, "'");
  auto out = at::empty(e->shape, at::TensorOptions().dtype(dtype));
  read_into(name, out);
  return out;
}

std::unique_ptr<WeightsReader> open_weights(const std::string& path) {
  std::error_code ec;
  VCP_CHECK(std::filesystem::exists(path, ec), "CLIP weights file '", path, "' does not exist");
  VCP_CHECK(std::filesystem::is_regular_file(path, ec), "CLIP weights path '", path, "' is not a file");
  std::ifstream in(path, std::ios::binary);
  VCP_CHECK(in, "cannot open CLIP weights file '", path, "'");
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  const bool zip = in.gcount() == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0;
  in.close();
  if (zip) return open_torchscript_weights(path);
  if (is_safetensors_file(path)) return open_safetensors(path);
  fail("'", path, "' is neither an OpenAI CLIP TorchScript archive (.pt, a zip file) nor a safetensors file");
}

std::map<std::string, at::Tensor> read_clip_tensors(const std::string& path) {
  auto file = open_weights(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& e : file->entries()) out[e.name] = file->read(e.name, at::kFloat);
  return out;
}

}  // namespace vcpclip::io
