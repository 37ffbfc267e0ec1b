// CLIP backbone weights as a .safetensors file: io::read_clip_tensors (content sniffing) and
// io::read_safetensors, then the config inference over the tensors' shapes.
#include "fuzz_util.h"
#include "vcpclip/io/openai_weights.h"
#include "vcpclip/io/safetensors.h"

VCPCLIP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = vcpclip::fuzz::input_file(data, size, ".safetensors");
  vcpclip::fuzz::expect_clean([&] { vcpclip::io::read_safetensors(path); });
  vcpclip::fuzz::expect_clean([&] {
    const auto tensors = vcpclip::io::read_clip_tensors(path);
    vcpclip::io::infer_clip_config(tensors, path);
  });
  return 0;
}
