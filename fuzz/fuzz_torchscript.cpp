// CLIP backbone weights as OpenAI releases them (a TorchScript zip archive), through the streaming
// reader io::open_weights (every tensor read as fp32) and model::infer_clip_config over the shapes.
#include "fuzz_util.h"
#include "vcpclip/io/weights_reader.h"
#include "vcpclip/model/clip_weights.h"

VCPCLIP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = vcpclip::fuzz::input_file(data, size, ".pt");
  vcpclip::fuzz::expect_clean([&] {
    auto file = vcpclip::io::open_weights(path);
    for (const auto& e : file->entries()) file->read(e.name, at::kFloat);
    vcpclip::model::infer_clip_config(file->entries(), path);
  });
  return 0;
}
