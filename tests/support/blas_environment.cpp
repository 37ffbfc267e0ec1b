// Every test process computes with the BLAS kernels the `vcpclip` binary uses: the OpenBLAS kernel
// choice (common/blas_kernels.h) is made before the first test, as apply_runtime() does for a command.
#include <gtest/gtest.h>

#include "vcpclip/common/blas_kernels.h"

namespace {
class BlasKernelEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { vcpclip::select_blas_kernels(); }
};
[[maybe_unused]] auto* const kBlasEnvironment = ::testing::AddGlobalTestEnvironment(new BlasKernelEnvironment);
}  // namespace
