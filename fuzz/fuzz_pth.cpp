// A .pth checkpoint (torch.save zip + pickle, the reference layout): io::read_reference_checkpoint,
// what `eval -k` and `train --init-from` read before the model is touched.
#include "fuzz_util.h"
#include "vcpclip/io/checkpoint.h"

VCPCLIP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = vcpclip::fuzz::input_file(data, size, ".pth");
  vcpclip::fuzz::expect_clean([&] { vcpclip::io::read_reference_checkpoint(path); });
  return 0;
}
