#pragma once
// SHA-256 (FIPS 180-4) of bytes and of files, as lower-case hex: identifies the checkpoint and
// the weights a calibration was made for (app/calibrate/calibrate.h), the same digest `sha256sum` prints.
#include <cstddef>
#include <cstdint>
#include <string>

namespace vcpclip::io {

/// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  /// The digest as 64 lower-case hex digits; the object must not be updated afterwards.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
  bool done_ = false;
};

/// SHA-256 of a byte string.
std::string sha256_hex(const std::string& bytes);

/// SHA-256 of a file's contents, read in chunks. A missing or unreadable file is a
/// vcpclip::Error naming it and `what` (e.g. "checkpoint").
std::string sha256_file(const std::string& path, const std::string& what = "file");

}  // namespace vcpclip::io
