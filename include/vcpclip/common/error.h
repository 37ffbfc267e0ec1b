#pragma once
// vcpclip::Error: the one exception type the library throws for bad input. Messages are for
// people: what was expected, what was found, and where (file, key, class, step).
#include <sstream>
#include <stdexcept>
#include <string>

namespace vcpclip {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

/// Builds a message from the streamed parts: vcpclip::msg("expected ", a, ", found ", b).
template <typename... Parts>
std::string msg(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  return os.str();
}

/// "[2, 3, 4]" for a tensor shape (any container of integers), for messages.
template <typename Dims>
std::string shape_text(const Dims& dims) {
  std::ostringstream os;
  os << "[";
  bool first = true;
  for (const auto d : dims) {
    os << (first ? "" : ", ") << d;
    first = false;
  }
  os << "]";
  return os.str();
}

/// The first line of a (possibly multi-line, e.g. LibTorch) message.
inline std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

/// Throws vcpclip::Error with the streamed parts as message.
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw Error(msg(parts...));
}

}  // namespace vcpclip

/// Always-on check (also in Release): VCP_CHECK(cond, "expected ", x, " in ", file).
#define VCP_CHECK(cond, ...)                   \
  do {                                         \
    if (!(cond)) ::vcpclip::fail(__VA_ARGS__); \
  } while (0)
