// A bounds-checked reader of stored zip archives (torch.save's format), see zip_reader.h.
#include "vcpclip/io/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "vcpclip/common/error.h"

namespace vcpclip::io {
namespace {

constexpr uint64_t kEndSize = 22;         // end of central directory record, without comment
constexpr uint64_t kLocatorSize = 20;     // zip64 end of central directory locator
constexpr uint64_t kEnd64Size = 56;       // zip64 end of central directory record
constexpr uint64_t kCentralSize = 46;     // central directory file header, without name/extra/comment
constexpr uint64_t kLocalSize = 30;       // local file header, without name/extra
constexpr uint64_t kMaxComment = 0xFFFF;  // longest archive comment
constexpr uint32_t kAll32 = 0xFFFFFFFFu;  // "see the zip64 record"

uint64_t le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | p[k];
  return v;
}

/// a + b <= limit without overflow.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }

/// Inflates raw deflate data (zip method 8) into exactly `out.size()` bytes; false when the data
/// is damaged or does not have that size.
bool inflate_exactly(const std::vector<uint8_t>& in, std::vector<uint8_t>& out) {
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return false;
  z.next_in = const_cast<uint8_t*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  const bool ok = rc == Z_STREAM_END && z.total_out == out.size();
  inflateEnd(&z);
  return ok;
}

}  // namespace

ZipReader::ZipReader(std::string path) : path_(std::move(path)) {
  std::error_code ec;
  file_size_ = std::filesystem::file_size(path_, ec);
  if (ec) fail("cannot read ", path_, ": ", ec.message());
  uint64_t offset = 0, size = 0, count = 0;
  find_directory(&offset, &size, &count);
  read_directory(offset, size, count);
}

void ZipReader::bad(const std::string& what) const { throw ZipError(path_, what); }

void ZipReader::read_at(uint64_t offset, void* out, uint64_t n) const {
  if (!fits(offset, n, file_size_)) bad(msg(n, " bytes at offset ", offset, " reach past the end of the file"));
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
  if (!in) fail("cannot read ", path_, ": read error at offset ", offset);
}

/// The end of central directory record (searched backwards over the longest possible comment),
/// and the zip64 one when the 32-bit fields say to look there.
void ZipReader::find_directory(uint64_t* offset, uint64_t* size, uint64_t* count) const {
  if (file_size_ < kEndSize) bad("no end of central directory record");
  const uint64_t tail_size = std::min(file_size_, kEndSize + kMaxComment);
  std::vector<uint8_t> tail(tail_size);
  read_at(file_size_ - tail_size, tail.data(), tail_size);
  int64_t at = -1;
  for (int64_t i = int64_t(tail_size - kEndSize); i >= 0 && at < 0; --i)
    if (std::memcmp(&tail[i], "PK\x05\x06", 4) == 0) at = i;
  if (at < 0) bad("no end of central directory record");
  const uint8_t* end = &tail[at];
  *count = le(end + 10, 2);
  *size = le(end + 12, 4);
  *offset = le(end + 16, 4);
  if (*count == 0xFFFF || *size == kAll32 || *offset == kAll32) {
    const uint64_t end_pos = file_size_ - tail_size + uint64_t(at);
    if (end_pos < kLocatorSize) bad("zip64 end of central directory locator missing");
    uint8_t locator[kLocatorSize], end64[kEnd64Size];
    read_at(end_pos - kLocatorSize, locator, kLocatorSize);
    if (std::memcmp(locator, "PK\x06\x07", 4) != 0) bad("zip64 end of central directory locator missing");
    read_at(le(locator + 8, 8), end64, kEnd64Size);
    if (std::memcmp(end64, "PK\x06\x06", 4) != 0) bad("zip64 end of central directory record missing");
    *count = le(end64 + 32, 8);
    *size = le(end64 + 40, 8);
    *offset = le(end64 + 48, 8);
  }
  if (!fits(*offset, *size, file_size_)) bad("central directory outside the file");
  if (*count == 0) bad("no records");
  if (*count > *size / kCentralSize)
    bad(msg(*count, " records cannot fit in a central directory of ", *size, " bytes"));
}

