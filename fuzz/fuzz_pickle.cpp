// The pickle VM of the .pth reader on its own (data.pkl without the zip around it, so that every
// mutation reaches the opcodes): io::pickle::unpickle. Storage records are served as 64 zero
// bytes whatever their key, so a storage of the right size is rebuilt and others are refused.
#include <memory>

#include "fuzz_util.h"
#include "vcpclip/io/pickle.h"

VCPCLIP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const uint8_t> zeros(new uint8_t[64](), std::default_delete<uint8_t[]>());
  const vcpclip::io::pickle::RecordLoader records = [](const std::string&) {
    return std::make_pair(zeros, size_t(64));
  };
  vcpclip::fuzz::expect_clean([&] { vcpclip::io::pickle::unpickle(data, size, records, "fuzz.pkl"); });
  return 0;
}
