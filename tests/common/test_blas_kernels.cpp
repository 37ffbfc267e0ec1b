// OpenBLAS kernel selection (common/blas_kernels.h): a Prescott fallback on a CPU with AVX2/AVX-512
// is switched to the matching kernels, a user's OPENBLAS_CORETYPE is respected, and products stay right.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cctype>
#include <string>

#include "support/run_binary.h"
#include "vcpclip/common/blas_kernels.h"

using namespace vcpclip;
using vcpclip::testing::run_command;

namespace {
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

TEST(BlasKernels, BestCoreFollowsTheInstructionSets) {
  const std::string best = best_openblas_core();
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    EXPECT_EQ(best, "SkylakeX");
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    EXPECT_EQ(best, "Haswell");
  else
    EXPECT_EQ(best, "");
}

TEST(BlasKernels, PrescottFallbackIsReplacedAndProductsStayExact) {
  const BlasKernels& k = select_blas_kernels();
  EXPECT_EQ(&k, &select_blas_kernels());  // once per process
  if (!k.openblas) GTEST_SKIP() << k.reason;
  if (std::getenv("OPENBLAS_CORETYPE")) {
    EXPECT_EQ(k.after, k.before);
  } else if (lower(k.before) == "prescott" && !best_openblas_core().empty()) {
    EXPECT_EQ(lower(k.after), lower(best_openblas_core())) << k.reason;
    EXPECT_NE(k.reason.find("switched to"), std::string::npos) << k.reason;
  } else {
    EXPECT_EQ(k.after, k.before) << k.reason;
  }
  // The re-initialised library computes the same products (fp32 GEMM against a double reference).
  at::manual_seed(3);
  auto a = at::randn({257, 130}), b = at::randn({130, 191});
  const double err =
      (at::mm(a, b).to(at::kDouble) - at::mm(a.to(at::kDouble), b.to(at::kDouble))).abs().max().item<double>();
  EXPECT_LT(err, 1e-4);
}

TEST(BlasKernels, VersionReportsTheChoiceAndRespectsTheUsersSetting) {
  const std::string exe = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip version";
  const auto forced = run_command("OPENBLAS_CORETYPE=Haswell " + exe);
  ASSERT_EQ(forced.status, 0) << forced.out;
  if (forced.out.find("not OpenBLAS") != std::string::npos) GTEST_SKIP() << forced.out;
  EXPECT_NE(forced.out.find("BLAS: OPENBLAS_CORETYPE=Haswell is set: left as it is"), std::string::npos) << forced.out;
  const auto plain = run_command("env -u OPENBLAS_CORETYPE " + exe);
  ASSERT_EQ(plain.status, 0) << plain.out;
  const bool switched = plain.out.find("BLAS: OpenBLAS did not recognise this CPU") != std::string::npos;
  const bool recognised = plain.out.find("BLAS: OpenBLAS recognised this CPU") != std::string::npos;
  EXPECT_TRUE(switched || recognised || plain.out.find("neither AVX2 nor AVX-512") != std::string::npos) << plain.out;
}

// An OPENBLAS_CORETYPE older than the CPU's best kernels gets a hint (README "Precision and BLAS
// kernels"); `bench` names where each side's kernels came from.
TEST(BlasKernels, OlderCoreTypeGetsAHintAndOriginsAreNamed) {
  const std::string hint =
      "; this CPU supports the SkylakeX kernels: unset OPENBLAS_CORETYPE (vcpclip then chooses) or set it to "
      "SkylakeX for faster fp32 (README \"Precision and BLAS kernels\")";
  EXPECT_EQ(coretype_hint("Haswell", "SkylakeX"), hint);
  EXPECT_EQ(coretype_hint("zen", "SkylakeX"), hint);
  EXPECT_EQ(coretype_hint("Prescott", "Haswell"),
            "; this CPU supports the Haswell kernels: unset OPENBLAS_CORETYPE (vcpclip then chooses) or set it to "
            "Haswell for faster fp32 (README \"Precision and BLAS kernels\")");
  EXPECT_EQ(coretype_hint("SkylakeX", "SkylakeX"), "");
  EXPECT_EQ(coretype_hint("CooperLake", "SkylakeX"), "");  // newer, not older
  EXPECT_EQ(coretype_hint("Haswell", "Haswell"), "");
  EXPECT_EQ(coretype_hint("SkylakeX", "Haswell"), "");  // the user's business (OpenBLAS may refuse it)
  EXPECT_EQ(coretype_hint("MyCore", "SkylakeX"), "");   // unknown names: no guess
  EXPECT_EQ(coretype_hint("Haswell", ""), "");

  BlasKernels k;
  EXPECT_EQ(kernels_origin(k), "not OpenBLAS");
  k.openblas = true, k.before = "Prescott", k.after = "SkylakeX";
  EXPECT_EQ(kernels_origin(k), "SkylakeX (switched by vcpclip from Prescott, OpenBLAS's fallback)");
  k.before = "Haswell", k.after = "Haswell";
  EXPECT_EQ(kernels_origin(k), "Haswell (OpenBLAS's own choice for this CPU)");
  k.coretype_env = "Haswell";
  EXPECT_EQ(kernels_origin(k), "Haswell (OPENBLAS_CORETYPE=Haswell from the environment)");
  EXPECT_EQ(child_kernels_origin("Zen", "", false), "Zen (OpenBLAS's own choice for this CPU)");
  EXPECT_EQ(child_kernels_origin("SkylakeX", "SkylakeX", true),
            "SkylakeX (OPENBLAS_CORETYPE=SkylakeX set by vcpclip bench, as vcpclip's)");
  EXPECT_EQ(child_kernels_origin("Haswell", "Haswell", false),
            "Haswell (OPENBLAS_CORETYPE=Haswell from the environment)");
}

TEST(BlasKernels, VersionHintsWhenTheEnvironmentPicksOlderKernels) {
  const std::string best = best_openblas_core();
  if (best.empty()) GTEST_SKIP() << "neither AVX2 nor AVX-512";
  const std::string exe = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip version";
  const auto old = run_command("OPENBLAS_CORETYPE=Prescott " + exe);
  ASSERT_EQ(old.status, 0) << old.out;
  if (old.out.find("not OpenBLAS") != std::string::npos) GTEST_SKIP() << old.out;
  EXPECT_NE(old.out.find("BLAS: OPENBLAS_CORETYPE=Prescott is set: left as it is" + coretype_hint("Prescott", best)),
            std::string::npos)
      << old.out;
}
