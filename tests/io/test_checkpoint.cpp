// The reference checkpoint layout: Python-written golden read exactly, C++-written files
// byte-identical to torch.save's, round trips, flatten/unflatten and error paths.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "io/expected_tensors.h"
#include "support/test_util.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/checkpoint.h"

using vcpclip::testing::error_of;
using vcpclip::testing::slurp;

using vcpclip::Error;
using vcpclip::io::NamedTensors;
using vcpclip::io::read_reference_checkpoint;
using vcpclip::io::ReferenceCheckpoint;
using vcpclip::io::write_reference_checkpoint;
using vcpclip::testing::fixture_dir;
namespace fs = std::filesystem;

namespace {

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

/// A scratch directory removed at the end of each test.
class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vcpclip_ckpt_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string tmp(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

/// (name, tensor) in file order: modules first ("module.name"), then top-level parameters.
NamedTensors in_file_order(const ReferenceCheckpoint& ck) {
  NamedTensors out;
  for (const auto& [m, ts] : ck.modules)
    for (const auto& [n, t] : ts) out.emplace_back(m + "." + n, t);
  for (const auto& [n, t] : ck.parameters) out.emplace_back(n, t);
  return out;
}

/// Same modules, names, order and values; `b` read back from a file (float32) unless `same_dtype`.
void expect_equal(const ReferenceCheckpoint& a, const ReferenceCheckpoint& b, bool same_dtype = false) {
  auto fa = in_file_order(a), fb = in_file_order(b);
  ASSERT_EQ(fa.size(), fb.size());
  ASSERT_EQ(a.modules.size(), b.modules.size());
  for (size_t k = 0; k < a.modules.size(); ++k) EXPECT_EQ(a.modules[k].first, b.modules[k].first);
  for (size_t k = 0; k < fa.size(); ++k) {
    EXPECT_EQ(fa[k].first, fb[k].first);
    if (same_dtype) {
      EXPECT_TRUE(fa[k].second.is_same(fb[k].second)) << fa[k].first;
    } else {
      EXPECT_EQ(fb[k].second.scalar_type(), at::kFloat) << fa[k].first;
      EXPECT_TRUE(fa[k].second.to(at::kFloat).equal(fb[k].second)) << fa[k].first;
    }
  }
}

ReferenceCheckpoint small_checkpoint() {
  ReferenceCheckpoint ck;
  at::Tensor w = at::randn({4, 3});
  ck.modules.push_back({"trainable_linearlayer", {{"fc.0.weight", w.t()}, {"fc.0.bias", at::randn({3})}}});
  ck.modules.push_back(
      {"Zero_try", {{"prompt_temp_l1", at::full({}, 2.5f)}, {"q_proj_pre.weight", at::randn({2, 3, 1})}}});
  ck.parameters.push_back({"prompt_embeddings", at::randn({1, 1, 3}).to(at::kHalf)});
  ck.parameters.push_back({"prompt_norm.weight", at::randn({3}, at::kDouble)});
  return ck;
}

}  // namespace

TEST_F(CheckpointTest, ReadsPythonGoldenExactly) {
  auto ck = read_reference_checkpoint(fixture_dir() + "reference_tiny.pth");
  std::vector<std::string> modules;
  for (const auto& m : ck.modules) modules.push_back(m.first);
  EXPECT_EQ(modules, (std::vector<std::string>{"trainable_linearlayer", "New_Lan_Embed", "Zero_try"}));
  auto expected = vcpclip::testing::read_expected(fixture_dir() + "reference_tiny.expected.txt");
  auto got = in_file_order(ck);
  ASSERT_EQ(got.size(), expected.size());
  ASSERT_EQ(got.size(), 24u);
  for (size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k].first, expected[k].name);
    EXPECT_EQ(got[k].second.scalar_type(), at::kFloat);
    EXPECT_EQ(got[k].second.sizes().vec(), expected[k].shape) << expected[k].name;
    EXPECT_EQ(vcpclip::testing::values_of(got[k].second), expected[k].values) << expected[k].name;
  }
  EXPECT_EQ(ck.parameters.front().first, "prompt_text_projection");
  EXPECT_EQ(ck.flatten().at("Zero_try.prompt_temp_l1").dim(), 0);
}

