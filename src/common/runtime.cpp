// Runtime settings (see include/vcpclip/common/runtime.h).
#include "vcpclip/common/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "vcpclip/common/blas_kernels.h"
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

Precision parse_precision(const std::string& text, const std::string& where) {
  if (text == "fp32") return Precision::kFp32;
  if (text == "bf16") return Precision::kBf16;
  if (text == "fp16") return Precision::kFp16;
  if (text == "autocast") return Precision::kAutocast;
  if (text == "auto") return Precision::kAuto;
  fail(where, ": expected fp32, bf16, fp16, autocast or auto, found '", text, "'");
}

const char* to_string(Precision p) {
  switch (p) {
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
    case Precision::kAutocast:
      return "autocast";
    case Precision::kAuto:
      return "auto";
    default:
      return "fp32";
  }
}

c10::ScalarType block_dtype(Precision p) {
  VCP_CHECK(p != Precision::kAuto, "runtime.precision auto must be resolved (model/precision_probe.h) before the ",
            "model is set to a precision");
  if (p == Precision::kBf16) return c10::kBFloat16;
  if (p == Precision::kFp16) return c10::kHalf;
  return c10::kFloat;
}

void check_precision(Precision p, const c10::Device& device) {
  if (device.is_cuda()) return;
  VCP_CHECK(p != Precision::kFp16, "runtime.precision fp16 needs a CUDA device: LibTorch's CPU kernels have no fp16 ",
            "matrix multiply (\"addmm_impl_cpu_\" not implemented for 'Half'); use bf16 on the CPU");
  VCP_CHECK(p != Precision::kAutocast, "runtime.precision autocast is CUDA autocast (fp16 over fp32 weights, the ",
            "reference's GPU setting) and needs a CUDA device; use bf16 or fp32 on the CPU");
}

void refuse_auto_precision(Precision p, const std::string& command) {
  VCP_CHECK(p != Precision::kAuto, command, ": runtime.precision auto is for predict and the Inferencer; ", command,
            " needs an explicit precision (fp32, the default, or bf16/fp16/autocast) so that its results mean what ",
            "the config says");
}

int local_world_size() {
  const char* env = std::getenv("LOCAL_WORLD_SIZE");
  if (!env || !*env) return 1;
  try {
    return std::max(1, std::stoi(env));
  } catch (const std::exception&) {
    fail("LOCAL_WORLD_SIZE='", env, "' is not a number (torchrun sets it to the processes per machine)");
  }
}

int threads_per_process(int requested) {
  if (requested < 0) fail("runtime.threads must be >= 0 (0 = cores / local world size), found ", requested);
  if (requested > 0) return requested;
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return std::max(1, cores / local_world_size());
}

int setup_threads(int threads) {
  const int n = threads_per_process(threads);
  at::set_num_threads(n);
  if (threads == 0)
    spdlog::log(local_world_size() > 1 ? spdlog::level::info : spdlog::level::debug,
                "runtime: {} intra-op thread(s) = {} core(s) / {} process(es) on this machine (LOCAL_WORLD_SIZE)", n,
                std::thread::hardware_concurrency(), local_world_size());
  return n;
}

int loader_workers(int requested) {
  if (local_world_size() <= 1 || requested <= 1) return requested;
  const int cap = threads_per_process(0);
  if (requested <= cap) return requested;
  spdlog::info("runtime: {} loader worker(s) instead of {}: {} process(es) share {} core(s) (LOCAL_WORLD_SIZE)", cap,
               requested, local_world_size(), std::thread::hardware_concurrency());
  return cap;
}

std::function<void()> device_sync(const c10::Device& device) {
  if (!device.is_cuda()) return {};
  return [] { torch::cuda::synchronize(); };
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
  select_blas_kernels();  // before the first matmul of this process (blas_kernels.h)
  auto device = parse_device(opts.device);
  check_precision(opts.precision, device);
  int n = setup_threads(opts.threads);
  seed_everything(opts.seed);
  if (device.is_cuda()) {
    at::globalContext().setAllowTF32CuBLAS(opts.tf32);
    at::globalContext().setAllowTF32CuDNN(opts.tf32);
  }
  spdlog::debug("runtime: device {}, {} intra-op threads, precision {}, seed {}", device.str(), n,
                to_string(opts.precision), opts.seed);
  return device;
}

}  // namespace vcpclip
