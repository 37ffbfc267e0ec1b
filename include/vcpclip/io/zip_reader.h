#pragma once
// The records of a zip archive as torch.save writes it (DESIGN §7): every record stored (not
// compressed) under one top folder "<name>/", zip64 end records and extra fields understood.
// Every offset and size read from the file is checked against the file before it is used, so a
// hostile or truncated file is a vcpclip::Error naming it, never a read outside the file or an
// allocation larger than the file. (LibTorch's PyTorchStreamReader leaks its zip state when a
// malformed archive makes its constructor throw; fuzz/regressions/pth/ keeps such an input.)
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vcpclip::io {

class ZipReader {
 public:
  /// Reads the central directory of `path`. Errors: not a zip, no end-of-central-directory
  /// record, a directory outside the file, an entry that is not stored.
  explicit ZipReader(std::string path);

  /// The top folder of the first record ("archive" for "archive/data.pkl").
  const std::string& folder() const { return folder_; }
  /// Whether "<folder>/<name>" is a record.
  bool has(const std::string& name) const;
  /// The bytes of record "<folder>/<name>" (missing record, or data outside the file: errors).
  std::shared_ptr<const std::vector<uint8_t>> read(const std::string& name) const;

 private:
  struct Entry {
    uint64_t size = 0;           // stored: compressed size == uncompressed size
    uint64_t header_offset = 0;  // of the local file header
  };
  [[noreturn]] void bad(const std::string& what) const;
  void read_at(uint64_t offset, void* out, uint64_t n) const;
  void find_directory(uint64_t* offset, uint64_t* size, uint64_t* count) const;
  void read_directory(uint64_t offset, uint64_t size, uint64_t count);

  std::string path_;
  uint64_t file_size_ = 0;
  std::string folder_;
  std::map<std::string, Entry> entries_;
};

}  // namespace vcpclip::io
