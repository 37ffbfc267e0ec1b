#pragma once
// Process-wide runtime settings: compute device, intra-op threads, seeding, logging.
#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace vcpclip {

/// `runtime:` section of a run config.
struct RuntimeOptions {
  std::string device = "cpu";      ///< cpu | cuda | cuda:N
  int threads = 0;                 ///< intra-op threads; 0 = all cores
  uint64_t seed = 333;             ///< seed for torch, augmentation and shuffling (reference: 333)
  std::string log_level = "info";  ///< trace|debug|info|warn|error
  bool tf32 = false;               ///< CUDA: allow TF32 in matmuls/convolutions (faster; ~3e-3 off fp32 parity)
};

/// Parses "cpu", "cuda", "cuda:N"; CUDA requested but unavailable is a vcpclip::Error.
c10::Device parse_device(const std::string& text);
/// Sets torch intra-op threads (0 = hardware concurrency) and returns the number set.
int setup_threads(int threads);
/// Seeds torch (CPU and CUDA) with `seed`.
void seed_everything(uint64_t seed);
/// Applies device check, threads, seed and log level; returns the device.
c10::Device apply_runtime(const RuntimeOptions& opts);
/// Sets the spdlog level from its name; unknown names are a vcpclip::Error.
void set_log_level(const std::string& level);

}  // namespace vcpclip
