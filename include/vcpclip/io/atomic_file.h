#pragma once
// Atomic file replacement: write to a temporary file beside the target, fsync it, rename it over
// the target, fsync the directory. Readers see either the old file or the complete new one, never
// a half-written file (checkpoints, metrics, anything a crash must not corrupt).
#include <string>
#include <string_view>
#include <vector>

namespace vcpclip::io {

/// Writes into "<path>.tmp.<pid>.<n>"; commit() makes it `path`. Destroyed without commit(), the
/// temporary file is removed and `path` is untouched. Errors (full disk, file size limit, no
/// permission) are vcpclip::Error naming the file; the temporary file is removed then too.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  /// fsync + rename over the target + fsync of the directory.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  size_t bytes_written() const { return written_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  size_t written_ = 0;
  bool committed_ = false;
};

/// One-shot: replaces `path` with `bytes` atomically.
void write_file_atomically(const std::string& path, std::string_view bytes);

/// std::filesystem::create_directories with a failure (no permission, a file in the way, a full
/// disk) as a vcpclip::Error naming the directory.
void make_directories(const std::string& dir);

/// Removes the temporary files "<name>.tmp.<pid>.<n>" in `dir` that a killed process left behind
/// (its pid no longer runs; SIGKILL gives no chance to clean up). Files of live processes stay.
/// Returns the paths removed.
std::vector<std::string> remove_stale_temp_files(const std::string& dir);

}  // namespace vcpclip::io
