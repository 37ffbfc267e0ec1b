// Atomic file replacement (temp + fsync + rename + directory fsync).
#include "vcpclip/io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>

#include "vcpclip/common/error.h"

namespace vcpclip::io {
namespace {

std::atomic<unsigned> g_counter{0};

std::string errno_text() { return std::strerror(errno); }

void fsync_directory(const std::string& file_path) {
  std::filesystem::path dir = std::filesystem::path(file_path).parent_path();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some file systems do not allow opening directories
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  VCP_CHECK(!path_.empty(), "cannot write a file with an empty path");
  temp_path_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_counter++);
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    fail("cannot write ", path_, ": creating temporary file ", temp_path_, " failed: ", errno_text());
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t size) {
  VCP_CHECK(fd_ >= 0 && !committed_, "cannot write ", path_, ": file already committed or closed");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write ", path_, " (temporary file ", temp_path_, "): ", errno_text());
    }
    p += n;
    size -= static_cast<size_t>(n);
    written_ += static_cast<size_t>(n);
  }
}

void AtomicFileWriter::commit() {
  VCP_CHECK(fd_ >= 0 && !committed_, "cannot commit ", path_, ": already committed or closed");
  if (::fsync(fd_) != 0) fail("cannot write ", path_, ": fsync of ", temp_path_, " failed: ", errno_text());
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail("cannot write ", path_, ": closing ", temp_path_, " failed: ", errno_text());
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    fail("cannot write ", path_, ": renaming ", temp_path_, " over it failed: ", errno_text());
  }
  committed_ = true;
  fsync_directory(path_);
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  AtomicFileWriter w(path);
  w.write(bytes);
  w.commit();
}

void make_directories(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  VCP_CHECK(!ec, "cannot create the directory ", dir, ": ", ec.message());
}

std::vector<std::string> remove_stale_temp_files(const std::string& dir) {
  static const std::regex temp_name(R"(.+\.tmp\.([0-9]{1,9})\.[0-9]+)");
  std::vector<std::filesystem::path> stale;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, m, temp_name)) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(m[1].str()));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // its writer may still run
    stale.push_back(entry.path());
  }
  std::vector<std::string> removed;
  for (const auto& p : stale)
    if (std::filesystem::remove(p, ec)) removed.push_back(p.string());
  return removed;
}

}  // namespace vcpclip::io
