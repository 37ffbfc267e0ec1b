#pragma once
// The records of a zip archive as torch.save writes it (docs/design.md §7): every record stored (not
// compressed) under one top folder "<name>/", zip64 end records and extra fields understood.
// torch.jit.save deflates its small code/ records: those are inflated (zlib), up to 64 MiB.
// Every offset and size read from the file is checked against the file before it is used, so a
// hostile or truncated file is a vcpclip::Error naming it, never a read outside the file or an
// allocation larger than the file. (LibTorch's PyTorchStreamReader leaks its zip state when a
// malformed archive makes its constructor throw; fuzz/regressions/pth/ keeps such an input.)
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vcpclip/common/error.h"

namespace vcpclip::io {

/// A damaged archive: "cannot read <path>: not a readable torch.save zip (<reason>)"; `reason`
/// alone lets a reader of another zip-based format say what the file should have been.
class ZipError : public Error {
 public:
  ZipError(const std::string& path, std::string reason)
      : Error("cannot read " + path + ": not a readable torch.save zip (" + reason + ")"), reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

class ZipReader {
 public:
  /// Reads the central directory of `path`. Errors (ZipError): not a zip, no end-of-central-directory
  /// record, a directory outside the file, an entry neither stored nor deflated.
  explicit ZipReader(std::string path);

  /// The top folder of the first record ("archive" for "archive/data.pkl").
  const std::string& folder() const { return folder_; }
  /// Whether "<folder>/<name>" is a record.
  bool has(const std::string& name) const;
  /// The bytes of record "<folder>/<name>" (missing record, or data outside the file: errors).
  std::shared_ptr<const std::vector<uint8_t>> read(const std::string& name) const;

 private:
  struct Entry {
    uint64_t size = 0;           // uncompressed size
    uint64_t stored_size = 0;    // bytes in the file (== size unless deflated)
    uint64_t header_offset = 0;  // of the local file header
    bool deflated = false;       // zip method 8 (torch.jit.save's code/ records)
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
