// What C++ writes loads in Python: torch.load of a written checkpoint (types: OrderedDict with
// _metadata equal to torch's own, nn.Parameter with requires_grad; names, order, values) and
// numpy.load of written .npy files. Skipped (with the reason) when no python3 can import torch/numpy.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/expected_tensors.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/io/npy.h"

namespace fs = std::filesystem;
using vcpclip::testing::fixture_dir;

namespace {

std::string script() { return std::string(VCPCLIP_SOURCE_DIR) + "/scripts/tools/check_checkpoint_in_python.py"; }

int run(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

fs::path scratch_dir() { return fs::temp_directory_path() / ("vcpclip_py_test_" + std::to_string(::getpid())); }

fs::path scratch(const std::string& name) {
  fs::create_directories(scratch_dir());
  return scratch_dir() / name;
}

}  // namespace

TEST(CheckpointPython, TorchLoadsWhatCppWrote) {
  std::string py = vcpclip::testing::find_python("torch");
  if (py.empty()) GTEST_SKIP() << "no python3 that can import torch (set VCPCLIP_PYTHON)";
  auto ck = vcpclip::io::read_reference_checkpoint(fixture_dir() + "reference_tiny.pth");
  std::string out = scratch("from_cpp.pth").string();
  vcpclip::io::write_reference_checkpoint(out, ck);
  std::string cmd = py + " " + script() + " " + out + " " + fixture_dir() + "reference_tiny.expected.txt --like " +
                    fixture_dir() + "reference_tiny.pth";
  EXPECT_EQ(run(cmd), 0) << cmd;

  // The checker really checks: the same file against other expected values fails.
  std::string wrong = py + " " + script() + " " + out + " " + fixture_dir() + "tensors.expected.txt 2>/dev/null";
  EXPECT_EQ(run(wrong), 1);
  fs::remove_all(scratch_dir());
}

TEST(CheckpointPython, NumpyLoadsWhatCppWrote) {
  std::string py = vcpclip::testing::find_python("numpy");
  if (py.empty()) GTEST_SKIP() << "no python3 that can import numpy (set VCPCLIP_PYTHON)";
  for (const char* name : {"npy_f4", "npy_u1", "npy_i8", "npy_f8", "npy_b1", "npy_scalar", "npy_empty"}) {
    at::Tensor t = vcpclip::io::read_npy(fixture_dir() + name + ".npy");
    std::string out = scratch(std::string(name) + ".npy").string();
    vcpclip::io::write_npy(out, t);
    // One-tensor expected file for the checker.
    std::string exp_path = scratch(std::string(name) + ".txt").string();
    std::string line, l;
    std::ifstream in(fixture_dir() + "npy.expected.txt");
    while (std::getline(in, l)) {
      if (l.rfind(std::string(name) + " ", 0) == 0) line = l;
    }
    ASSERT_FALSE(line.empty()) << name;
    std::ofstream(exp_path) << line << "\n";
    std::string cmd = py + " " + script() + " --npy " + out + " " + exp_path;
    EXPECT_EQ(run(cmd), 0) << cmd;
  }
  fs::remove_all(scratch_dir());
}
