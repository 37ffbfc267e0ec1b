// .npy reading and writing (the header is a Python dict literal; parsed here for the three keys).
#include "vcpclip/io/npy.h"

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "vcpclip/common/error.h"
#include "vcpclip/io/atomic_file.h"

namespace vcpclip::io {
namespace {

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

/// A tiny scanner over the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader h;
    bool has_descr = false, has_order = false, has_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      std::string key = quoted();
      expect(':');
      skip_ws();
      if (key == "descr") {
        h.descr = quoted();
        has_descr = true;
      } else if (key == "fortran_order") {
        if (s_.compare(pos_, 4, "True") == 0) {
          h.fortran_order = true;
          pos_ += 4;
        } else if (s_.compare(pos_, 5, "False") == 0) {
          pos_ += 5;
        } else {
          bad("fortran_order is not True or False");
        }
        has_order = true;
      } else if (key == "shape") {
        expect('(');
        while (true) {
          skip_ws();
          if (peek() == ')') break;
          h.shape.push_back(integer());
          skip_ws();
          if (peek() == ',') ++pos_;
        }
        ++pos_;
        has_shape = true;
      } else {
        bad("unknown key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') ++pos_;
    }
    if (!has_descr || !has_order || !has_shape) bad("missing 'descr', 'fortran_order' or 'shape'");
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string& what) {
    fail("cannot read ", path_, ": bad .npy header (", what, "): ", s_);
  }
  char peek() {
    if (pos_ >= s_.size()) bad("unexpected end");
    return s_[pos_];
  }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string quoted() {
    skip_ws();
    char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    size_t end = s_.find(q, pos_ + 1);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }
  int64_t integer() {
    size_t start = pos_;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    if (pos_ == start || pos_ - start > 15) bad("expected a dimension");
    int64_t v = std::stoll(s_.substr(start, pos_ - start));
    if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 longs
    return v;
  }

  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;
};

bool dtype_of(const std::string& descr, at::ScalarType* out) {
  if (descr == "<f4" || descr == "=f4")
    *out = at::kFloat;
  else if (descr == "<f8" || descr == "=f8")
    *out = at::kDouble;
  else if (descr == "|u1" || descr == "<u1" || descr == "=u1")
    *out = at::kByte;
  else if (descr == "<i8" || descr == "=i8")
    *out = at::kLong;
  else if (descr == "|b1" || descr == "<b1" || descr == "=b1")
    *out = at::kBool;
  else
    return false;
  return true;
}

}  // namespace

at::Tensor read_npy(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail("cannot read ", path, ": no such file");
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail("cannot read ", path, ": ", ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read ", path, ": cannot open it");

  unsigned char pre[10];
  in.read(reinterpret_cast<char*>(pre), 8);
  if (!in || std::memcmp(pre, "\x93NUMPY", 6) != 0)
    fail("cannot read ", path, ": not a .npy file (no \\x93NUMPY magic)");
  const int major = pre[6];
  uint64_t header_len = 0;
  uint64_t prefix = 0;
  if (major == 1) {
    in.read(reinterpret_cast<char*>(pre + 8), 2);
    header_len = pre[8] | (uint64_t(pre[9]) << 8);
    prefix = 10;
  } else if (major == 2 || major == 3) {
    unsigned char len[4];
    in.read(reinterpret_cast<char*>(len), 4);
    header_len = len[0] | (uint64_t(len[1]) << 8) | (uint64_t(len[2]) << 16) | (uint64_t(len[3]) << 24);
    prefix = 12;
  } else {
    fail("cannot read ", path, ": unsupported .npy format version ", major, ".", int(pre[7]));
  }
  if (!in || prefix + header_len > file_size) fail("cannot read ", path, ": truncated .npy header");
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  if (!in) fail("cannot read ", path, ": truncated .npy header");

  NpyHeader h = HeaderParser(header, path).parse();
  if (h.fortran_order) fail("cannot read ", path, ": Fortran-order .npy arrays are not supported (save with C order)");
  at::ScalarType dtype;
  if (!dtype_of(h.descr, &dtype)) {
    fail("cannot read ", path, ": unsupported .npy dtype '", h.descr, "' (supported: <f4, <f8, |u1, <i8, |b1)");
  }
  uint64_t numel = 1;
  for (int64_t d : h.shape) {
    if (d > 0 && numel > (uint64_t(1) << 50) / static_cast<uint64_t>(d))
      fail("cannot read ", path, ": shape too large");
    numel *= static_cast<uint64_t>(d);
  }
  const uint64_t nbytes = numel * c10::elementSize(dtype);
  const uint64_t available = file_size - prefix - header_len;
  if (available < nbytes) {
    fail("cannot read ", path, ": truncated .npy data (expected ", nbytes, " bytes for shape ",
         at::IntArrayRef(h.shape), ", found ", available, ")");
  }
  at::Tensor t = at::empty(h.shape, at::TensorOptions().dtype(dtype));
  if (nbytes > 0) in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(nbytes));
  if (!in) fail("cannot read ", path, ": read error in the .npy data");
  if (dtype == at::kBool) {  // any byte other than 0/1 would be an invalid C++ bool
    auto* p = t.data_ptr<bool>();
    auto* raw = reinterpret_cast<uint8_t*>(p);
    for (uint64_t k = 0; k < numel; ++k) raw[k] = raw[k] != 0;
  }
  return t;
}

void write_npy(const std::string& path, const at::Tensor& tensor) {
  VCP_CHECK(tensor.defined(), "cannot write ", path, ": undefined tensor");
  const char* descr = nullptr;
  switch (tensor.scalar_type()) {
    case at::kFloat:
      descr = "<f4";
      break;
    case at::kDouble:
      descr = "<f8";
      break;
    case at::kByte:
      descr = "|u1";
      break;
    case at::kLong:
      descr = "<i8";
      break;
    case at::kBool:
      descr = "|b1";
      break;
    default:
      fail("cannot write ", path, ": .npy writing supports float32, float64, uint8, int64 and bool, not ",
           c10::toString(tensor.scalar_type()));
  }
  at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  std::string shape = "(";
  for (int64_t d = 0; d < t.dim(); ++d) {
    shape += std::to_string(t.size(d));
    shape += (t.dim() == 1 || d + 1 < t.dim()) ? "," : "";
    if (d + 1 < t.dim()) shape += " ";
  }
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // numpy pads with spaces so that magic + length + header (ending in '\n') is a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  VCP_CHECK(header.size() <= 65535, "cannot write ", path, ": .npy header too long");
  std::string prefix = "\x93NUMPY";
  prefix.push_back('\x01');
  prefix.push_back('\x00');
  prefix.push_back(static_cast<char>(header.size() & 0xff));
  prefix.push_back(static_cast<char>(header.size() >> 8));

  AtomicFileWriter file(path);
  file.write(prefix);
  file.write(header);
  if (t.nbytes() > 0) file.write(t.data_ptr(), t.nbytes());
  file.commit();
}

}  // namespace vcpclip::io
