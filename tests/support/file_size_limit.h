#pragma once
// A full disk, simulated: RLIMIT_FSIZE caps the size of every file this process writes (a write
// past it fails with EFBIG), with SIGXFSZ ignored so that the failing write returns an error
// instead of killing the process. In-process (FileSizeLimit, restored by the destructor) or for a
// child process (limit_file_size in the child between fork and exec; both settings survive exec).
#include <signal.h>
#include <sys/resource.h>

#include <cstdint>

namespace vcpclip::testing {

inline void limit_file_size(uint64_t bytes) {
  ::signal(SIGXFSZ, SIG_IGN);
  rlimit lim{};
  ::getrlimit(RLIMIT_FSIZE, &lim);
  lim.rlim_cur = bytes;
  ::setrlimit(RLIMIT_FSIZE, &lim);
}

class FileSizeLimit {
 public:
  explicit FileSizeLimit(uint64_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    limit_file_size(bytes);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  sighandler_t old_handler_ = SIG_DFL;
};

}  // namespace vcpclip::testing
