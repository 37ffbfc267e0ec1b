// A run config (YAML, every section parsed and checked: app::parse_run_config) and, from the same
// bytes, a backbone config JSON (model::ClipConfig::from_json_text). Nothing is loaded from the
// paths a config names, so the target reads no other file.
#include "fuzz_util.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/model/clip_config.h"

VCPCLIP_FUZZ_INIT()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  vcpclip::fuzz::expect_clean([&] { vcpclip::app::parse_run_config(text, "fuzz.yaml"); });
  vcpclip::fuzz::expect_clean([&] { vcpclip::model::ClipConfig::from_json_text(text, "fuzz.json", "fuzz"); });
  return 0;
}
