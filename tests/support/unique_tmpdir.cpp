// Linked into every test executable: gives each test PROCESS its own temporary directory.
// ctest runs the tests of one executable as parallel processes (gtest_discover_tests, -j2), and
// many tests write fixed names under std::filesystem::temp_directory_path(); pointing $TMPDIR at a
// fresh mkdtemp() directory before main() keeps them apart. Removed again at exit.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace {

struct UniqueTmpdir {
  std::string dir;
  pid_t owner = getpid();  // a fork()ed child that exits normally must not remove it
  UniqueTmpdir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vcpclip_test_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) return;  // keep the inherited TMPDIR
    dir = buf.data();
    setenv("TMPDIR", dir.c_str(), 1);
  }
  ~UniqueTmpdir() {
    if (dir.empty() || getpid() != owner) return;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

UniqueTmpdir g_unique_tmpdir;

}  // namespace
