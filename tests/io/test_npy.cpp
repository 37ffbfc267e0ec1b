// .npy: numpy-written files read exactly (every dtype, v1 and v2 headers, 0-d and empty arrays),
// write/read round trips, byte layout as numpy writes it, and error paths with exact messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/expected_tensors.h"
#include "support/test_util.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/npy.h"

using vcpclip::testing::error_of;
using vcpclip::testing::slurp;

using vcpclip::Error;
using vcpclip::io::read_npy;
using vcpclip::io::write_npy;
using vcpclip::testing::fixture_dir;
namespace fs = std::filesystem;

namespace {

std::string tmp(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("vcpclip_npy_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

}  // namespace

TEST(Npy, ReadsNumpyFilesExactly) {
  auto expected = vcpclip::testing::read_expected(fixture_dir() + "npy.expected.txt");
  ASSERT_EQ(expected.size(), 7u);
  for (const auto& e : expected) {
    at::Tensor t = read_npy(fixture_dir() + e.name + ".npy");
    EXPECT_EQ(vcpclip::testing::torch_dtype_name(t.scalar_type()), e.dtype) << e.name;
    EXPECT_EQ(t.sizes().vec(), e.shape) << e.name;
    EXPECT_TRUE(t.is_contiguous());
    EXPECT_EQ(vcpclip::testing::values_of(t), e.values) << e.name;
  }
  // Format version 2.0 header (4-byte length), same values as npy_f4.
  EXPECT_TRUE(read_npy(fixture_dir() + "npy_v2.npy").equal(read_npy(fixture_dir() + "npy_f4.npy")));
}

TEST(Npy, WritesWhatNumpyWrites) {
  // numpy.save of these arrays gives exactly these bytes (header padded to 64, '\n'-terminated).
  for (const char* name : {"npy_f4", "npy_u1", "npy_i8", "npy_scalar", "npy_empty", "npy_f8", "npy_b1"}) {
    std::string src = fixture_dir() + name + ".npy";
    std::string out = tmp(std::string(name) + ".npy");
    write_npy(out, read_npy(src));
    EXPECT_EQ(slurp(out), slurp(src)) << name;
  }
}

TEST(Npy, RoundTripOfNonContiguousTensor) {
  at::Tensor t = at::arange(12, at::kLong).reshape({3, 4}).t();
  std::string out = tmp("t.npy");
  write_npy(out, t);
  at::Tensor back = read_npy(out);
  EXPECT_EQ(back.scalar_type(), at::kLong);
  EXPECT_TRUE(back.equal(t));
  at::Tensor f = at::randn({2, 1, 5}).select(2, 3);
  write_npy(out, f);
  EXPECT_TRUE(read_npy(out).equal(f));
}

TEST(Npy, ErrorsNameTheFile) {
  std::string missing = tmp("missing.npy");
  EXPECT_EQ(error_of([&] { read_npy(missing); }), "cannot read " + missing + ": no such file");

  std::string fortran = fixture_dir() + "npy_fortran.npy";
  EXPECT_EQ(error_of([&] { read_npy(fortran); }),
            "cannot read " + fortran + ": Fortran-order .npy arrays are not supported (save with C order)");
  std::string i4 = fixture_dir() + "npy_int32.npy";
  EXPECT_EQ(error_of([&] { read_npy(i4); }),
            "cannot read " + i4 + ": unsupported .npy dtype '<i4' (supported: <f4, <f8, |u1, <i8, |b1)");
  std::string be = fixture_dir() + "npy_bigendian.npy";
  EXPECT_EQ(error_of([&] { read_npy(be); }),
            "cannot read " + be + ": unsupported .npy dtype '>f4' (supported: <f4, <f8, |u1, <i8, |b1)");
  std::string truncated = fixture_dir() + "npy_truncated.npy";
  EXPECT_EQ(error_of([&] { read_npy(truncated); }),
            "cannot read " + truncated + ": truncated .npy data (expected 96 bytes for shape [2, 3, 4], found 86)");

  std::string junk = tmp("junk.npy");
  std::ofstream(junk) << "not numpy at all";
  EXPECT_EQ(error_of([&] { read_npy(junk); }), "cannot read " + junk + ": not a .npy file (no \\x93NUMPY magic)");
  std::string short_header = tmp("short.npy");
  std::ofstream(short_header, std::ios::binary) << std::string("\x93NUMPY\x01\x00\x76\x00{'descr'", 18);
  EXPECT_EQ(error_of([&] { read_npy(short_header); }), "cannot read " + short_header + ": truncated .npy header");
  std::string bad_header = tmp("bad.npy");
  std::string h = "{'descr': '<f4', 'shape': (2,), }";
  std::ofstream(bad_header, std::ios::binary) << std::string("\x93NUMPY\x01\x00", 8) << char(h.size()) << char(0) << h;
  EXPECT_EQ(error_of([&] { read_npy(bad_header); }),
            "cannot read " + bad_header + ": bad .npy header (missing 'descr', 'fortran_order' or 'shape'): " + h);

  EXPECT_EQ(
      error_of([&] { write_npy(tmp("x.npy"), at::ones({2}, at::kInt)); }),
      "cannot write " + tmp("x.npy") + ": .npy writing supports float32, float64, uint8, int64 and bool, not Int");
  fs::remove_all(fs::path(tmp("x")).parent_path());
}
