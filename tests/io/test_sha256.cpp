// SHA-256: the FIPS 180-4 / NIST test vectors, chunked updates equal one update, files equal
// `sha256sum`, and the error path for a missing file with its exact message.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>

#include "support/test_util.h"
#include "vcpclip/build_info.h"
#include "vcpclip/io/sha256.h"

using vcpclip::io::Sha256;
using vcpclip::io::sha256_file;
using vcpclip::io::sha256_hex;
using vcpclip::testing::error_of;
namespace fs = std::filesystem;

TEST(Sha256, NistVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ChunkedUpdatesEqualOneUpdate) {
  std::mt19937 rng(7);
  std::string data(10000, '\0');
  for (auto& c : data) c = char(rng());
  const std::string whole = sha256_hex(data);
  for (size_t chunk : {1u, 3u, 55u, 56u, 63u, 64u, 65u, 127u, 4096u}) {
    Sha256 h;
    for (size_t i = 0; i < data.size(); i += chunk) h.update(data.data() + i, std::min(chunk, data.size() - i));
    EXPECT_EQ(h.hex_digest(), whole) << "chunk " << chunk;
  }
  // Lengths around the padding boundary (55/56/64 bytes) against the one-shot digest of a prefix.
  for (size_t n : {55u, 56u, 57u, 63u, 64u, 119u, 120u}) {
    Sha256 h;
    h.update(data.data(), n / 2);
    h.update(data.data() + n / 2, n - n / 2);
    EXPECT_EQ(h.hex_digest(), sha256_hex(data.substr(0, n))) << n;
  }
}

TEST(Sha256, FileEqualsSha256sum) {
  const std::string file = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/vcp/tiny_vcp.pth";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(("sha256sum " + file).c_str(), "r"), pclose);
  ASSERT_TRUE(pipe);
  char buf[65] = {0};
  ASSERT_EQ(fread(buf, 1, 64, pipe.get()), 64u) << "sha256sum is needed for this test";
  EXPECT_EQ(sha256_file(file), std::string(buf));
  // An empty file.
  const auto empty = fs::temp_directory_path() / "sha256_empty";
  std::ofstream(empty).close();
  EXPECT_EQ(sha256_file(empty.string()), sha256_hex(""));
}

TEST(Sha256, MissingFileIsAnError) {
  EXPECT_EQ(error_of([] { sha256_file("/nonexistent/ckpt.pth", "checkpoint"); }),
            "cannot read checkpoint /nonexistent/ckpt.pth (missing or unreadable) to compute its SHA-256");
}
