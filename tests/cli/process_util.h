#pragma once
// `vcpclip` as a child process for the CLI tests: start it with its output in a log file, wait for
// its exit status, count the steps it logged, and SIGKILL it at a chosen point
// (tests/cli/test_train_faults.cpp, tests/cli/test_method_verbs.cpp).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "support/file_size_limit.h"
#include "support/test_util.h"
#include "vcpclip/build_info.h"

namespace process_util {

/// Starts `vcpclip <args>` with stdout and stderr appended to `log` (and files limited to
/// `file_limit` bytes when it is not 0).
inline pid_t spawn(const std::vector<std::string>& args, const std::string& log, uint64_t file_limit = 0) {
  const std::string binary = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip";
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (file_limit) vcpclip::testing::limit_file_size(file_limit);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv{const_cast<char*>(binary.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

/// Exit status, or 128 + signal.
inline int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Complete lines of steps.jsonl.
inline int steps_logged(const std::filesystem::path& out) {
  const std::string text = vcpclip::testing::slurp((out / "steps.jsonl").string());
  return int(std::count(text.begin(), text.end(), '\n'));
}

/// Runs until `when` says so, then SIGKILL; the process must still have been running.
inline void kill_when(const std::vector<std::string>& args, const std::string& log, const std::function<bool()>& when) {
  const pid_t pid = spawn(args, log);
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    if (when()) break;
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, WNOHANG), 0) << "the run ended before the kill point:\n"
                                                   << vcpclip::testing::slurp(log);
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::minutes(5)) << vcpclip::testing::slurp(log);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_for(pid), 128 + SIGKILL);
}

}  // namespace process_util