TEST_F(CheckpointTest, WritesWhatTorchSaveWritesByteForByte) {
  // reference_tiny_archive.pth is Python's torch.save of the same dict into a buffer (top folder
  // "archive", as PyTorchStreamWriter names it when writing through a function).
  auto ck = read_reference_checkpoint(fixture_dir() + "reference_tiny.pth");
  std::string out = tmp("mine.pth");
  write_reference_checkpoint(out, ck);
  EXPECT_TRUE(slurp(out) == slurp(fixture_dir() + "reference_tiny_archive.pth"));
}

TEST_F(CheckpointTest, WriteThenReadRoundTrip) {
  auto ck = small_checkpoint();
  std::string out = tmp("small.pth");
  write_reference_checkpoint(out, ck);
  expect_equal(ck, read_reference_checkpoint(out));
  // Overwriting keeps no temporary files around.
  write_reference_checkpoint(out, ck);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
}

TEST_F(CheckpointTest, FlattenAndUnflatten) {
  auto ck = small_checkpoint();
  auto flat = ck.flatten();
  std::vector<std::string> names;
  for (const auto& [n, t] : flat) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"Zero_try.prompt_temp_l1", "Zero_try.q_proj_pre.weight",
                                             "prompt_embeddings", "prompt_norm.weight",
                                             "trainable_linearlayer.fc.0.bias", "trainable_linearlayer.fc.0.weight"}));
  EXPECT_TRUE(flat.at("trainable_linearlayer.fc.0.weight").equal(ck.modules[0].second[0].second));

  auto back = ReferenceCheckpoint::unflatten(in_file_order(ck), {"trainable_linearlayer", "Zero_try"});
  expect_equal(ck, back, /*same_dtype=*/true);
  // Modules come in the order given, also when empty; other names are top-level.
  auto other = ReferenceCheckpoint::unflatten(
      {{"x.a", at::ones({1})}, {"Zero_tryx", at::ones({1})}, {"y", at::ones({1})}}, {"Zero_try", "x"});
  ASSERT_EQ(other.modules.size(), 2u);
  EXPECT_EQ(other.modules[0].first, "Zero_try");
  EXPECT_TRUE(other.modules[0].second.empty());
  ASSERT_EQ(other.modules[1].second.size(), 1u);
  EXPECT_EQ(other.modules[1].second[0].first, "a");
  ASSERT_EQ(other.parameters.size(), 2u);
  EXPECT_EQ(other.parameters[0].first, "Zero_tryx");

  ReferenceCheckpoint dup;
  dup.modules.push_back({"m", {{"a", at::ones({1})}}});
  dup.parameters.push_back({"m.a", at::ones({1})});
  EXPECT_EQ(error_of([&] { dup.flatten(); }), "checkpoint name 'm.a' occurs twice");
}

TEST_F(CheckpointTest, BadFilesAreErrorsNamingTheFile) {
  std::string missing = tmp("missing.pth");
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(missing); }), "cannot read " + missing + ": no such file");

  std::string empty = tmp("empty.pth");
  spit(empty, "");
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(empty); }),
            "cannot read " + empty + ": the file is empty (expected a torch.save zip)");

  std::string noise = tmp("noise.pth");
  std::mt19937 rng(7);
  std::string bytes(4096, '\0');
  for (auto& c : bytes) c = static_cast<char>(rng());
  spit(noise, bytes);
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(noise); }),
            "cannot read " + noise +
                ": not a zip file (torch.save writes a zip; legacy non-zip .pth files are not supported)");

  // Random bytes after a zip signature get as far as the zip reader.
  std::string noisy_zip = tmp("noisy_zip.pth");
  spit(noisy_zip, "PK\x03\x04" + bytes);
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(noisy_zip); }),
            "cannot read " + noisy_zip + ": not a readable torch.save zip (no end of central directory record)");

  std::string truncated = fixture_dir() + "truncated.pth";
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(truncated); }),
            "cannot read " + truncated + ": not a readable torch.save zip (no end of central directory record)");

  std::string dir = tmp("");
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(dir); }), "cannot read " + dir + ": it is a directory");
}

