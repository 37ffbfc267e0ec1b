#pragma once
// runtime.precision auto (README "Precision and BLAS kernels"): at start-up, a short GEMM probe on
// the vision tower's linear shapes times fp32 and bf16 on this machine, and bf16 is used only where
// it is at least kMinBf16Speedup times faster. `predict` and the vcpclip::Inferencer resolve auto
// with set_model_precision(); eval, train and calibrate refuse it (common/runtime.h).
//
// The probe: the four linear layers of one vision block (in_proj W→3W, out_proj W→W, c_fc W→4W,
// c_proj 4W→W) as at::linear, in fp32 and in bf16, with M input rows and the first C of each layer's
// N outputs. C grows ×4 from 16 to N, then M ×4 from 1 to the tokens of one image ((S / patch)² + 1),
// until one round of the four takes ≥ 3 ms in either precision; then both rounds repeat,
// alternating, at least 3 times each and until ~60 ms have passed. The rate of each precision is
// 2·M·Σ K·min(N, C) over its fastest round at the final M and C, the same work for both. On the
// CPU the probe runs on one intra-op thread and rounds are timed in that thread's CPU time, so that
// preemption on a loaded machine cannot decide (it did, timed in wall-clock on all threads); the
// rates are then one core's. On CUDA they are wall-clock, synchronised.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/common/runtime.h"
#include "vcpclip/model/clip_config.h"

namespace vcpclip::model {

class MethodImpl;

/// bf16 is chosen when its rate is at least this multiple of fp32's.
constexpr double kMinBf16Speedup = 1.3;

/// A linear layer's weight shape: K inputs, N outputs.
struct GemmShape {
  int64_t k = 0, n = 0;
};

/// What the probe measured.
struct ProbeRates {
  double fp32_gflops = 0, bf16_gflops = 0;
  int64_t rows = 0;               ///< M, the input rows of the timed rounds
  int64_t columns = 0;            ///< C: each shape's first min(N, C) outputs were computed
  std::vector<GemmShape> shapes;  ///< the GEMMs of one round
  double seconds = 0;             ///< the whole probe, set-up included
  /// The device has bf16 matrix instructions: CUDA always; the CPU with AVX512-BF16 or AMX-BF16
  /// (common/cpu_features.h). Without them bf16 is emulated and auto never takes it.
  bool bf16_instructions = true;
  std::string cpu_features;  ///< CPU: CpuBf16::describe() ("" on CUDA)
};

/// The pure decision: bf16 when the device has bf16 instructions (bf16_instructions) and
/// bf16_gflops ≥ kMinBf16Speedup · fp32_gflops (both finite and > 0), else fp32.
Precision choose_precision(const ProbeRates& rates);

/// The four linear shapes of one vision block of `vision`.
std::vector<GemmShape> vision_block_shapes(const ClipVisionConfig& vision);

/// Times the shapes in fp32 and bf16 on `device` (see above); `max_rows` ≥ 1 caps M.
ProbeRates run_gemm_probe(const std::vector<GemmShape>& shapes, int64_t max_rows, const c10::Device& device);

/// The precision a run uses and, for auto, the probe behind it.
struct PrecisionChoice {
  Precision requested = Precision::kFp32;
  Precision used = Precision::kFp32;
  std::optional<ProbeRates> probe;  ///< set when requested is auto
  /// {"requested", "used"} and, for auto, "probe": {"fp32_gflops", "bf16_gflops", "bf16_speedup",
  /// "min_bf16_speedup", "rows", "columns", "shapes": [[K, N], ...], "seconds", "bf16_instructions",
  /// "cpu_features"}.
  nlohmann::json to_json() const;
  /// One log line: "precision auto -> fp32: GEMM probe fp32 120.5 GFLOP/s, bf16 4.1 GFLOP/s (0.03x; bf16
  /// needs >= 1.3x), 4 vision-block shapes at M = 16 rows x C = 3072 outputs, 35 ms"; for the others
  /// "precision bf16".
  std::string describe() const;
};

/// Resolves `requested` for `model` (already on its device): auto runs the probe on its vision
/// block shapes with M up to the tokens of one image and logs describe() at info level; the others
/// are used as they are. Then sets the model's precision (MethodImpl::set_precision).
PrecisionChoice set_model_precision(MethodImpl& model, Precision requested);

}  // namespace vcpclip::model
