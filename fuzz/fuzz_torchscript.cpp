// CLIP backbone weights as OpenAI releases them (a TorchScript zip archive), through the public
// entry point io::read_clip_tensors and the config inference that reads the tensors' shapes.
// (The reader behind it may change; this target follows the entry point.)
#include "fuzz_util.h"
#include "vcpclip/io/openai_weights.h"

VCPCLIP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = vcpclip::fuzz::input_file(data, size, ".pt");
  vcpclip::fuzz::expect_clean([&] {
    const auto tensors = vcpclip::io::read_clip_tensors(path);
    vcpclip::io::infer_clip_config(tensors, path);
  });
  return 0;
}