void ZipReader::read_directory(uint64_t offset, uint64_t size, uint64_t count) {
  std::vector<uint8_t> dir(size);
  read_at(offset, dir.data(), size);
  uint64_t pos = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* h = dir.data() + pos;
    if (!fits(pos, kCentralSize, size) || std::memcmp(h, "PK\x01\x02", 4) != 0)
      bad(msg("central directory entry ", i, " is damaged"));
    const uint64_t method = le(h + 10, 2), name_len = le(h + 28, 2), extra_len = le(h + 30, 2);
    const uint64_t comment_len = le(h + 32, 2);
    if (!fits(pos + kCentralSize, name_len + extra_len + comment_len, size))
      bad(msg("central directory entry ", i, " reaches past the directory"));
    const std::string name(reinterpret_cast<const char*>(h + kCentralSize), name_len);
    Entry e;
    uint64_t compressed = le(h + 20, 4);
    e.size = le(h + 24, 4);
    e.header_offset = le(h + 42, 4);
    // zip64 extra field (id 1): the 64-bit values of the fields that say 0xFFFFFFFF, in this order.
    const uint8_t* x = h + kCentralSize + name_len;
    for (uint64_t k = 0; k + 4 <= extra_len;) {
      const uint64_t id = le(x + k, 2), len = le(x + k + 2, 2);
      if (k + 4 + len > extra_len) bad(msg("record ", name, ": damaged extra field"));
      uint64_t f = k + 4;
      for (uint64_t* v : {&e.size, &compressed, &e.header_offset})
        if (id == 1 && *v == kAll32 && f + 8 <= k + 4 + len) *v = le(x + f, 8), f += 8;
      k += 4 + len;
    }
    // torch.save stores every record; torch.jit.save deflates its code/ records.
    if (method != 0 && method != 8)
      bad(msg("record ", name, " is compressed with method ", method, " (only stored and deflated records are read)"));
    if (method == 0 && compressed != e.size)
      bad(msg("record ", name, ": stored size ", compressed, " differs from size ", e.size));
    // Deflate expands at most ~1032:1; small records only (code, not tensors).
    if (method == 8 && (e.size > (uint64_t(64) << 20) || e.size > 1032 * compressed + 64))
      bad(msg("record ", name, ": deflated size ", compressed, " cannot hold ", e.size, " bytes"));
    e.deflated = method == 8;
    e.stored_size = compressed;
    if (i == 0) {
      const auto slash = name.find('/');
      if (slash == std::string::npos) bad("record " + name + " is not in a folder");
      folder_ = name.substr(0, slash);
    }
    if (!entries_.emplace(name, e).second) bad("record " + name + " occurs twice");
    pos += kCentralSize + name_len + extra_len + comment_len;
  }
}

bool ZipReader::has(const std::string& name) const { return entries_.count(folder_ + "/" + name) > 0; }

std::shared_ptr<const std::vector<uint8_t>> ZipReader::read(const std::string& name) const {
  const std::string full = folder_ + "/" + name;
  const auto it = entries_.find(full);
  if (it == entries_.end()) bad("no record " + full);
  const Entry& e = it->second;
  uint8_t local[kLocalSize];
  read_at(e.header_offset, local, kLocalSize);
  if (std::memcmp(local, "PK\x03\x04", 4) != 0) bad("record " + full + ": damaged local header");
  const uint64_t data = e.header_offset + kLocalSize + le(local + 26, 2) + le(local + 28, 2);
  if (!fits(data, e.stored_size, file_size_))
    bad(msg("record ", full, ": ", e.stored_size, " bytes at offset ", data, " reach past the end of the file"));
  auto bytes = std::make_shared<std::vector<uint8_t>>(e.size);
  if (!e.deflated) {
    if (e.size) read_at(data, bytes->data(), e.size);
    return bytes;
  }
  std::vector<uint8_t> packed(e.stored_size);
  if (e.stored_size) read_at(data, packed.data(), e.stored_size);
  if (!inflate_exactly(packed, *bytes)) bad(msg("record ", full, ": damaged deflate data"));
  return bytes;
}

}  // namespace vcpclip::io
