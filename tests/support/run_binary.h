#pragma once
// Runs the built `vcpclip` binary (or any command) through the shell and captures what it prints.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

#include "vcpclip/build_info.h"

namespace vcpclip::testing {

struct CommandResult {
  int status = -1;  ///< exit status (-1 when the process did not exit normally)
  std::string out;  ///< stdout and stderr together
};

/// Runs `command` with `sh -c`, stderr merged into stdout.
inline CommandResult run_command(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  CommandResult r;
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) r.out.append(buf.data(), n);
  const int rc = pclose(pipe.release());
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return r;
}

/// Runs `build/vcpclip <args>`.
inline CommandResult run_vcpclip(const std::string& args) {
  return run_command(std::string(VCPCLIP_BINARY_DIR) + "/vcpclip " + args);
}

}  // namespace vcpclip::testing
