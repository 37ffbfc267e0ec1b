// A saved anomaly map (.npy, what `vcpclip score` reads from other methods): io::read_npy.
#include "fuzz_util.h"
#include "vcpclip/io/npy.h"

VCPCLIP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = vcpclip::fuzz::input_file(data, size, ".npy");
  vcpclip::fuzz::expect_clean([&] { vcpclip::io::read_npy(path); });
  return 0;
}
