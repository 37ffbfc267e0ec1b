// CLIP backbone weights as a .safetensors file: io::read_safetensors, then the streaming
// reader io::open_weights (content sniffing, every tensor read) and model::infer_clip_config.
#include "fuzz_util.h"
#include "vcpclip/io/safetensors.h"
#include "vcpclip/io/weights_reader.h"
#include "vcpclip/model/clip_weights.h"

VCPCLIP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = vcpclip::fuzz::input_file(data, size, ".safetensors");
  vcpclip::fuzz::expect_clean([&] { vcpclip::io::read_safetensors(path); });
  vcpclip::fuzz::expect_clean([&] {
    auto file = vcpclip::io::open_weights(path);
    for (const auto& e : file->entries()) file->read(e.name, at::kFloat);
    vcpclip::model::infer_clip_config(file->entries(), path);
  });
  return 0;
}
