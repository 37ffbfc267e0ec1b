// Runtime settings (see include/vcpclip/common/runtime.h).
#include "vcpclip/common/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <thread>

#include "vcpclip/common/error.h"

namespace vcpclip {

c10::Device parse_device(const std::string& text) {
  if (text == "cpu") return c10::Device(c10::kCPU);
  if (text.rfind("cuda", 0) == 0) {
    int index = -1;
    if (text.size() > 4) {
      if (text[4] != ':' || text.size() == 5) fail("device '", text, "': expected cpu, cuda or cuda:N");
      try {
        std::size_t used = 0;
        index = std::stoi(text.substr(5), &used);
        if (used != text.size() - 5 || index < 0) throw std::invalid_argument("");
      } catch (const std::exception&) {
        fail("device '", text, "': expected cpu, cuda or cuda:N with N a GPU index");
      }
    }
    if (!torch::cuda::is_available())
      fail("device '", text,
           "' requested but this LibTorch build sees no CUDA GPU "
           "(Debian's libtorch is CPU-only: build against an official CUDA LibTorch, see README)");
    if (index >= static_cast<int>(torch::cuda::device_count()))
      fail("device '", text, "': only ", torch::cuda::device_count(), " CUDA device(s) present");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index < 0 ? 0 : index));
  }
  fail("device '", text, "': expected cpu, cuda or cuda:N");
}

int setup_threads(int threads) {
  if (threads < 0) fail("runtime.threads must be >= 0 (0 = all cores), found ", threads);
  int n = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  at::set_num_threads(n);
  return n;
}

void seed_everything(uint64_t seed) { torch::manual_seed(seed); }

void set_log_level(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    fail("runtime.log_level '", level, "': expected trace, debug, info, warn, error or off");
  spdlog::set_level(lvl);
}

c10::Device apply_runtime(const RuntimeOptions& opts) {
  set_log_level(opts.log_level);
  auto device = parse_device(opts.device);
  int n = setup_threads(opts.threads);
  seed_everything(opts.seed);
  if (device.is_cuda()) {
    at::globalContext().setAllowTF32CuBLAS(opts.tf32);
    at::globalContext().setAllowTF32CuDNN(opts.tf32);
  }
  spdlog::debug("runtime: device {}, {} intra-op threads, seed {}", device.str(), n, opts.seed);
  return device;
}

}  // namespace vcpclip
