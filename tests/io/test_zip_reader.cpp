// ZipReader: reads back what LibTorch's PyTorchStreamWriter (torch.save's writer) writes, byte for
// byte, and every damaged field is an error naming the file and what is wrong, never a read
// outside the file.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "support/test_util.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/zip_reader.h"

using vcpclip::io::ZipReader;
using vcpclip::testing::error_of;
using vcpclip::testing::slurp;
namespace fs = std::filesystem;

namespace {

struct ZipReaderTest : ::testing::Test {
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() / ("vcpclip_zip_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  /// An archive as torch.save writes it: folder "archive", records stored and 64-byte aligned.
  std::string archive(const std::vector<std::pair<std::string, std::string>>& records, bool deflate = false) {
    const std::string path = (dir / "a.pth").string();
    vcpclip::io::AtomicFileWriter file(path);
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* b, size_t n) {
      file.write(b, n);
      return n;
    });
    for (const auto& [name, bytes] : records) writer.writeRecord(name, bytes.data(), bytes.size(), deflate);
    writer.writeEndOfFile();
    file.commit();
    return path;
  }
  std::string patched(const std::string& path, size_t offset, const std::string& bytes) {
    std::string data = slurp(path);
    data.replace(offset, bytes.size(), bytes);
    const std::string out = (dir / "patched.pth").string();
    std::ofstream(out, std::ios::binary) << data;
    return out;
  }
};

std::string text(const std::shared_ptr<const std::vector<uint8_t>>& v) { return std::string(v->begin(), v->end()); }

}  // namespace

TEST_F(ZipReaderTest, ReadsWhatTorchsWriterWrites) {
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char(i * 2654435761u >> 13);
  const auto path = archive({{"data.pkl", "pickle bytes"}, {"data/0", big}, {"data/1", ""}});
  const ZipReader zip(path);
  EXPECT_EQ(zip.folder(), "archive");
  EXPECT_TRUE(zip.has("data.pkl"));
  EXPECT_TRUE(zip.has("version"));  // the writer adds it
  EXPECT_FALSE(zip.has("data/2"));
  EXPECT_EQ(text(zip.read("data.pkl")), "pickle bytes");
  EXPECT_EQ(text(zip.read("data/0")), big);
  EXPECT_EQ(text(zip.read("data/1")), "");
  EXPECT_EQ(error_of([&] { zip.read("data/2"); }),
            "cannot read " + path + ": not a readable torch.save zip (no record archive/data/2)");
}

TEST_F(ZipReaderTest, DamagedFieldsAreErrorsNamingTheFile) {
  const auto path = archive({{"data.pkl", "pickle bytes"}});
  const std::string data = slurp(path);
  const size_t central = data.find("PK\x01\x02");
  const size_t end = data.rfind(std::string("PK\x05\x06", 4));
  ASSERT_NE(central, std::string::npos);
  auto error = [&](const std::string& p) { return error_of([&] { ZipReader z(p); }); };
  auto prefix = [&](const std::string& p) { return "cannot read " + p + ": not a readable torch.save zip ("; };

  auto p = patched(path, central + 10, std::string("\x09\x00", 2));  // deflate64
  EXPECT_EQ(
      error(p),
      prefix(p) + "record archive/data.pkl is compressed with method 9 (only stored and deflated records are read))");
  p = patched(path, central + 24, std::string("\x05\x00\x00\x00", 4));  // size != stored size
  EXPECT_EQ(error(p), prefix(p) + "record archive/data.pkl: stored size 12 differs from size 5)");
  p = patched(path, central + 46, "archive_");  // "archive/data.pkl" -> "archive_data.pkl"
  EXPECT_EQ(error(p), prefix(p) + "record archive_data.pkl is not in a folder)");
  p = patched(path, central, "XXXX");
  EXPECT_EQ(error(p), prefix(p) + "central directory entry 0 is damaged)");
  p = patched(path, end, "XXXX");
  EXPECT_EQ(error(p), prefix(p) + "no end of central directory record)");
  // The data of a record reaching past the end of the file: found when it is read.
  p = patched(path, central + 20, std::string("\xff\xff\xff\x7f", 4));
  p = patched(p, central + 24, std::string("\xff\xff\xff\x7f", 4));
  const ZipReader zip(p);
  EXPECT_EQ(error_of([&] { zip.read("data.pkl"); }).rfind(prefix(p) + "record archive/data.pkl: 2147483647 bytes", 0),
            0u);
}

// torch.jit.save deflates its code/ records (OpenAI's CLIP archives): they are inflated; damaged
// deflate data and a size that deflate cannot reach are errors.
TEST_F(ZipReaderTest, DeflatedRecordsAreInflated) {
  std::string code;
  for (int i = 0; i < 200; ++i) code += "class Module_" + std::to_string(i) + "(Module):\n  __parameters__ = []\n";
  const auto path = archive({{"code/m.py", code}}, /*deflate=*/true);
  const std::string data = slurp(path);
  ASSERT_LT(data.size(), code.size());  // really deflated
  EXPECT_EQ(text(ZipReader(path).read("code/m.py")), code);

  const size_t central = data.find("PK\x01\x02");
  auto prefix = [&](const std::string& p) { return "cannot read " + p + ": not a readable torch.save zip ("; };
  auto u16 = [&](size_t o) { return size_t(uint8_t(data[o])) | size_t(uint8_t(data[o + 1])) << 8; };
  const size_t local_data = 30 + u16(26) + u16(28);  // the first record's data (local header at 0)
  auto p = patched(path, local_data, "\xff\xff\xff\xff");
  EXPECT_EQ(error_of([&] { ZipReader(p).read("code/m.py"); }),
            prefix(p) + "record archive/code/m.py: damaged deflate data)");
  p = patched(path, central + 24, std::string("\x00\x00\x00\x7f", 4));  // 2 GB from a few hundred bytes
  EXPECT_EQ(error_of([&] { ZipReader z(p); }).rfind(prefix(p) + "record archive/code/m.py: deflated size ", 0), 0u);
}