TEST_F(CheckpointTest, ZipWithoutDataPklIsAnError) {
  std::string path = tmp("no_pickle.pth");
  {
    vcpclip::io::AtomicFileWriter file(path);
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* b, size_t n) {
      file.write(b, n);
      return n;
    });
    writer.writeRecord("other.txt", "hi", 2);
    writer.writeEndOfFile();
    file.commit();
  }
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(path); }),
            "cannot read " + path + ": the zip has no <folder>/data.pkl record");
}

TEST_F(CheckpointTest, UnexpectedContentIsAnError) {
  std::string set_file = fixture_dir() + "unsupported_global_set.pth";
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(set_file); }),
            "unsupported pickle global '__builtin__.set' (supported: collections.OrderedDict, "
            "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, "
            "torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage) at byte 13 of data.pkl in " +
                set_file);
  std::string wrong = fixture_dir() + "wrong_dtype.pth";
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(wrong); }),
            "expected a floating-point tensor for 'Zero_try.prompt_temp_l1' in " + wrong + ", found dtype Long");
  std::string list = fixture_dir() + "top_level_list.pth";
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(list); }),
            "expected a dict at the top of checkpoint " + list + ", found a list");
  std::string generic = fixture_dir() + "generic.pth";
  EXPECT_EQ(error_of([&] { read_reference_checkpoint(generic); }),
            "expected a tensor or a state_dict for 'ints' in checkpoint " + generic + ", found a list");
}

TEST_F(CheckpointTest, FailedWriteLeavesTheOldFileAndNoTemporary) {
  std::string out = tmp("keep.pth");
  spit(out, "old");
  ReferenceCheckpoint bad;
  bad.modules.push_back({"m", {{"a", at::ones({1})}, {"a", at::ones({1})}}});
  EXPECT_EQ(error_of([&] { write_reference_checkpoint(out, bad); }),
            "cannot write checkpoint " + out + ": 'm.a' occurs twice");
  ReferenceCheckpoint complex;
  complex.parameters.push_back({"c", at::ones({1}, at::kComplexFloat)});
  EXPECT_EQ(error_of([&] { write_reference_checkpoint(out, complex); }),
            "cannot save a tensor of dtype ComplexFloat (no torch storage class for it)");
  EXPECT_EQ(slurp(out), "old");
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);

  std::string nodir = tmp("nodir/x.pth");
  std::string got = error_of([&] { write_reference_checkpoint(nodir, small_checkpoint()); });
  EXPECT_EQ(got.rfind("cannot write " + nodir + ": creating temporary file " + nodir + ".tmp.", 0), 0u) << got;
  EXPECT_NE(got.find("failed: No such file or directory"), std::string::npos) << got;
}

TEST_F(CheckpointTest, AtomicWriterCommitsOrLeavesTheOldFile) {
  std::string out = tmp("a.bin");
  vcpclip::io::write_file_atomically(out, "first");
  EXPECT_EQ(slurp(out), "first");
  std::string temp;
  {
    vcpclip::io::AtomicFileWriter w(out);
    temp = w.temp_path();
    w.write("second, never committed");
    EXPECT_TRUE(fs::exists(temp));
    EXPECT_EQ(slurp(out), "first");  // readers see the old file while the new one is written
  }
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(slurp(out), "first");
  vcpclip::io::AtomicFileWriter w(out);
  w.write("third");
  w.commit();
  EXPECT_EQ(w.bytes_written(), 5u);
  EXPECT_EQ(slurp(out), "third");
  EXPECT_EQ(error_of([&] { w.write("x"); }), "cannot write " + out + ": file already committed or closed");
}
