#pragma once
// Process-wide runtime settings: compute device, intra-op threads, numeric precision, seeding,
// logging.
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <functional>
#include <string>

namespace vcpclip {

/// runtime.precision: what the CLIP towers compute in (the VCP head, losses and post-processing
/// stay fp32 in every mode except autocast, which is the reference's GPU setting).
enum class Precision {
  kFp32,      ///< default; golden parity
  kBf16,      ///< vision tower matmuls in bfloat16 (CPU: oneDNN; CUDA), the rest fp32
  kFp16,      ///< the same in float16 (CUDA only: LibTorch 1.13's CPU has no fp16 matmul)
  kAutocast,  ///< CUDA autocast (fp16) over fp32 weights for everything, as the reference's train.py/test.py
  kAuto       ///< predict and the Inferencer only: fp32 or bf16, whichever a start-up GEMM probe finds faster
              ///< (model/precision_probe.h); resolved before the model runs
};
/// "fp32" | "bf16" | "fp16" | "autocast" | "auto"; anything else:
/// "<where>: expected fp32, bf16, fp16, autocast or auto, found 'x'".
Precision parse_precision(const std::string& text, const std::string& where);
const char* to_string(Precision p);
/// The dtype of the vision tower's attention/MLP weights and matmuls (fp32 for kFp32 and kAutocast).
c10::ScalarType block_dtype(Precision p);
/// A vcpclip::Error when `device` cannot run `p` (fp16 and autocast need CUDA).
void check_precision(Precision p, const c10::Device& device);
/// eval, train and calibrate keep an explicit precision, so that published metrics and calibrations
/// mean exactly what their config says. runtime.precision auto there is this vcpclip::Error:
/// "<command>: runtime.precision auto is for predict and the Inferencer; <command> needs an explicit
///  precision (fp32, the default, or bf16/fp16/autocast) so that its results mean what the config says"
void refuse_auto_precision(Precision p, const std::string& command);

/// `runtime:` section of a run config.
struct RuntimeOptions {
  std::string device = "cpu";              ///< cpu | cuda | cuda:N
  int threads = 0;                         ///< intra-op threads; 0 = cores ÷ local world size (LOCAL_WORLD_SIZE)
  Precision precision = Precision::kFp32;  ///< runtime.precision
  uint64_t seed = 333;                     ///< seed for torch, augmentation and shuffling (reference: 333)
  std::string log_level = "info";          ///< trace|debug|info|warn|error
  bool tf32 = false;                       ///< CUDA: allow TF32 in matmuls/convolutions (faster; ~3e-3 off fp32 parity)
};

/// Parses "cpu", "cuda", "cuda:N"; CUDA requested but unavailable is a vcpclip::Error.
c10::Device parse_device(const std::string& text);
/// Processes sharing this machine: $LOCAL_WORLD_SIZE as torchrun sets it, else 1.
int local_world_size();
/// Threads for one process: `requested` when > 0, else max(1, cores ÷ local_world_size()).
int threads_per_process(int requested);
/// Sets torch intra-op threads (threads_per_process(threads)), logs the choice, returns it.
int setup_threads(int threads);
/// Loader worker threads for one process: `requested` capped at threads_per_process(0) when several
/// processes share the machine (logged when capped); unchanged for a single process.
int loader_workers(int requested);
/// A function that waits for `device`'s queued work (CUDA), or an empty one for the CPU
/// (for StageTimer).
std::function<void()> device_sync(const c10::Device& device);
/// Seeds torch (CPU and CUDA) with `seed`.
void seed_everything(uint64_t seed);
/// Applies the BLAS kernel choice (select_blas_kernels), device check, threads, seed and log level;
/// returns the device.
c10::Device apply_runtime(const RuntimeOptions& opts);
/// Sets the spdlog level from its name; unknown names are a vcpclip::Error.
void set_log_level(const std::string& level);

}  // namespace vcpclip
