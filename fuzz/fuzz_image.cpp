// A dataset image and mask file (any format OpenCV decodes) through decoding and preprocessing
// (docs/design.md §7): data::read_rgb + preprocess_image, data::read_mask + preprocess_mask, at a small
// working size.
#include "fuzz_util.h"
#include "vcpclip/data/transforms.h"

VCPCLIP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = vcpclip::fuzz::input_file(data, size, ".img");
  vcpclip::fuzz::expect_clean([&] { vcpclip::data::preprocess_image(vcpclip::data::read_rgb(path), 24); });
  vcpclip::fuzz::expect_clean([&] { vcpclip::data::preprocess_mask(vcpclip::data::read_mask(path), 24); });
  return 0;
}
